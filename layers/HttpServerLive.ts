/**
 * The HTTP server: Node's http server (Deno runs the same code through its Node compatibility),
 * one router serving the API (and whatever other routes are added to it) with the server
 * middleware, and graceful shutdown. The port is bound first (`listen`), and answers while the
 * rest starts: /health 200, /ready 503, every other operation 503 with Retry-After. On SIGTERM or
 * SIGINT the server stops accepting, /ready turns 503, in-flight requests get up to
 * BASALT_SHUTDOWN_GRACE to finish, then remaining connections are cut and the layers below
 * (database, telemetry) close in turn.
 */
import { NodeHttpServer } from "@effect/platform-node"
import { ByteSize, Cause, Context, Duration, Effect, Layer, Metric, References, Schedule, Tracer } from "effect"
import { HttpMiddleware, HttpRouter, HttpServer, HttpServerError, HttpServerRequest, HttpServerResponse } from "effect/http"
import { MaxBodySize } from "effect/http/HttpIncomingMessage"
import { HttpApi, HttpApiBuilder, type HttpApiGroup } from "effect/http-api"
import * as NetAddress from "effect/net/NetAddress"
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import { Server as NetServer, type Socket } from "node:net"
import { maxChatFrameBytes } from "../src/chat/ChatSocket.ts"
import { clusterTransportPath } from "../src/cluster/ClusterTransport.ts"
import { AppConfig } from "../src/config/AppConfig.ts"
import { NotReady, ServiceUnavailable } from "../src/http/ApiError.ts"
import { Availability, ErrorResponse, errorResponse, renderCause } from "../src/http/ErrorResponse.ts"
import { answerParserErrors } from "../src/http/ParserErrors.ts"
import { requestBodyLayer } from "../src/http/RequestBody.ts"
import { queryParametersLayer } from "../src/http/RequestParams.ts"
import { exactRouting, type InternalRoute, RouteTable } from "../src/http/RouteTable.ts"
import { ServerMiddlewareLive, serverMiddleware } from "../src/http/ServerMiddleware.ts"
import { ServerLifecycle } from "../src/http/ServerLifecycle.ts"

class NodeServer extends Context.Service<
  NodeServer,
  {
    readonly server: Server
    /** Each open connection, with how many of its requests' responses are not yet written out. */
    readonly connections: ReadonlyMap<Socket, number>
  }
>()("basalt/NodeServer") {}

type RequestListener = (request: IncomingMessage, response: ServerResponse) => void

/**
 * The server listens long before the app's request handler is attached (the database is awaited
 * and migrated, the rest started in between). Until then `answer` answers every request; from the
 * moment the app's handler is attached, the app alone does. Each request gets exactly one answer.
 */
export const answerUntilAttached = (server: Server, answer: RequestListener): void => {
  const ownListeners = new Set(server.listeners("request"))
  const gate: RequestListener = (request, response) => {
    if (server.listeners("request").some((listener) => listener !== gate && !ownListeners.has(listener))) {
      server.off("request", gate)
      return
    }
    answer(request, response)
  }
  server.on("request", gate)
}

/**
 * Counts, per connection, the requests whose response has not been written out yet: a response
 * counts from its request until Node has handed its last byte to the socket ("close" after
 * "finish"), which is later than the handler returning it when the body is large and the client
 * slow.
 */
const trackConnections = (server: Server): ReadonlyMap<Socket, number> => {
  const unwritten = new Map<Socket, number>()
  server.on("connection", (socket: Socket) => {
    unwritten.set(socket, 0)
    socket.once("close", () => unwritten.delete(socket))
  })
  server.on("request", (request: IncomingMessage, response: ServerResponse) => {
    const socket = request.socket
    unwritten.set(socket, (unwritten.get(socket) ?? 0) + 1)
    response.once("close", () => {
      const count = unwritten.get(socket)
      if (count !== undefined) unwritten.set(socket, count - 1)
    })
  })
  return unwritten
}

/**
 * What the server answers while it starts: alive, not ready, and 503 with Retry-After for every
 * operation (unknown paths and methods 404 and 405 as always).
 */
const startingApp = (routes: RouteTable): Effect.Effect<HttpServerResponse.HttpServerResponse> =>
  // The request is in every request fiber's context (as for the server middleware around this).
  Effect.withFiber((fiber) => {
    const request = Context.getUnsafe(fiber.context, HttpServerRequest.HttpServerRequest)
    // An internal route is not there until the app is: its callers find the runner unavailable.
    switch (routes.isInternal(request.method, request.url) ? undefined : routes.match(request.method, request.url)) {
      case undefined:
        return Effect.orDie(
          renderCause(Cause.fail(new HttpServerError.HttpServerError({ reason: new HttpServerError.RouteNotFound({ request }) })), routes)
        )
      case "/health":
        return Effect.succeed(HttpServerResponse.jsonUnsafe({ status: "ok" }))
      case "/ready":
        return errorResponse(
          new NotReady({
            message: "The server is not ready",
            details: [{ path: "server", message: "The server is starting: waiting for its database and migrations" }]
          })
        )
      default:
        return errorResponse(new ServiceUnavailable({ message: "The server is starting. Try again in 2 s", retryAfterSeconds: 2 }))
    }
  })

/**
 * Binds the port, before anything else starts, and answers with `startingApp` (through the same
 * server middleware as the API: request id, access log, metrics) until `serveApi` attaches the
 * API. A port in use fails the start at once.
 */
export const listen = <Id extends string, Groups extends HttpApiGroup.Constraint>(
  api: HttpApi.HttpApi<Id, Groups>,
  internal: ReadonlyArray<InternalRoute> = []
) =>
  Layer.unwrap(
    Effect.gen(function* () {
      const config = yield* AppConfig
      const lifecycle = yield* ServerLifecycle
      const routes = RouteTable.fromApi(api, internal)
      const middleware = serverMiddleware(config, lifecycle, routes, yield* Metric.MetricRegistry)
      const starting = yield* NodeHttpServer.makeHandler(middleware(startingApp(routes)), { scope: yield* Effect.scope })
      // Node's own bound on receiving a whole request (5 minutes) would cut a slower upload that
      // BASALT_UPLOAD_TIMEOUT allows with a bare 408 of its own; the upload's bound answers first.
      const requestTimeout = Math.max(300_000, Duration.toMillis(config.uploadTimeout) + 10_000)
      // A request without Host is refused by the server middleware, in the one error shape.
      const server = createServer({ requestTimeout, requireHostHeader: false })
      const connections = trackConnections(server)
      answerUntilAttached(server, starting)
      const context = yield* Effect.context<never>()
      answerParserErrors(server, (message, annotations) =>
        Effect.runForkWith(context)(Effect.logInfo(message).pipe(Effect.annotateLogs(annotations)))
      )
      return Layer.merge(
        // Draining is Basalt's own (below): the platform's shutdown finds the listener closed.
        NodeHttpServer.layer(() => server, {
          port: config.port,
          host: config.host,
          // The chat socket's frames are small (ChatSocket): a larger one closes the socket (1009)
          // before it is held in memory.
          websocket: { maxPayload: maxChatFrameBytes }
        }),
        Layer.succeed(NodeServer, { server, connections })
      )
    })
  )

/**
 * What every request reads from its context, set once for the server rather than per request:
 * the body limit, the server span's name, and the requests that get no span.
 */
const RequestReferencesLive = Layer.unwrap(
  Effect.gen(function* () {
    const { bodyLimitBytes } = yield* AppConfig
    return Layer.mergeAll(
      Layer.succeed(MaxBodySize, ByteSize.bytes(bodyLimitBytes)),
      Layer.succeed(HttpMiddleware.SpanNameGenerator, (request) => `http.server ${request.method}`),
      // Liveness probes arrive every few seconds from every orchestrator, runner health pings
      // from every other process: as spans they would only bury the traces that matter. They are
      // still counted and logged.
      HttpMiddleware.layerTracerDisabledForUrls(["/health", clusterTransportPath])
    )
  })
)

const drain = Effect.gen(function* () {
  const { server, connections } = yield* NodeServer
  const lifecycle = yield* ServerLifecycle
  const { shutdownGrace } = yield* AppConfig
  // Requests received whose responses are not fully written: the handlers still running (the
  // lifecycle's count) and the responses Node still holds.
  const inFlight = () =>
    Math.max(
      lifecycle.inFlight(),
      [...connections.values()].reduce((sum, n) => sum + n, 0)
    )
  yield* lifecycle.startDraining
  // Stop accepting, and learn when the last connection has closed. Not http.Server#close: since
  // Node 19 it also destroys the connections it deems idle, which include one whose response has
  // ended but is not yet written out (a large body to a slow reader), cutting that response.
  let connectionsClosed = false
  NetServer.prototype.close.call(server, () => {
    connectionsClosed = true
  })
  yield* Effect.logInfo(`shutting down: waiting for ${inFlight()} in-flight request(s)`)
  const finished = yield* Effect.sync(() => {
    // Each connection closes once it carries nothing unwritten (idle keep-alive ones at once).
    for (const [socket, unwritten] of connections) if (unwritten === 0) socket.destroy()
    return lifecycle.inFlight() === 0 && connectionsClosed
  }).pipe(
    Effect.repeat({ schedule: Schedule.spaced("10 millis"), until: (done) => done }),
    // Finalizers run uninterruptibly, and a timeout cannot stop an uninterruptible wait.
    Effect.interruptible,
    Effect.timeoutOption(shutdownGrace)
  )
  if (finished._tag === "None") {
    yield* Effect.logWarning(`shutdown grace period over: cutting ${inFlight()} request(s)`)
  }
  server.closeAllConnections()
})

const announce = Effect.gen(function* () {
  const address = (yield* HttpServer.HttpServer).address
  if (NetAddress.isInetAddress(address)) {
    const host = NetAddress.isUnspecified(address.address) ? "localhost" : NetAddress.formatIp(address.address)
    const url = `http://${host}:${address.port}`
    // Names the runtime: npm scripts run the Node pinned in package.json, not the machine's.
    yield* Effect.logInfo(
      `Basalt listening on ${url} (documentation: ${url}/docs Swagger UI, ${url}/redoc ReDoc, ${url}/openapi.yaml the contract)`
    ).pipe(
      Effect.annotateLogs("runtime", process.versions["deno"] ? `deno ${process.versions["deno"]}` : `node ${process.version}`),
      // Whatever LOG_LEVEL says: with PORT=0 this line is the only way to learn the port.
      Effect.provideService(References.MinimumLogLevel, "Info")
    )
  }
})

const passThrough = <A>(app: A): A => app

/** An endpoint without ErrorResponse outermost would answer its errors in their Schemas' own shape. */
const requireErrorResponse = <Id extends string, Groups extends HttpApiGroup.Constraint>(api: HttpApi.HttpApi<Id, Groups>) => {
  const missing: Array<string> = []
  HttpApi.reflect(api, {
    onGroup() {},
    onEndpoint({ endpoint, group, middleware }) {
      if ([...middleware].at(-1)?.key !== ErrorResponse.key) missing.push(`${group.identifier}.${endpoint.identifier}`)
    }
  })
  if (missing.length > 0) {
    throw new Error(`declare .middleware(ErrorResponse) last on the API; it does not wrap ${missing.join(", ")}`)
  }
}

/**
 * Serves `api`, whose groups `handlers` implement (it may add routes of its own to the router, and
 * carry layers that live as long as the server), on the server `listen(api)` bound. Every API
 * declares ErrorResponse last; it, Availability, the body guard and the query guard are provided
 * here. Built after the server serves, the drain finalizer runs first on shutdown, before the
 * server stops handling requests.
 */
export const serveApi = <Id extends string, Groups extends HttpApiGroup.Constraint, A, E, R>(
  api: HttpApi.HttpApi<Id, Groups>,
  handlers: Layer.Layer<A, E, R>,
  internal: ReadonlyArray<InternalRoute> = []
) => {
  requireErrorResponse(api)
  const routes = RouteTable.fromApi(api, internal)
  const router = Layer.merge(
    HttpApiBuilder.layer(api).pipe(
      Layer.provide(Layer.provide(handlers, [ErrorResponse.layer, Availability.layer, requestBodyLayer, queryParametersLayer]))
    ),
    ServerMiddlewareLive(routes)
  )
  const serving = Layer.unwrap(
    Effect.withFiber((fiber) =>
      Effect.succeed(
        HttpRouter.serve(router, {
          disableLogger: true,
          disableListenLog: true,
          routerConfig: exactRouting,
          // Without a tracer backend the platform makes no server span, unless the server has a
          // middleware of its own (which it runs inside one). The span's ids are what tie a request's
          // log lines together, so then a pass-through middleware keeps it.
          ...(fiber.getRef(Tracer.Tracer) === Tracer.nativeTracer ? { middleware: passThrough } : {})
        })
      )
    )
  ).pipe(Layer.provide(RequestReferencesLive))
  return Layer.effectDiscard(
    Effect.andThen(
      announce,
      Effect.addFinalizer(() => drain)
    )
  ).pipe(Layer.provideMerge(serving))
}
