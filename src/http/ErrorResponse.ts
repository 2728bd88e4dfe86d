/**
 * Renders every failure of the API in the one error shape: typed domain errors by their status
 * annotation, the framework's schema decode failures as 422 with details, unknown routes as 404
 * or 405, and anything else (a defect, an unexpected failure) as a 500 that says nothing of its
 * cause, which is logged in full with the request and trace ids instead.
 */
import { HttpApiBuilder, HttpApiError, HttpServerError, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Cause, Effect, FiberRef, Option } from "effect"
import {
  type ApiError,
  errorCode,
  errorStatus,
  InternalError,
  isApiError,
  MethodNotAllowed,
  NotFound,
  PayloadTooLarge,
  RateLimited,
  Unauthorized,
  ValidationFailed
} from "./ApiError.ts"
import { CurrentRequestId } from "./RequestId.ts"
import { pathOf, RouteTable } from "./RouteTable.ts"

export const errorResponse = (error: ApiError): Effect.Effect<HttpServerResponse.HttpServerResponse> =>
  Effect.map(FiberRef.get(CurrentRequestId), (requestId) =>
    HttpServerResponse.unsafeJson(
      {
        error: errorCode(error._tag),
        message: error.message,
        ...(error.details !== undefined && error.details.length > 0 ? { details: error.details } : {}),
        request_id: requestId
      },
      {
        status: errorStatus(error),
        headers: error instanceof MethodNotAllowed
          ? { allow: error.allow.join(", ") }
          : error instanceof Unauthorized
          ? { "www-authenticate": 'Bearer realm="basalt"' }
          // The rest of an oversized body is never read, so the connection cannot be reused.
          : error instanceof PayloadTooLarge
          ? { connection: "close" }
          : error instanceof RateLimited
          ? {
            "retry-after": String(error.retryAfterSeconds),
            ratelimit: error.rateLimit,
            "ratelimit-policy": error.rateLimitPolicy
          }
          : {}
      }
    ))

const fromDecodeError = (error: HttpApiError.HttpApiDecodeError) =>
  new ValidationFailed({
    message: "The request does not match the schema",
    details: error.issues.map((issue) => ({
      path: issue.path.length === 0 ? "(root)" : issue.path.map(String).join("."),
      message: issue.message
    }))
  })

const unexpected = (cause: Cause.Cause<unknown>) =>
  Effect.as(
    Effect.logError("unhandled failure", cause),
    new InternalError({ message: "An unexpected error occurred; it has been logged under this request_id" })
  )

/** The API error a cause stands for; `None` for a pure interruption (the client went away). */
export const apiErrorFromCause = (
  cause: Cause.Cause<unknown>
): Effect.Effect<Option.Option<ApiError>, never, RouteTable | HttpServerRequest.HttpServerRequest> =>
  Effect.gen(function*() {
    if (Cause.isInterruptedOnly(cause)) return Option.none()
    const failure = Cause.failureOption(cause)
    if (Option.isNone(failure)) return Option.some(yield* unexpected(cause))
    const error = failure.value
    if (isApiError(error)) return Option.some(error)
    if (error instanceof HttpApiError.HttpApiDecodeError) return Option.some(fromDecodeError(error))
    if (error instanceof HttpServerError.RouteNotFound) {
      const request = yield* HttpServerRequest.HttpServerRequest
      const path = pathOf(request.url)
      const allow = (yield* RouteTable).allowedMethods(path)
      return Option.some(
        allow.length === 0
          ? new NotFound({ message: `No route for ${request.method} ${path}` })
          : new MethodNotAllowed({ message: `${request.method} is not allowed on ${path}`, allow })
      )
    }
    return Option.some(yield* unexpected(cause))
  })

export const renderCause = (cause: Cause.Cause<unknown>) =>
  Effect.flatMap(
    apiErrorFromCause(cause),
    Option.match({
      // Only an interruption is left unrendered, and it carries no error value.
      onNone: () => Effect.failCause(cause as Cause.Cause<never>),
      onSome: errorResponse
    })
  )

/** Installs the renderer inside the HttpApi app, before the framework's own error encoding. */
export const ErrorResponseLive = HttpApiBuilder.middleware(
  (app) => Effect.catchAllCause(app, renderCause),
  { withContext: true }
)
