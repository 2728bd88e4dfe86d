/**
 * What every HTTP request goes through, outermost first: the request id, timing, access log,
 * metrics and in-flight tracking; compression; CORS. It wraps the whole router, so anything no
 * endpoint rendered (no route, a defect outside one) is rendered here in the one error shape too.
 * The server span around it is the platform's (HttpMiddleware.tracer, named and filtered in
 * HttpServerLive).
 */
import { Context, Effect, Metric, References, Tracer, type Types } from "effect"
import { HttpMiddleware, HttpRouter, HttpServerError, HttpServerRequest, HttpServerResponse } from "effect/http"
import type { IncomingMessage } from "node:http"
import { AppConfig, type AppConfigShape } from "../config/AppConfig.ts"
import { httpDuration, httpRequests } from "../telemetry/HttpMetrics.ts"
import { MalformedRequest } from "./ApiError.ts"
import { compress } from "./Compression.ts"
import { errorResponse, renderCause } from "./ErrorResponse.ts"
import { CurrentRequestId, RequestIdHeader, requestIdFrom } from "./RequestId.ts"
import { pathOf, type RouteTable } from "./RouteTable.ts"
import { ServerLifecycle } from "./ServerLifecycle.ts"

/**
 * The request metrics' series, one per method, route and status: each combination gets a context
 * of its own (the registry and the attributes) built once, so that an update neither copies the
 * request's context nor merges attributes. Routes are templates and Node only parses known
 * methods, so the combinations are few.
 */
const seriesContexts = new Map<string, Context.Context<never>>()
const seriesContext = (registry: Context.Context<never>, method: string, route: string, status: number): Context.Context<never> => {
  const key = `${method} ${route} ${status}`
  let context = seriesContexts.get(key)
  if (context === undefined) {
    context = Context.add(registry, Metric.CurrentMetricAttributes, {
      "http.request.method": method,
      "http.route": route,
      "http.response.status_code": String(status)
    })
    seriesContexts.set(key, context)
  }
  return context
}

type App = Effect.Effect<HttpServerResponse.HttpServerResponse, Types.unhandled>

const cors = (
  config: AppConfigShape
): ((app: App) => Effect.Effect<HttpServerResponse.HttpServerResponse, Types.unhandled, HttpServerRequest.HttpServerRequest>) =>
  config.corsOrigins.length === 0
    ? (app) => app
    : HttpMiddleware.cors({
        allowedOrigins: config.corsOrigins,
        credentials: true,
        allowedHeaders: ["authorization", "content-type", "x-request-id", "x-csrf-token"],
        exposedHeaders: ["x-request-id", "x-process-time", "retry-after", "ratelimit", "ratelimit-policy"],
        maxAge: 600
      })

/**
 * Only a declared route is served: a path no template spells exactly is 404, and a method the
 * path does not answer is 405 with Allow, both before routing. The router would otherwise hand a
 * literal path to a parameter sibling that has the method (DELETE /documents/batch to DELETE
 * /documents/{id}, which then refuses `batch` as an id), and serve a path ended by `;`.
 */
const declaredRoutesOnly =
  (routes: RouteTable) =>
  (app: App): App =>
    Effect.withFiber((fiber) => {
      const request = Context.getUnsafe(fiber.context, HttpServerRequest.HttpServerRequest)
      return routes.allowedMethods(request.url).includes(request.method) || routes.isInternal(request.method, request.url)
        ? app
        : // The router's own failure for an unknown route, rendered by renderCause like one.
          Effect.die(new HttpServerError.HttpServerError({ reason: new HttpServerError.RouteNotFound({ request }) }))
    })

/**
 * HTTP/1.1 requires a Host header (RFC 9112, section 3.2). Node's own refusal is a bare 400, so the
 * server is created without it (`requireHostHeader: false`) and refuses here, in the one shape,
 * closing the connection as Node does.
 */
const hostRequired = (app: App): App =>
  Effect.withFiber((fiber) => {
    const request = Context.getUnsafe(fiber.context, HttpServerRequest.HttpServerRequest)
    return request.headers.host !== undefined || (request.source as IncomingMessage).httpVersion !== "1.1"
      ? app
      : errorResponse(new MalformedRequest({ message: "The request has no Host header, which HTTP/1.1 requires" }))
  })

/** The middleware the HTTP server applies around its router. */
export const serverMiddleware = (
  config: AppConfigShape,
  lifecycle: Context.Service.Shape<typeof ServerLifecycle>,
  routes: RouteTable,
  metricRegistry: Context.Service.Shape<typeof Metric.MetricRegistry>
) => {
  const withCors = cors(config)
  const registry = Context.make(Metric.MetricRegistry, metricRegistry)
  return (app: App): App => {
    const rendered = lifecycle.track(
      Effect.catchCause(withCors(hostRequired(declaredRoutesOnly(routes)(app))), (cause) => renderCause(cause, routes))
    )
    return Effect.withFiber((fiber) => {
      const started = performance.now()
      const context = fiber.context
      const request = Context.getUnsafe(context, HttpServerRequest.HttpServerRequest)
      const requestId = requestIdFrom(request.headers[RequestIdHeader])
      // Only a sampled span records attributes (/health has none at all).
      const span = Context.getOrUndefined(context, Tracer.ParentSpan)
      if (span !== undefined && span._tag === "Span" && span.sampled) span.attribute("http.request.id", requestId)
      // One context update carries the id to the error renderer and to every log line.
      const annotations = fiber.getRef(References.CurrentLogAnnotations)
      // Fiber types its context as Context<never>; it holds the request being served.
      const requestContext = Context.add(Context.add(context, CurrentRequestId, requestId), References.CurrentLogAnnotations, {
        ...annotations,
        request_id: requestId
      }) as Context.Context<HttpServerRequest.HttpServerRequest>
      const served = Effect.flatMap(rendered, (response) => {
        const compressed = compress(request, response)
        return HttpServerResponse.isHttpServerResponse(compressed)
          ? finish(request, requestId, started, compressed)
          : Effect.flatMap(compressed, (response) => finish(request, requestId, started, response))
      })
      return Effect.updateContext(served, (_: Context.Context<never>) => requestContext)
    })
  }

  function finish(
    request: HttpServerRequest.HttpServerRequest,
    requestId: string,
    started: number,
    response: HttpServerResponse.HttpServerResponse
  ): Effect.Effect<HttpServerResponse.HttpServerResponse> {
    const elapsed = performance.now() - started
    const route = routes.match(request.method, request.url) ?? "unmatched"
    const series = seriesContext(registry, request.method, route, response.status)
    httpRequests.updateUnsafe(1, series)
    httpDuration.updateUnsafe(elapsed / 1000, series)
    const withHeaders = HttpServerResponse.setHeaders(response, {
      [RequestIdHeader]: requestId,
      "x-process-time": elapsed.toFixed(2),
      // A draining server asks clients to reconnect elsewhere, so keep-alive connections end.
      ...(lifecycle.isDraining() ? { connection: "close" } : {})
    })
    // The runners' own traffic (health pings every few seconds) would bury the clients' requests.
    const log = routes.isInternal(request.method, request.url) ? Effect.logDebug : Effect.logInfo
    return Effect.as(
      Effect.annotateLogs(log(`${request.method} ${pathOf(request.url)} ${response.status}`), {
        duration_ms: Math.round(elapsed * 100) / 100,
        route
      }),
      withHeaders
    )
  }
}

/** The server middleware, around every route of the router (routes outside the HttpApi too). */
export const ServerMiddlewareLive = (routes: RouteTable) =>
  HttpRouter.middleware(
    Effect.gen(function* () {
      const config = yield* AppConfig
      const lifecycle = yield* ServerLifecycle
      return serverMiddleware(config, lifecycle, routes, yield* Metric.MetricRegistry)
    }),
    { global: true }
  )
