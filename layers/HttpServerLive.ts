/**
 * The HTTP server: Node's http server (Deno runs the same code through its Node compatibility),
 * the API served on it with the server middleware, and graceful shutdown. On SIGTERM or SIGINT
 * the server stops accepting, /ready turns 503, in-flight requests get up to
 * BASALT_SHUTDOWN_GRACE to finish, then remaining connections are cut and the layers below
 * (database, telemetry) close in turn.
 */
import { HttpApiBuilder, HttpServer, type HttpApi } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Context, Effect, Layer, Schedule } from "effect"
import { createServer, IncomingMessage, type Server } from "node:http"
import { AppConfig } from "../src/config/AppConfig.ts"
import { ErrorResponseLive } from "../src/http/ErrorResponse.ts"
import { requestBodyLayer } from "../src/http/RequestBody.ts"
import { RouteTable } from "../src/http/RouteTable.ts"
import { serverMiddleware } from "../src/http/ServerMiddleware.ts"
import { ServerLifecycle } from "../src/http/ServerLifecycle.ts"

class NodeServer extends Context.Tag("basalt/NodeServer")<NodeServer, Server>() {}

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
    return Layer.merge(
      NodeHttpServer.layer(() => server, { port: config.port, host: config.host }),
      Layer.succeed(NodeServer, server)
    )
  })
)

const drain = Effect.gen(function*() {
  const server = yield* NodeServer
  const lifecycle = yield* ServerLifecycle
  const { shutdownGrace } = yield* AppConfig
  yield* lifecycle.startDraining
  // Stop accepting; Node also closes the idle keep-alive connections.
  server.close()
  yield* Effect.logInfo(`shutting down: waiting for ${lifecycle.inFlight()} in-flight request(s)`)
  const finished = yield* Effect.sync(lifecycle.inFlight).pipe(
    Effect.repeat({ schedule: Schedule.spaced("10 millis"), until: (n) => n === 0 }),
    Effect.timeoutOption(shutdownGrace)
  )
  if (finished._tag === "None") {
    yield* Effect.logWarning(`shutdown grace period over: cutting ${lifecycle.inFlight()} request(s)`)
  }
  server.closeAllConnections()
})

const announce = Effect.gen(function*() {
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
  // only see responses already written.
  const serving = Layer.unwrapEffect(
    Effect.gen(function*() {
      const config = yield* AppConfig
      const app = yield* HttpApiBuilder.httpApp
      return HttpServer.serve(serverMiddleware(config)(app))
    })
  ).pipe(
    Layer.provide(apiLive),
    Layer.provide([ErrorResponseLive, requestBodyLayer(api)]),
    Layer.provide([routes, HttpApiBuilder.Router.Live, HttpApiBuilder.Middleware.layer]),
    Layer.provideMerge(NodeServerLive)
  )
  return Layer.scopedDiscard(Effect.zipRight(announce, Effect.addFinalizer(() => drain))).pipe(
    Layer.provideMerge(serving)
  )
}
