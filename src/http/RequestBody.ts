/**
 * Guards an endpoint's request body before the framework decodes it: the Content-Type must be one
 * the endpoint accepts (415), the body must fit the configured limit (413), and JSON must parse
 * (400). The framework would otherwise answer the last two with empty responses of its own. The
 * parsed text is cached by the request, so the framework's own read costs nothing more.
 */
import { Effect, Layer, type Schema } from "effect"
import { HttpApi, type HttpApiEndpoint, HttpApiMiddleware } from "effect/http-api"
import type { HttpMethod } from "effect/http/HttpMethod"
import { HttpServerRequest } from "effect/http/HttpServerRequest"
import type { HttpServerError } from "effect/http/HttpServerError"
import { AppConfig } from "../config/AppConfig.ts"
import { MalformedJson, PayloadTooLarge, UnsupportedMediaType } from "./ApiError.ts"
import type { DeclaresValidationFailed } from "./RequestParams.ts"

export class RequestBody extends HttpApiMiddleware.Service<RequestBody>()("basalt/RequestBody", {
  error: [MalformedJson, PayloadTooLarge, UnsupportedMediaType]
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
        errors: "all",
        onExcessProperty: options.unknownFields === "refuse" ? "error" : "ignore"
      })
      .middleware(RequestBody)

const mediaType = (header: string | undefined) => header?.split(";")[0]?.trim().toLowerCase() ?? ""

const tooLarge = (limit: number) => new PayloadTooLarge({ message: `The request body is over the limit of ${limit} bytes` })

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
          const text = yield* Effect.mapError(request.text, (error) =>
            isOverLimit(error) ? tooLarge(limit) : new MalformedJson({ message: "The request body could not be read" })
          )
          if (type === "application/json") {
            yield* Effect.try({
              try: () => JSON.parse(text),
              catch: (error) => new MalformedJson({ message: `The request body is not valid JSON: ${(error as Error).message}` })
            })
          }
        }
        return yield* httpEffect
      })
  })
)
