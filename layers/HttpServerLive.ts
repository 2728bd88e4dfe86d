/**
 * The HTTP server: Node's http server (Deno runs the same code through its Node compatibility),
 * the API served on it with the server middleware, and graceful shutdown. On SIGTERM or SIGINT
 * the server stops accepting, /ready turns 503, in-flight requests get up to
 * BASALT_SHUTDOWN_GRACE to finish, then remaining connections are cut and the layers below
 * (database, telemetry) close in turn.
 */
import { HttpApiBuilder, HttpMiddleware, HttpServer, type HttpApi } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Context, Effect, Layer, Schedule } from "effect"
import { createServer, IncomingMessage, type Server, type ServerResponse } from "node:http"
import { Server as NetServer, type Socket } from "node:net"
import { AppConfig } from "../src/config/AppConfig.ts"
import { ErrorResponseLive } from "../src/http/ErrorResponse.ts"
import { requestBodyLayer } from "../src/http/RequestBody.ts"
import { RouteTable } from "../src/http/RouteTable.ts"
import { serverMiddleware } from "../src/http/ServerMiddleware.ts"
import { ServerLifecycle } from "../src/http/ServerLifecycle.ts"

class NodeServer extends Context.Tag("basalt/NodeServer")<NodeServer, {
  readonly server: Server
  /** Each open connection, with how many of its requests' responses are not yet written out. */
  readonly connections: ReadonlyMap<Socket, number>
  /** Hands the requests that arrived before the app was attached to it; later ones go straight. */
  readonly releaseEarlyRequests: () => void
}>() {}

/**
 * The server listens a moment before the app's request handler is attached (the platform starts
 * listening, then serves). A request in that gap would be emitted to no one and hang, so it is
 * held here and handed to the app once it is attached.
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

/**
 * A request whose body read is abandoned (the body limit was hit) is paused instead of destroyed:
 * destroying it would kill the socket before the 413 is written. The 413 carries
 * `Connection: close`, so Node closes the connection once it is sent.
 */
class AbandonableIncomingMessage extends IncomingMessage {
  override destroy(error?: Error): this {
    if (error === undefined && !this.complete && !this.socket.destroyed) {
      this.pause()
      return this
    }
    return super.destroy(error)
  }
}

const NodeServerLive = Layer.unwrapEffect(
  Effect.map(AppConfig, (config) => {
    const server = createServer({ IncomingMessage: AbandonableIncomingMessage })
    const connections = trackConnections(server)
    const releaseEarlyRequests = holdEarlyRequests(server)
    return Layer.merge(
      NodeHttpServer.layer(() => server, { port: config.port, host: config.host }),
      Layer.succeed(NodeServer, { server, connections, releaseEarlyRequests })
    )
  })
)

const drain = Effect.gen(function*() {
  const { server, connections } = yield* NodeServer
  const lifecycle = yield* ServerLifecycle
  const { shutdownGrace } = yield* AppConfig
  // Requests received whose responses are not fully written: the handlers still running (the
  // lifecycle's count) and the responses Node still holds.
  const inFlight = () => Math.max(lifecycle.inFlight(), [...connections.values()].reduce((sum, n) => sum + n, 0))
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

const announce = Effect.gen(function*() {
  const { releaseEarlyRequests } = yield* NodeServer
  releaseEarlyRequests()
  const address = (yield* HttpServer.HttpServer).address
  if (address._tag === "TcpAddress") {
    const host = address.hostname === "0.0.0.0" || address.hostname === "::" ? "localhost" : address.hostname
    yield* Effect.logInfo(`Basalt listening on http://${host}:${address.port} (docs at http://${host}:${address.port}/docs)`)
  }
})

/**
 * Serves `api` (whose handlers `apiLive` provides). Built after the server listens, the drain
 * finalizer runs first on shutdown, before the server stops handling requests.
 */
export const serveApi = <A extends HttpApi.HttpApi.Any, E, R>(api: A, apiLive: Layer.Layer<HttpApi.Api, E, R>) => {
  const routes = RouteTable.fromApi(api)
  // The server middleware wraps the app before it is served: middleware handed to serve() would
  // only see responses already written. The server starts listening only once the app is built,
  // and the requests of the moment between listening and serving are held (holdEarlyRequests).
  const serving = Layer.unwrapEffect(
    Effect.gen(function*() {
      const config = yield* AppConfig
      const app = yield* HttpApiBuilder.httpApp
      return HttpServer.serve(serverMiddleware(config)(app)).pipe(
        // Liveness probes arrive every few seconds from every orchestrator: as spans they would
        // only bury the traces that matter. They are still counted and logged.
        HttpMiddleware.withTracerDisabledForUrls(["/health"]),
        Layer.provideMerge(NodeServerLive)
      )
    })
  ).pipe(
    Layer.provide(apiLive),
    Layer.provide([ErrorResponseLive, requestBodyLayer(api)]),
    Layer.provide([routes, HttpApiBuilder.Router.Live, HttpApiBuilder.Middleware.layer])
  )
  return Layer.scopedDiscard(Effect.zipRight(announce, Effect.addFinalizer(() => drain))).pipe(
    Layer.provideMerge(serving)
  )
}
