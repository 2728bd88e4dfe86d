/**
 * Renders every failure in the one error shape: typed domain errors by their status annotation,
 * schema decode failures as 422 with details, unknown routes as 404 or 405, an oversized body as
 * 413, the database being unavailable (DatabaseOutage) as 503 with Retry-After, logged once per
 * outage, and anything else (a defect, an unexpected failure) as a 500 that says nothing of its
 * cause, which is logged in full with the request and trace ids instead.
 *
 * One renderer, used where each kind of failure can be caught: the `ErrorResponse` HttpApi
 * middleware (the last one an API declares, so the outermost of every endpoint) renders an
 * endpoint's failures before the framework would encode them in their schema's own shape, and the
 * server middleware renders what never reaches an endpoint (no route, a defect outside one).
 */
import { Cause, Effect, Layer, Option } from "effect"
import { HttpServerError, HttpServerResponse } from "effect/http"
import { MaxBodySize } from "effect/http/HttpIncomingMessage"
import { HttpApiError, HttpApiMiddleware } from "effect/http-api"
import { type DatabaseOutage, databaseOutageIn, reportOutage } from "../database/DatabaseOutage.ts"
import {
  type ApiError,
  errorCode,
  errorStatus,
  InternalError,
  isApiError,
  MalformedRequest,
  MethodNotAllowed,
  NotFound,
  PayloadTooLarge,
  RateLimited,
  RequestTimeout,
  ServiceUnavailable,
  UpgradeRequired,
  Unauthorized
} from "./ApiError.ts"
import { validationFailed } from "./IssueDetails.ts"
import { CurrentRequestId } from "./RequestId.ts"
import { pathOf, type RouteTable } from "./RouteTable.ts"

const headersOf = (error: ApiError): Record<string, string> | undefined =>
  error instanceof MethodNotAllowed
    ? { allow: error.allow.join(", ") }
    : error instanceof Unauthorized
      ? { "www-authenticate": 'Bearer realm="basalt"' }
      : // The rest of an oversized or stalled body, or of a request HTTP refuses, is never read,
        // so the connection cannot be reused.
        error instanceof PayloadTooLarge || error instanceof RequestTimeout || error instanceof MalformedRequest
        ? { connection: "close" }
        : error instanceof RateLimited
          ? {
              "retry-after": String(error.retryAfterSeconds),
              ratelimit: error.rateLimit,
              "ratelimit-policy": error.rateLimitPolicy
            }
          : error instanceof ServiceUnavailable
            ? { "retry-after": String(error.retryAfterSeconds) }
            : error instanceof UpgradeRequired
              ? { upgrade: "websocket" }
              : undefined

export const errorResponse = (error: ApiError): Effect.Effect<HttpServerResponse.HttpServerResponse> =>
  Effect.withFiber((fiber) =>
    Effect.succeed(
      HttpServerResponse.jsonUnsafe(
        {
          error: errorCode(error._tag),
          message: error.message,
          ...(error.details !== undefined && error.details.length > 0 ? { details: error.details } : {}),
          request_id: fiber.getRef(CurrentRequestId)
        },
        { status: errorStatus(error), headers: headersOf(error) }
      )
    )
  )

/** A request's input, by where the framework decoded it (a response's own never gets here). */
const inputName = { Params: "The path", Query: "The query", Headers: "The headers", Payload: "The request body" }

const fromSchemaError = (error: HttpApiError.HttpApiSchemaError, kind: keyof typeof inputName) =>
  validationFailed(error.cause.issue, {
    subject: inputName[kind],
    unknownKey: kind === "Payload" ? "field" : kind === "Headers" ? "header" : "parameter"
  })

const tooLarge = Effect.withFiber((fiber) => {
  const limit = fiber.getRef(MaxBodySize)
  return Effect.succeed(
    new PayloadTooLarge({
      message: limit === undefined ? "The request body is over the limit" : `The request body is over the limit of ${Number(limit)} bytes`
    })
  )
})

const unexpected = (cause: Cause.Cause<unknown>) =>
  Effect.as(
    Effect.logError("unhandled failure", cause),
    new InternalError({ message: "An unexpected error occurred; it has been logged under this request_id" })
  )

const databaseUnavailable = (outage: DatabaseOutage) =>
  new ServiceUnavailable({
    message: `The database is unavailable: ${outage.reason}. Try again in ${outage.retryAfterSeconds} s`,
    retryAfterSeconds: outage.retryAfterSeconds
  })

/** Logged once per outage (DatabaseOutages), not per request. */
const unavailable = (outage: DatabaseOutage) => Effect.as(reportOutage(outage), databaseUnavailable(outage))

const isBodyTooLarge = (error: unknown) =>
  HttpApiError.HttpApiPayloadTooLarge.is(error) ||
  (HttpServerError.isHttpServerError(error) && error.reason._tag === "RequestParseError" && error.reason.reason === "BodyTooLarge")

/**
 * The API error a cause stands for; `None` for a pure interruption (the client went away).
 * `routes` tells 404 from 405 when no route matched.
 */
export const apiErrorFromCause = (cause: Cause.Cause<unknown>, routes?: RouteTable): Effect.Effect<Option.Option<ApiError>> => {
  if (Cause.hasInterruptsOnly(cause)) return Effect.succeedNone
  // A typed failure, or a defect the framework raised for one (a body it could not decode or read).
  const reason = cause.reasons.find((reason) => reason._tag !== "Interrupt")
  const error = reason === undefined ? undefined : reason._tag === "Fail" ? reason.error : reason.defect
  if (reason?._tag === "Fail" && isApiError(error)) return Effect.succeedSome(error)
  // A response that breaks its own Schema is the server's fault: it stays a 500 below.
  if (HttpApiError.HttpApiSchemaError.is(error) && error.kind !== "Body" && error.kind !== "ResponseHeaders") {
    return Effect.succeedSome(fromSchemaError(error, error.kind))
  }
  if (isBodyTooLarge(error)) return Effect.asSome(tooLarge)
  if (HttpServerError.isHttpServerError(error) && error.reason._tag === "RouteNotFound") {
    const request = error.reason.request
    const path = pathOf(request.url)
    const allow = routes?.allowedMethods(request.url) ?? []
    return Effect.succeedSome(
      allow.length === 0
        ? new NotFound({ message: `No route for ${request.method} ${path}` })
        : new MethodNotAllowed({ message: `${request.method} is not allowed on ${path}`, allow })
    )
  }
  const outage = databaseOutageIn(cause)
  if (outage !== undefined) return Effect.asSome(unavailable(outage))
  return Effect.asSome(unexpected(cause))
}

export const renderCause = <E>(cause: Cause.Cause<E>, routes?: RouteTable): Effect.Effect<HttpServerResponse.HttpServerResponse, E> =>
  Effect.flatMap(apiErrorFromCause(cause, routes), (error) =>
    // Only an interruption is left unrendered, and it carries no error value.
    Option.isNone(error) ? Effect.failCause(cause) : errorResponse(error.value)
  )

/**
 * Declares the 500 every operation can answer, and renders every failure of an endpoint. Every
 * API declares it last (`.middleware(ErrorResponse)` after its groups), so that it wraps the
 * endpoint's other middleware (authentication, the body guard) as well as its decoding and
 * handler. serveApi provides it.
 */
export class ErrorResponse extends HttpApiMiddleware.Service<ErrorResponse>()("basalt/ErrorResponse", {
  error: InternalError
}) {
  static readonly layer: Layer.Layer<ErrorResponse> = Layer.succeed(ErrorResponse, (httpEffect) =>
    Effect.catchCause(httpEffect, (cause) => renderCause(cause))
  )
}

/**
 * Declares the 503 of an operation that cannot answer without the database: while it is
 * unavailable, and while the server starts (until then every operation but /health and /ready
 * answers 503). ErrorResponse renders it; this middleware itself does nothing.
 */
export class Availability extends HttpApiMiddleware.Service<Availability>()("basalt/Availability", {
  error: ServiceUnavailable
}) {
  static readonly layer: Layer.Layer<Availability> = Layer.succeed(Availability, (httpEffect) => httpEffect)
}

/** The renderer under the name the server composes. */
export const ErrorResponseLive = ErrorResponse.layer
