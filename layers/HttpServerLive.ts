/**
 * The HTTP server: Node's http server (Deno runs the same code through its Node compatibility),
 * one router serving the API (and whatever other routes are added to it) with the server
 * middleware, and graceful shutdown. On SIGTERM or SIGINT the server stops accepting, /ready
 * turns 503, in-flight requests get up to BASALT_SHUTDOWN_GRACE to finish, then remaining
 * connections are cut and the layers below (database, telemetry) close in turn.
 */
import { NodeHttpServer } from "@effect/platform-node"
import { ByteSize, Context, Effect, Layer, Schedule, Tracer } from "effect"
import { HttpMiddleware, HttpRouter, HttpServer } from "effect/http"
import { MaxBodySize } from "effect/http/HttpIncomingMessage"
import { HttpApi, HttpApiBuilder, type HttpApiGroup } from "effect/http-api"
import * as NetAddress from "effect/net/NetAddress"
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import { Server as NetServer, type Socket } from "node:net"
import { AppConfig } from "../src/config/AppConfig.ts"
import { ErrorResponse } from "../src/http/ErrorResponse.ts"
import { requestBodyLayer } from "../src/http/RequestBody.ts"
import { RouteTable } from "../src/http/RouteTable.ts"
import { ServerMiddlewareLive } from "../src/http/ServerMiddleware.ts"
import { ServerLifecycle } from "../src/http/ServerLifecycle.ts"

class NodeServer extends Context.Service<
  NodeServer,
  {
    readonly server: Server
    /** Each open connection, with how many of its requests' responses are not yet written out. */
    readonly connections: ReadonlyMap<Socket, number>
    /** Hands the requests that arrived before the app was attached to it; later ones go straight. */
    readonly releaseEarlyRequests: () => void
  }
>()("basalt/NodeServer") {}

/**
 * The server listens a moment before the app's request handler is attached (the platform starts
 * listening, then builds the router and serves). A request in that gap would be emitted to no one
 * and hang, so it is held here and handed to the app once it is attached.
 */
export const holdEarlyRequests = (server: Server): (() => void) => {
  const held: Array<readonly [IncomingMessage, ServerResponse]> = []
  let attached = false
  const hold = (request: IncomingMessage, response: ServerResponse) => {
    if (!attached) held.push([request, response])
  }
  server.on("request", hold)
  const ownListeners = new Set(server.listeners("request"))
  return () => {
    attached = true
    const appListeners = server.listeners("request").filter((listener) => !ownListeners.has(listener))
    for (const [request, response] of held.splice(0)) {
      for (const listener of appListeners) listener.call(server, request, response)
    }
  }
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

const NodeServerLive = Layer.unwrap(
  Effect.gen(function* () {
    const config = yield* AppConfig
    const server = createServer()
    const connections = trackConnections(server)
    const releaseEarlyRequests = holdEarlyRequests(server)
    return Layer.merge(
      // Draining is Basalt's own (below): the platform's shutdown finds the listener closed.
      NodeHttpServer.layer(() => server, { port: config.port, host: config.host }),
      Layer.succeed(NodeServer, { server, connections, releaseEarlyRequests })
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
      // Liveness probes arrive every few seconds from every orchestrator: as spans they would
      // only bury the traces that matter. They are still counted and logged.
      HttpMiddleware.layerTracerDisabledForUrls(["/health"])
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
  const { releaseEarlyRequests } = yield* NodeServer
  releaseEarlyRequests()
  const address = (yield* HttpServer.HttpServer).address
  if (NetAddress.isInetAddress(address)) {
    const host = NetAddress.isUnspecified(address.address) ? "localhost" : NetAddress.formatIp(address.address)
    const url = `http://${host}:${address.port}`
    // Names the runtime: npm scripts run the Node pinned in package.json, not the machine's.
    yield* Effect.logInfo(`Basalt listening on ${url} (docs at ${url}/docs)`).pipe(
      Effect.annotateLogs("runtime", process.versions["deno"] ? `deno ${process.versions["deno"]}` : `node ${process.version}`)
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
 * carry layers that live as long as the server). Every API declares ErrorResponse last; it and the
 * body guard are provided here. Built after the server serves, the drain finalizer runs first on
 * shutdown, before the server stops handling requests.
 */
export const serveApi = <Id extends string, Groups extends HttpApiGroup.Constraint, A, E, R>(
  api: HttpApi.HttpApi<Id, Groups>,
  handlers: Layer.Layer<A, E, R>
) => {
  requireErrorResponse(api)
  const routes = RouteTable.fromApi(api)
  const router = Layer.merge(
    HttpApiBuilder.layer(api).pipe(Layer.provide(Layer.provide(handlers, [ErrorResponse.layer, requestBodyLayer]))),
    ServerMiddlewareLive(routes)
  )
  const serving = Layer.unwrap(
    Effect.withFiber((fiber) =>
      Effect.succeed(
        HttpRouter.serve(router, {
          disableLogger: true,
          disableListenLog: true,
          // Without a tracer backend the platform makes no server span, unless the server has a
          // middleware of its own (which it runs inside one). The span's ids are what tie a request's
          // log lines together, so then a pass-through middleware keeps it.
          ...(fiber.getRef(Tracer.Tracer) === Tracer.nativeTracer ? { middleware: passThrough } : {})
        })
      )
    )
  ).pipe(Layer.provide(RequestReferencesLive), Layer.provideMerge(NodeServerLive))
  return Layer.effectDiscard(
    Effect.andThen(
      announce,
      Effect.addFinalizer(() => drain)
    )
  ).pipe(Layer.provideMerge(serving))
}
