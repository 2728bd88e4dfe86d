/**
 * The one error shape of the API, and the domain errors that render into it.
 *
 * Each error is a `Schema.TaggedError` whose status is its `httpApiStatus` annotation; the wire code
 * is its tag in snake case (`ValidationFailed` → `validation_failed`). `ErrorResponse` renders them.
 */
import { Schema, SchemaAST } from "effect"
import { contractBody } from "../contract/Contract.ts"

export const ErrorDetail = Schema.Struct({
  path: Schema.String,
  message: Schema.String
})
export type ErrorDetail = typeof ErrorDetail.Type

/** The body of every failure, exactly `components.schemas.ApiError` of openapi.yaml. */
export const ErrorBody = contractBody(
  "ApiError",
  Schema.Struct({
    error: Schema.String,
    message: Schema.String,
    details: Schema.optional(Schema.Array(ErrorDetail)),
    request_id: Schema.String
  })
)
export type ErrorBody = typeof ErrorBody.Type

const fields = {
  message: Schema.String,
  details: Schema.optional(Schema.Array(ErrorDetail))
}

export class MalformedJson extends Schema.TaggedError<MalformedJson>()("MalformedJson", fields, { httpApiStatus: 400 }) {}

/** A body that breaks its content type's own syntax (a multipart body without its boundary, say). */
export class MalformedBody extends Schema.TaggedError<MalformedBody>()("MalformedBody", fields, { httpApiStatus: 400 }) {}

/** A request HTTP itself refuses (HTTP/1.1 without Host), answered before any route. */
export class MalformedRequest extends Schema.TaggedError<MalformedRequest>()("MalformedRequest", fields, { httpApiStatus: 400 }) {}

/** OAuth2 token endpoint: the credentials of a password grant are wrong (RFC 6749 5.2). */
export class InvalidGrant extends Schema.TaggedError<InvalidGrant>()("InvalidGrant", fields, { httpApiStatus: 400 }) {}

/** OAuth2 token endpoint: a grant type other than `password` (RFC 6749 5.2). */
export class UnsupportedGrantType extends Schema.TaggedError<UnsupportedGrantType>()("UnsupportedGrantType", fields, {
  httpApiStatus: 400
}) {}

export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", fields, { httpApiStatus: 401 }) {}

export class Forbidden extends Schema.TaggedError<Forbidden>()("Forbidden", fields, { httpApiStatus: 403 }) {}

export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", fields, { httpApiStatus: 404 }) {}

export class MethodNotAllowed extends Schema.TaggedError<MethodNotAllowed>()(
  "MethodNotAllowed",
  { ...fields, allow: Schema.Array(Schema.String) },
  { httpApiStatus: 405 }
) {}

/** The body did not arrive in full in the time allowed for it (an upload: BASALT_UPLOAD_TIMEOUT). */
export class RequestTimeout extends Schema.TaggedError<RequestTimeout>()("RequestTimeout", fields, { httpApiStatus: 408 }) {}

export class Conflict extends Schema.TaggedError<Conflict>()("Conflict", fields, { httpApiStatus: 409 }) {}

/** A route that speaks another protocol (a WebSocket) asked for over plain HTTP. */
export class UpgradeRequired extends Schema.TaggedError<UpgradeRequired>()("UpgradeRequired", fields, { httpApiStatus: 426 }) {}

export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()("PayloadTooLarge", fields, { httpApiStatus: 413 }) {}

export class UnsupportedMediaType extends Schema.TaggedError<UnsupportedMediaType>()("UnsupportedMediaType", fields, {
  httpApiStatus: 415
}) {}

export class ValidationFailed extends Schema.TaggedError<ValidationFailed>()("ValidationFailed", fields, { httpApiStatus: 422 }) {}

/**
 * Over a rate limit (see src/ratelimit/). Carries what the renderer puts in `Retry-After`,
 * `RateLimit` and `RateLimit-Policy`.
 */
export class RateLimited extends Schema.TaggedError<RateLimited>()(
  "RateLimited",
  {
    ...fields,
    retryAfterSeconds: Schema.Int,
    rateLimit: Schema.String,
    rateLimitPolicy: Schema.String
  },
  { httpApiStatus: 429 }
) {}

export class InternalError extends Schema.TaggedError<InternalError>()("InternalError", fields, { httpApiStatus: 500 }) {}

/** A service Basalt depends on (an identity provider, say) failed or answered nonsense. */
export class BadGateway extends Schema.TaggedError<BadGateway>()("BadGateway", fields, { httpApiStatus: 502 }) {}

export class NotReady extends Schema.TaggedError<NotReady>()("NotReady", fields, { httpApiStatus: 503 }) {}

/**
 * The database is unavailable (see DatabaseOutage), or the server is still starting. Carries what
 * the renderer puts in `Retry-After`.
 */
export class ServiceUnavailable extends Schema.TaggedError<ServiceUnavailable>()(
  "ServiceUnavailable",
  { ...fields, retryAfterSeconds: Schema.Int },
  { httpApiStatus: 503 }
) {}

/** Every error class above; the renderer recognises a failure as an API error by these. */
export const apiErrorClasses = [
  MalformedJson,
  MalformedBody,
  MalformedRequest,
  InvalidGrant,
  UnsupportedGrantType,
  Unauthorized,
  Forbidden,
  NotFound,
  MethodNotAllowed,
  RequestTimeout,
  Conflict,
  PayloadTooLarge,
  UnsupportedMediaType,
  UpgradeRequired,
  ValidationFailed,
  RateLimited,
  InternalError,
  BadGateway,
  NotReady,
  ServiceUnavailable
] as const

export type ApiError = InstanceType<(typeof apiErrorClasses)[number]>

export const isApiError = (u: unknown): u is ApiError => apiErrorClasses.some((cls) => u instanceof cls)

/** `ValidationFailed` → `validation_failed`. */
export const errorCode = (tag: string): string => tag.replace(/(?<!^)([A-Z])/g, "_$1").toLowerCase()

const statusOf = SchemaAST.resolveAt<number>("httpApiStatus")

export const errorStatus = (error: ApiError): number => {
  const cls = apiErrorClasses.find((cls) => error instanceof cls)
  return (cls && statusOf(cls.ast)) ?? 500
}
