/**
 * A second baseline for bench/http.ts: the smallest server of Basalt's shape on Effect 4.1, with
 * none of Basalt's code: an HttpApi group (GET /health untraced, GET /api/v1/users/me), a bearer
 * middleware providing the user, a request id, one JSON log line per request (Basalt's logger)
 * and Schema-encoded bodies. What it costs over bare node:http is the framework's share; what
 * Basalt costs over it is Basalt's.
 *
 * The one accepted token is FLOOR_TOKEN (default `floor-token`): the check is a comparison, so the
 * authenticated route measures the middleware and encoding, not a signature.
 */
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Context, DateTime, Effect, Layer, Logger, Redacted, Schema } from "effect"
import { HttpMiddleware, HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { HttpApi, HttpApiBuilder, HttpApiEndpoint, HttpApiGroup, HttpApiMiddleware, HttpApiSecurity } from "effect/http-api"
import { randomUUID } from "node:crypto"
import { createServer } from "node:http"
import { jsonLogger } from "../src/telemetry/JsonLogger.ts"

const Health = Schema.Struct({ status: Schema.Literal("ok") })

const User = Schema.Struct({
  id: Schema.String,
  email: Schema.String,
  display_name: Schema.String,
  role: Schema.Literals(["admin", "curator", "basic"]),
  active: Schema.Boolean,
  created_at: Schema.DateTimeUtcFromString
})

class CurrentUser extends Context.Service<CurrentUser, typeof User.Type>()("floor/CurrentUser") {}

class Unauthorized extends Schema.TaggedError<Unauthorized>()(
  "Unauthorized",
  { message: Schema.String },
  {
    httpApiStatus: 401
  }
) {}

class Authentication extends HttpApiMiddleware.Service<Authentication, { provides: CurrentUser }>()("floor/Authentication", {
  security: { bearer: HttpApiSecurity.bearer },
  error: Unauthorized
}) {}

class FloorApi extends HttpApi.make("floor")
  .add(HttpApiGroup.make("health").add(HttpApiEndpoint.get("health", "/health", { success: Health })))
  .add(
    HttpApiGroup.make("users")
      .add(HttpApiEndpoint.get("me", "/api/v1/users/me", { success: User }))
      .middleware(Authentication)
  ) {}

const token = process.env["FLOOR_TOKEN"] ?? "floor-token"
const user: typeof User.Type = {
  id: "0190f3c4-5a6b-7c8d-9e0f-1a2b3c4d5e6f",
  email: "bench@example.com",
  display_name: "Bench",
  role: "admin",
  active: true,
  created_at: DateTime.makeUnsafe("2026-01-01T00:00:00.000Z")
}

const AuthenticationLive = Layer.succeed(Authentication, {
  bearer: (httpEffect, { credential }) =>
    Redacted.value(credential) === token
      ? Effect.provideService(httpEffect, CurrentUser, user)
      : Effect.fail(new Unauthorized({ message: "A valid access token is required" }))
})

const HealthLive = HttpApiBuilder.group(FloorApi, "health", (handlers) =>
  handlers.handle("health", () => Effect.succeed({ status: "ok" as const }))
)

const UsersLive = HttpApiBuilder.group(FloorApi, "users", (handlers) => handlers.handle("me", () => Effect.service(CurrentUser)))

/** The caller's x-request-id (or a new one) on the response and on the request's one log line. */
const RequestIdAndAccessLog = HttpRouter.middleware(
  (httpEffect) =>
    Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const requestId = request.headers["x-request-id"] ?? randomUUID()
      return yield* httpEffect.pipe(
        Effect.tap((response) => Effect.logInfo(`${request.method} ${request.url} ${response.status}`)),
        Effect.map(HttpServerResponse.setHeader("x-request-id", requestId)),
        Effect.annotateLogs("request_id", requestId)
      )
    }),
  { global: true }
)

const ApiLive = HttpApiBuilder.layer(FloorApi).pipe(Layer.provide([HealthLive, UsersLive]), Layer.provide(AuthenticationLive))

const ServerLive = HttpRouter.serve(Layer.mergeAll(ApiLive, RequestIdAndAccessLog), { disableLogger: true }).pipe(
  Layer.provide(HttpMiddleware.layerTracerDisabledForUrls(["/health"])),
  Layer.provide(
    NodeHttpServer.layer(() => createServer(), { port: Number(process.env["PORT"]), host: process.env["HOST"] ?? "127.0.0.1" })
  ),
  Layer.provide(Logger.layer([jsonLogger]))
)

NodeRuntime.runMain(Layer.launch(ServerLive))
