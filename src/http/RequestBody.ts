/**
 * Guards an endpoint's request body before the framework decodes it: the Content-Type must be one
 * the endpoint accepts (415), the body must fit the configured limit (413), and JSON must parse
 * (400). The framework would otherwise turn the last two into defects. The parsed text is cached
 * by the request, so the framework's own read costs nothing more.
 */
import {
  HttpApi,
  type HttpApiEndpoint,
  HttpApiMiddleware,
  HttpRouter,
  HttpServerRequest
} from "@effect/platform"
import { Effect, Layer, Schema } from "effect"
import { AppConfig } from "../config/AppConfig.ts"
import { MalformedJson, PayloadTooLarge, UnsupportedMediaType, ValidationFailed } from "./ApiError.ts"

export class RequestBody extends HttpApiMiddleware.Tag<RequestBody>()("basalt/RequestBody", {
  failure: Schema.Union(MalformedJson, PayloadTooLarge, UnsupportedMediaType)
}) {}

/**
 * An endpoint that takes a body: the payload Schema, the guard, and the statuses they add
 * (400, 413, 415 from the guard; 422 when the body breaks the Schema).
 */
export const withBody = <S extends Schema.Schema<any, any, any>>(
  payload: S,
  // OAuth2 tools send fields a server may not know; elsewhere an unknown field is a mistake.
  options: { readonly unknownFields: "refuse" | "ignore" } = { unknownFields: "refuse" }
) =>
<Name extends string, Method extends "POST" | "PUT" | "PATCH", Path, UrlParams, Headers, Success, Error, R, RE>(
  endpoint: HttpApiEndpoint.HttpApiEndpoint<Name, Method, Path, UrlParams, never, Headers, Success, Error, R, RE>
) =>
  endpoint
    // Report every problem at once, and refuse unknown fields rather than silently dropping them.
    .setPayload(
      payload.annotations({
        parseOptions: { errors: "all", onExcessProperty: options.unknownFields === "refuse" ? "error" : "ignore" }
      }) as S &
        HttpApiEndpoint.HttpApiEndpoint.ValidatePayload<Method, S>
    )
    .middleware(RequestBody)
    .addError(ValidationFailed)

const mediaType = (header: string | undefined) => header?.split(";")[0]?.trim().toLowerCase() ?? ""

const tooLarge = (limit: number) => new PayloadTooLarge({ message: `The request body is over the limit of ${limit} bytes` })

const isOverLimit = (error: unknown) =>
  error instanceof Error && error.cause instanceof Error && error.cause.message === "maxBytes exceeded"

/** The guard for every endpoint of `api` declared `withBody`. */
export const requestBodyLayer = (api: HttpApi.HttpApi.Any) =>
  Layer.effect(
    RequestBody,
    Effect.gen(function*() {
      const limit = (yield* AppConfig).bodyLimitBytes
      const accepted = new Map<string, ReadonlyArray<string>>()
      HttpApi.reflect(api as HttpApi.HttpApi.AnyWithProps, {
        onGroup() {},
        onEndpoint({ endpoint, payloads }) {
          accepted.set(`${endpoint.method} ${endpoint.path}`, [...payloads.keys()])
        }
      })
      return Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const { route } = yield* HttpRouter.RouteContext
        const types = accepted.get(`${route.method} ${route.path}`) ?? []
        const type = mediaType(request.headers["content-type"])
        if (!types.includes(type)) {
          return yield* new UnsupportedMediaType({
            message: `Content-Type ${type === "" ? "(none)" : type} is not accepted here; send ${types.join(" or ")}`
          })
        }
        // Uploads are streamed to disk and bounded per file by their handler (BASALT_UPLOAD_LIMIT).
        if (type === "multipart/form-data") return
        const declaredLength = Number(request.headers["content-length"] ?? "0")
        if (declaredLength > limit) return yield* tooLarge(limit)
        // Read here, under the limit, for every text body: the framework's own read reuses it.
        const text = yield* Effect.mapError(request.text, (error) =>
          isOverLimit(error) ? tooLarge(limit) : new MalformedJson({ message: "The request body could not be read" }))
        if (type !== "application/json") return
        yield* Effect.try({
          try: () => JSON.parse(text),
          catch: (error) =>
            new MalformedJson({ message: `The request body is not valid JSON: ${(error as Error).message}` })
        })
      })
    })
  )
