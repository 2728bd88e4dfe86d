/**
 * Who the caller is: a bearer access token, checked against its signature, its expiry, and the
 * database (the session must be live and the user active; see CallerCache for how soon a change
 * takes effect), then its rate limit (src/ratelimit/). Declared once per group of routes;
 * handlers receive the CurrentUser.
 */
import { HttpApiMiddleware, HttpApiSecurity } from "@effect/platform"
import { Context, Effect, Layer, Option, Redacted, Schema } from "effect"
import { Forbidden, RateLimited, Unauthorized } from "../http/ApiError.ts"
import { principalRateLimit } from "../ratelimit/RateLimitHttp.ts"
import { AccessTokens } from "./AccessTokens.ts"
import { ApiKeysRepo, apiKeyPrefix } from "./ApiKeysRepo.ts"
import { CallerCache } from "./CallerCache.ts"
import { type Caller, SessionsRepo } from "./SessionsRepo.ts"

export class CurrentUser extends Context.Tag("basalt/CurrentUser")<CurrentUser, Caller>() {}

const refused = (message: string) => new Unauthorized({ message })

/**
 * The caller behind a bearer credential, or why there is none. Both schemes arrive as
 * `Authorization: Bearer`; API keys are told apart by their prefix.
 */
const authenticate = Effect.gen(function*() {
  const tokens = yield* AccessTokens
  const sessions = yield* SessionsRepo
  const apiKeys = yield* ApiKeysRepo
  const cache = yield* CallerCache
  // A token is remembered with its caller, so a busy client neither re-verifies nor re-reads it.
  const callerOfAccessToken = (token: string) =>
    Effect.gen(function*() {
      const claims = yield* tokens.verify(token)
      if (Option.isNone(claims)) return undefined
      const { expiresAtMs, sessionId, userId } = claims.value
      const caller = yield* sessions.activeUser(sessionId, userId)
      return caller === undefined ? undefined : { caller, notAfterMs: expiresAtMs }
    })
  const callerOfApiKey = (secret: string) =>
    Effect.map(apiKeys.caller(secret), (caller) => (caller === undefined ? undefined : { caller }))

  const identify = (token: Redacted.Redacted): Effect.Effect<Caller, Unauthorized> =>
    Effect.gen(function*() {
      const value = Redacted.value(token)
      if (value === "") return yield* refused("A valid access token or API key is required")
      if (value.startsWith(apiKeyPrefix)) {
        const caller = yield* Effect.orDie(cache.get(`key:${value}`, callerOfApiKey(value)))
        if (caller === undefined) return yield* refused("The API key is invalid, expired or revoked")
        return caller
      }
      const caller = yield* Effect.orDie(cache.get(`jwt:${value}`, callerOfAccessToken(value)))
      if (caller === undefined) {
        return yield* refused("The access token is invalid or expired, its session has ended, or the account is deactivated")
      }
      return caller
    })
  // Once identified, the caller spends a token: each API key has a bucket, each user another.
  const rateLimited = yield* principalRateLimit
  return (token: Redacted.Redacted) =>
    rateLimited(identify(token), (caller) => caller.api_key_id === undefined ? `user:${caller.id}` : `key:${caller.api_key_id}`)
})

/** Any signed-in account. */
export class Authentication extends HttpApiMiddleware.Tag<Authentication>()("basalt/Authentication", {
  failure: Schema.Union(Unauthorized, RateLimited),
  provides: CurrentUser,
  security: { bearerJwt: HttpApiSecurity.bearer, apiKey: HttpApiSecurity.bearer }
}) {
  static readonly Live = Layer.effect(
    Authentication,
    Effect.map(authenticate, (bearer) => Authentication.of({ bearerJwt: bearer, apiKey: bearer }))
  ).pipe(Layer.provide([SessionsRepo.Default, ApiKeysRepo.Default]))
}

/** A signed-in admin: others get 403. */
export class AdminAuthentication extends HttpApiMiddleware.Tag<AdminAuthentication>()("basalt/AdminAuthentication", {
  failure: Schema.Union(Unauthorized, Forbidden, RateLimited),
  provides: CurrentUser,
  security: { bearerJwt: HttpApiSecurity.bearer, apiKey: HttpApiSecurity.bearer }
}) {
  static readonly Live = Layer.effect(
    AdminAuthentication,
    Effect.map(authenticate, (signedIn) => {
      const admin = (token: Redacted.Redacted) =>
        Effect.filterOrFail(
          signedIn(token),
          (user) => user.role === "admin",
          () => new Forbidden({ message: "This needs the admin role" })
        )
      return AdminAuthentication.of({ bearerJwt: admin, apiKey: admin })
    })
  ).pipe(Layer.provide([SessionsRepo.Default, ApiKeysRepo.Default]))
}
