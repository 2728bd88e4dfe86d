/**
 * Guards an endpoint's request body before the framework decodes it: the Content-Type must be one
 * the endpoint accepts (415), the body must fit the configured limit (413) and be UTF-8 (400; a
 * form's percent-escapes too, 422), and JSON must nest at most `maxJsonDepth` levels (422, read on
 * the text, so that no deeper value reaches a recursive decoder or formatter) and parse (400).
 * The framework would otherwise answer an oversized or malformed body with empty responses of its
 * own, and read what is not UTF-8 as U+FFFD. The bytes are cached by the request, so the
 * framework's own read costs nothing more.
 */
import { Effect, Layer, type Schema } from "effect"
import { HttpApi, type HttpApiEndpoint, HttpApiMiddleware } from "effect/http-api"
import type { HttpMethod } from "effect/http/HttpMethod"
import { HttpServerRequest } from "effect/http/HttpServerRequest"
import type { HttpServerError } from "effect/http/HttpServerError"
import { AppConfig } from "../config/AppConfig.ts"
import { MalformedJson, PayloadTooLarge, UnsupportedMediaType, ValidationFailed } from "./ApiError.ts"
import { escapesNotUtf8, inputParseOptions } from "./IssueDetails.ts"
import type { DeclaresValidationFailed } from "./RequestParams.ts"
import { fieldEscapedNotUtf8 } from "./StorableText.ts"

export class RequestBody extends HttpApiMiddleware.Service<RequestBody>()("basalt/RequestBody", {
  error: [MalformedJson, PayloadTooLarge, UnsupportedMediaType, ValidationFailed]
}) {}

/**
 * An endpoint that takes a body (its `payload`): the guard, which adds 400, 413 and 415, and how
 * the body is decoded: every problem reported at once, and unknown fields refused. The endpoint
 * must declare the 422 a body breaking its Schema answers.
 */
export const withBody =
  (
    // OAuth2 tools send fields a server may not know; elsewhere an unknown field is a mistake.
    options: { readonly unknownFields: "refuse" | "ignore" } = { unknownFields: "refuse" }
  ) =>
  <
    Name extends string,
    Method extends HttpMethod.WithBody,
    Path extends string,
    Params extends Schema.Top,
    Query extends Schema.Top,
    Payload extends Schema.Top,
    Headers extends Schema.Top,
    Success extends Schema.Top,
    Error extends Schema.Top,
    M,
    MR
  >(
    endpoint: HttpApiEndpoint.HttpApiEndpoint<Name, Method, Path, Params, Query, Payload, Headers, Success, Error, M, MR> &
      ([Payload] extends [never] ? { readonly missingInput: `${Name} declares no payload` } : unknown) &
      DeclaresValidationFailed<Name, Error>
  ) =>
    endpoint
      .annotate(HttpApi.PayloadParseOptions, {
        ...inputParseOptions,
        onExcessProperty: options.unknownFields === "refuse" ? "error" : "ignore"
      })
      .middleware(RequestBody)

const mediaType = (header: string | undefined) => header?.split(";")[0]?.trim().toLowerCase() ?? ""

const tooLarge = (limit: number) => new PayloadTooLarge({ message: `The request body is over the limit of ${limit} bytes` })

/**
 * How deep a JSON body may nest objects and arrays: room for every request the contract describes
 * (a batch item's metadata, 32 levels, sits 3 levels down), and far from what overflows a stack.
 */
export const maxJsonDepth = 64

/** Whether JSON `text` nests objects and arrays deeper than `levels`: read as text, before parsing. */
const nestedDeeperThan = (text: string, levels: number): boolean => {
  if (text.length <= 2 * levels) return false
  let depth = 0
  let inString = false
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index)
    if (inString) {
      // A backslash escapes the next character, a quote among them.
      if (code === 0x5c) index++
      else if (code === 0x22) inString = false
    } else if (code === 0x22) inString = true
    else if (code === 0x7b || code === 0x5b) {
      if (++depth > levels) return true
    } else if (code === 0x7d || code === 0x5d) depth--
  }
  return false
}

const tooDeep = () =>
  new ValidationFailed({
    message: `The request body nests objects and arrays more than ${maxJsonDepth} levels deep`,
    details: [{ path: "(root)", message: `Nest objects and arrays at most ${maxJsonDepth} levels deep` }]
  })

/** The parser's complaint without the excerpt of the body V8 quotes in it (it may be a password). */
const parseProblem = (error: unknown) => String((error as Error).message).replace(/, (?:\.\.\.)?".*"(?:\.\.\.)? is not valid JSON$/s, "")

const strictUtf8 = new TextDecoder("utf-8", { fatal: true })

const isOverLimit = (error: HttpServerError) => error.reason._tag === "RequestParseError" && error.reason.reason === "BodyTooLarge"

/** The guard, for every endpoint declared `withBody`: it reads what the endpoint accepts from the endpoint itself. */
export const requestBodyLayer = Layer.effect(
  RequestBody,
  Effect.gen(function* () {
    const limit = (yield* AppConfig).bodyLimitBytes
    return (httpEffect, { endpoint }) =>
      Effect.gen(function* () {
        const request = yield* HttpServerRequest
        const types = [...endpoint.payload.keys()]
        const type = mediaType(request.headers["content-type"])
        if (!types.includes(type)) {
          return yield* new UnsupportedMediaType({
            message: `Content-Type ${type === "" ? "(none)" : type} is not accepted here; send ${types.join(" or ")}`
          })
        }
        // Uploads are streamed to disk and bounded per file by their handler (BASALT_UPLOAD_LIMIT).
        if (type !== "multipart/form-data") {
          const declaredLength = Number(request.headers["content-length"] ?? "0")
          if (declaredLength > limit) return yield* tooLarge(limit)
          // Read here, under the limit, for every text body: the framework's own read reuses it.
          const bytes = yield* Effect.mapError(request.arrayBuffer, (error) =>
            isOverLimit(error) ? tooLarge(limit) : new MalformedJson({ message: "The request body could not be read" })
          )
          // Decoded strictly: the framework's own decoding would turn bytes that are not UTF-8 into U+FFFD, silently.
          const text = yield* Effect.try({
            try: () => strictUtf8.decode(bytes),
            catch: () => new MalformedJson({ message: "The request body is not valid UTF-8" })
          })
          if (type === "application/x-www-form-urlencoded") {
            const field = fieldEscapedNotUtf8(text)
            if (field !== undefined) return yield* escapesNotUtf8("The request body", field)
          }
          if (type === "application/json") {
            if (nestedDeeperThan(text, maxJsonDepth)) return yield* tooDeep()
            yield* Effect.try({
              try: () => JSON.parse(text),
              catch: (error) => new MalformedJson({ message: `The request body is not valid JSON: ${parseProblem(error)}` })
            })
          }
        }
        return yield* httpEffect
      })
  })
)
