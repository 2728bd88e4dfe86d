/**
 * Who the caller is: a bearer access token or API key, or else the browser session cookie;
 * checked against its signature, its expiry, and the database (the session must be live and the
 * user active; see CallerCache for how soon a change takes effect), then its rate limit
 * (src/ratelimit/). Declared once per group of routes; handlers receive the CurrentUser.
 */
import { Context, Effect, type Exit, Layer, Option, type Types } from "effect"
import { HttpServerRequest, type HttpServerResponse } from "effect/http"
import { HttpApiMiddleware, HttpApiSecurity } from "effect/http-api"
import { Forbidden, RateLimited, Unauthorized } from "../http/ApiError.ts"
import { RateLimiter } from "../ratelimit/RateLimiter.ts"
import { AccessTokens } from "./AccessTokens.ts"
import { ApiKeysRepo, apiKeyPrefix } from "./ApiKeysRepo.ts"
import { csrfHeaderName, csrfTokenMatches, needsCsrfToken, sessionCookieName } from "./BrowserSession.ts"
import { CallerCache } from "./CallerCache.ts"
import { type Caller, SessionsRepo } from "./SessionsRepo.ts"

export class CurrentUser extends Context.Service<CurrentUser, Caller>()("basalt/CurrentUser") {}

const refused = (message: string) => new Unauthorized({ message })

const bearerToken = /^Bearer[ \t]+(\S+)[ \t]*$/i

/**
 * The caller of a request, or why there is none. A request with an Authorization header is
 * judged by it alone (a stale cookie must not rescue a bad token); otherwise by the session
 * cookie, which needs the CSRF header for unsafe methods. API keys and access tokens both
 * arrive as `Bearer` and are told apart by the key prefix.
 */
export class Authenticator extends Context.Service<
  Authenticator,
  {
    /**
     * The caller of `request` now: its credential checked again (through CallerCache, so at most a
     * database read per credential every two seconds). Takes no rate-limit token: an open event
     * stream re-checks its request this way on every poll, so that it ends when the credential
     * stops authenticating.
     */
    readonly identify: (request: HttpServerRequest.HttpServerRequest) => Effect.Effect<Caller, Unauthorized | Forbidden>
  }
>()("basalt/Authenticator") {
  static readonly layer = Layer.effect(
    Authenticator,
    Effect.gen(function* () {
      const tokens = yield* AccessTokens
      const sessions = yield* SessionsRepo
      const apiKeys = yield* ApiKeysRepo
      const cache = yield* CallerCache
      // A credential is remembered with its caller, so a busy client neither re-verifies nor re-reads it.
      const callerOfAccessToken = (token: string) =>
        Effect.gen(function* () {
          const claims = yield* tokens.verify(token)
          if (Option.isNone(claims)) return undefined
          const { expiresAtMs, sessionId, userId } = claims.value
          const caller = yield* sessions.activeUser(sessionId, userId)
          return caller === undefined ? undefined : { caller, notAfterMs: expiresAtMs }
        })
      const callerOfApiKey = (secret: string) =>
        Effect.map(apiKeys.caller(secret), (caller) => (caller === undefined ? undefined : { caller }))
      const callerOfCookie = (cookieToken: string) =>
        Effect.map(sessions.activeUserByCookie(cookieToken), (caller) => (caller === undefined ? undefined : { caller }))

      const byBearer = (authorization: string) =>
        Effect.gen(function* () {
          const token = bearerToken.exec(authorization)?.[1]
          if (token === undefined) return yield* refused("The Authorization header must be `Bearer <access token or API key>`")
          if (token.startsWith(apiKeyPrefix)) {
            const caller = yield* Effect.orDie(cache.get(`key:${token}`, callerOfApiKey(token)))
            if (caller === undefined) return yield* refused("The API key is invalid, expired or revoked")
            return caller
          }
          const caller = yield* Effect.orDie(cache.get(`jwt:${token}`, callerOfAccessToken(token)))
          if (caller === undefined) {
            return yield* refused("The access token is invalid or expired, its session has ended, or the account is deactivated")
          }
          return caller
        })

      const byCookie = (request: HttpServerRequest.HttpServerRequest, cookieToken: string) =>
        Effect.gen(function* () {
          const caller = yield* Effect.orDie(cache.get(`cookie:${cookieToken}`, callerOfCookie(cookieToken)))
          if (caller === undefined) return yield* refused("The session cookie is invalid or its session has ended")
          if (needsCsrfToken(request.method) && !csrfTokenMatches(cookieToken, request.headers[csrfHeaderName])) {
            return yield* new Forbidden({
              message: `A request authenticated by the session cookie needs the ${csrfHeaderName} header given at sign-in`
            })
          }
          return caller
        })

      const identify = (request: HttpServerRequest.HttpServerRequest): Effect.Effect<Caller, Unauthorized | Forbidden> => {
        const authorization = request.headers.authorization
        if (authorization !== undefined) return byBearer(authorization)
        const cookieToken = request.cookies[sessionCookieName]
        if (cookieToken !== undefined && cookieToken !== "") return byCookie(request, cookieToken)
        return Effect.fail(refused("A valid access token, API key or session cookie is required"))
      }

      return Authenticator.of({ identify })
    })
  ).pipe(Layer.provide([SessionsRepo.layer, ApiKeysRepo.layer]))
}

const authenticate = Effect.gen(function* () {
  const { identify } = yield* Authenticator
  const limiter = yield* RateLimiter
  // Once identified (an unidentified request costs no one a token), the caller spends a token:
  // each API key has a bucket, each user another, shared by all its sessions.
  const callerOf = (request: HttpServerRequest.HttpServerRequest) =>
    Effect.tap(identify(request), (caller) =>
      limiter.take("principal", caller.api_key_id === undefined ? `user:${caller.id}` : `key:${caller.api_key_id}`)
    )

  // The framework tries each security scheme in turn until one succeeds; the answer depends on the
  // request alone, so it is worked out once per request and given to every scheme.
  const outcomes = new WeakMap<object, Exit.Exit<Caller, Unauthorized | Forbidden | RateLimited>>()
  return Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    const known = outcomes.get(request)
    if (known !== undefined) return known
    return Effect.tap(Effect.exit(callerOf(request)), (exit) => Effect.sync(() => outcomes.set(request, exit))).pipe(Effect.flatten)
  })
})

const security = {
  bearerJwt: HttpApiSecurity.bearer,
  apiKey: HttpApiSecurity.bearer,
  cookieSession: HttpApiSecurity.apiKey({ in: "cookie", key: sessionCookieName })
}

const error = [Unauthorized, Forbidden, RateLimited] as const

/** Runs the endpoint as `caller`, under every security scheme alike (the credential is read from the request). */
const asCaller =
  <E, R>(caller: Effect.Effect<Caller, E, R>) =>
  (httpEffect: Effect.Effect<HttpServerResponse.HttpServerResponse, Types.unhandled, CurrentUser>) =>
    Effect.flatMap(caller, (user) => Effect.provideService(httpEffect, CurrentUser, user))

/** Any signed-in account. */
export class Authentication extends HttpApiMiddleware.Service<Authentication, { provides: CurrentUser }>()("basalt/Authentication", {
  error,
  security
}) {
  static readonly layer = Layer.effect(
    Authentication,
    Effect.map(authenticate, (caller) => {
      const signedIn = asCaller(caller)
      return Authentication.of({ bearerJwt: signedIn, apiKey: signedIn, cookieSession: signedIn })
    })
  )
}

/** A signed-in admin: others get 403. */
export class AdminAuthentication extends HttpApiMiddleware.Service<AdminAuthentication, { provides: CurrentUser }>()(
  "basalt/AdminAuthentication",
  { error, security }
) {
  static readonly layer = Layer.effect(
    AdminAuthentication,
    Effect.map(authenticate, (caller) => {
      const admin = asCaller(
        Effect.filterOrFail(
          caller,
          (user) => user.role === "admin",
          () => new Forbidden({ message: "This needs the admin role" })
        )
      )
      return AdminAuthentication.of({ bearerJwt: admin, apiKey: admin, cookieSession: admin })
    })
  )
}
