/**
 * What every HTTP response goes through, outermost first: the request id, timing, access log,
 * metrics and in-flight tracking; compression; CORS. Anything the API app did not render (it
 * renders all but interruptions) is rendered here in the one error shape too.
 */
import {
  FileSystem,
  type HttpApp,
  HttpIncomingMessage,
  HttpMiddleware,
  HttpServerRequest,
  HttpServerResponse
} from "@effect/platform"
import { Context, Effect, Metric, MetricLabel, Option, Tracer } from "effect"
import { AppConfig, type AppConfigShape } from "../config/AppConfig.ts"
import { httpDuration, httpRequests } from "../telemetry/HttpMetrics.ts"
import { compression } from "./Compression.ts"
import { renderCause } from "./ErrorResponse.ts"
import { CurrentRequestId, RequestIdHeader, requestIdFrom } from "./RequestId.ts"
import { pathOf, RouteTable } from "./RouteTable.ts"
import { ServerLifecycle } from "./ServerLifecycle.ts"

/**
 * The request metrics tagged with method, route and status. Tagging builds and hashes a new
 * metric key, so each combination is built once; routes are templates and Node only parses known
 * methods, so the combinations are few.
 */
const requestMetrics = new Map<string, { readonly count: Metric.Metric.Counter<number>; readonly duration: typeof httpDuration }>()
const metricsFor = (method: string, route: string, status: number) => {
  const key = `${method} ${route} ${status}`
  let metrics = requestMetrics.get(key)
  if (metrics === undefined) {
    const labels = [
      MetricLabel.make("http.request.method", method),
      MetricLabel.make("http.route", route),
      MetricLabel.make("http.response.status_code", String(status))
    ]
    metrics = { count: Metric.taggedWithLabels(httpRequests, labels), duration: Metric.taggedWithLabels(httpDuration, labels) }
    requestMetrics.set(key, metrics)
  }
  return metrics
}

/**
 * Sets an attribute on the request's server span, if it has one. Not Effect.annotateCurrentSpan:
 * on an untraced request (/health) that builds and throws away an exception every time.
 */
const annotateServerSpan = (key: string, value: string) =>
  Effect.map(Effect.context<never>(), (context) => {
    const span = Context.getOption(context, Tracer.ParentSpan)
    if (Option.isSome(span) && span.value._tag === "Span") span.value.attribute(key, value)
  })

const observe = <E, R>(
  app: HttpApp.Default<E, R>,
  request: HttpServerRequest.HttpServerRequest,
  requestId: string
) =>
  Effect.gen(function*() {
    const started = performance.now()
    const lifecycle = yield* ServerLifecycle
    const routes = yield* RouteTable
    const { bodyLimitBytes } = yield* AppConfig
    const path = pathOf(request.url)
    const route = routes.match(request.method, path) ?? "unmatched"
    yield* annotateServerSpan("http.request.id", requestId)

    const response = yield* app.pipe(
      Effect.catchAllCause(renderCause),
      Effect.provideService(HttpIncomingMessage.MaxBodySize, Option.some(FileSystem.Size(bodyLimitBytes))),
      lifecycle.track
    )

    const elapsed = performance.now() - started
    const metrics = metricsFor(request.method, route, response.status)
    yield* Metric.increment(metrics.count)
    yield* Metric.update(metrics.duration, elapsed / 1000)
    yield* Effect.logInfo(`${request.method} ${path} ${response.status}`).pipe(
      Effect.annotateLogs({ duration_ms: Math.round(elapsed * 100) / 100, route })
    )
    return HttpServerResponse.setHeaders(response, {
      [RequestIdHeader]: requestId,
      "x-process-time": elapsed.toFixed(2),
      // A draining server asks clients to reconnect elsewhere, so keep-alive connections end.
      ...(lifecycle.isDraining() ? { connection: "close" } : {})
    })
  })

const requestContext = <E, R>(app: HttpApp.Default<E, R>) =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    const requestId = requestIdFrom(request.headers[RequestIdHeader])
    return observe(app, request, requestId).pipe(
      Effect.locally(CurrentRequestId, requestId),
      Effect.annotateLogs("request_id", requestId)
    )
  })

const cors = (config: AppConfigShape) =>
  config.corsOrigins.length === 0
    ? <E, R>(app: HttpApp.Default<E, R>) => app
    : HttpMiddleware.cors({
      allowedOrigins: config.corsOrigins,
      credentials: true,
      allowedHeaders: ["authorization", "content-type", "x-request-id", "x-csrf-token"],
      exposedHeaders: ["x-request-id", "x-process-time", "retry-after", "ratelimit", "ratelimit-policy"],
      maxAge: 600
    })

/** The middleware the HTTP server applies around the API app. */
export const serverMiddleware = (config: AppConfigShape) => {
  const withCors = cors(config)
  return <E, R>(app: HttpApp.Default<E, R>) => requestContext(compression(withCors(app)))
}
