/**
 * A second baseline for bench/http.ts: the smallest server on the same Effect platform stack as
 * Basalt (NodeHttpServer, HttpRouter, one route answering the same body, untraced like Basalt's
 * /health), with none of Basalt's code. What it costs over bare node:http is the framework's
 * share; what Basalt costs over it is Basalt's.
 */
import { HttpMiddleware, HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Layer } from "effect"
import { createServer } from "node:http"

const router = HttpRouter.empty.pipe(HttpRouter.get("/health", HttpServerResponse.json({ status: "ok" })))

const ServerLive = HttpServer.serve(router).pipe(
  HttpMiddleware.withTracerDisabledForUrls(["/health"]),
  Layer.provide(
    NodeHttpServer.layer(() => createServer(), { port: Number(process.env["PORT"]), host: process.env["HOST"] ?? "127.0.0.1" })
  )
)

NodeRuntime.runMain(Layer.launch(ServerLive))
