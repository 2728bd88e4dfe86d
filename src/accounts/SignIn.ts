/**
 * Starting a session, however the person proved who they are (password, token grant, single
 * sign-on): the session row, the audit event, and what the client gets back, either tokens or
 * the browser session cookie.
 */
import { Context, Duration, Effect, Layer, Redacted } from "effect"
import type { HttpServerResponse } from "effect/http"
import { AuditRepo } from "../audit/AuditRepo.ts"
import { AppConfig } from "../config/AppConfig.ts"
import { Unauthorized } from "../http/ApiError.ts"
import type { BrowserSession, TokenPair, User } from "./Accounts.ts"
import { AccessTokens } from "./AccessTokens.ts"
import { csrfTokenOf, newSessionCookieToken, withSessionCookies } from "./BrowserSession.ts"
import { CallerCache } from "./CallerCache.ts"
import { PasswordHasher } from "./PasswordHasher.ts"
import { newRefreshToken, SessionsRepo } from "./SessionsRepo.ts"
import { UsersRepo } from "./UsersRepo.ts"

/** The fields of an account a client may see. */
export const publicUser = ({ active, created_at, display_name, email, id, role }: User): User => ({
  id,
  email,
  display_name,
  role,
  active,
  created_at
})

export class SignIn extends Context.Service<SignIn>()("basalt/SignIn", {
  make: Effect.gen(function* () {
    const config = yield* AppConfig
    const users = yield* UsersRepo
    const sessions = yield* SessionsRepo
    const hasher = yield* PasswordHasher
    const tokens = yield* AccessTokens
    const audit = yield* AuditRepo
    const callers = yield* CallerCache

    const tokenPair = (user: User, sessionId: string, refreshToken: string): Effect.Effect<TokenPair> =>
      Effect.map(tokens.issue({ userId: user.id, sessionId }), (accessToken) => ({
        kind: "token_pair" as const,
        access_token: accessToken,
        token_type: "Bearer" as const,
        expires_in: tokens.ttlSeconds,
        refresh_token: refreshToken,
        user: publicUser(user)
      }))

    /** The active account with these credentials; every failure is the same 401, in the same time. */
    const checkPassword = (email: string, password: string) =>
      Effect.gen(function* () {
        const normalized = email.trim().toLowerCase()
        const user = yield* Effect.orDie(users.findByEmail(normalized))
        const matches = yield* hasher.verifyOrWaste(user?.password_hash ?? undefined, Redacted.make(password))
        if (user === undefined || !matches || !user.active) {
          yield* audit.record({ action: "sign_in_failed", actorId: null, subjectId: user?.id ?? null, details: { email: normalized } })
          return yield* new Unauthorized({ message: "Incorrect email or password" })
        }
        return user
      })

    const recordSignIn = (user: User, method: string) =>
      audit.record({ action: "sign_in_succeeded", actorId: user.id, subjectId: user.id, details: { method } })

    /** A new session, answered with an access and a refresh token. */
    const withTokens = (user: User, method: string) =>
      Effect.gen(function* () {
        const refreshToken = newRefreshToken()
        const sessionId = yield* Effect.orDie(sessions.create(user.id, refreshToken, config.auth.refreshTokenTtl))
        yield* recordSignIn(user, method)
        return yield* tokenPair(user, sessionId, refreshToken)
      })

    /**
     * A new session held by the browser: the cookie, and the CSRF token in the body. The refresh
     * token is never handed out, so nothing long-lived is readable by the page's scripts.
     */
    const withCookie = (
      user: User,
      method: string,
      respond: (session: typeof BrowserSession.Type) => HttpServerResponse.HttpServerResponse
    ) =>
      Effect.gen(function* () {
        const cookieToken = newSessionCookieToken()
        const lifetime = config.auth.refreshTokenTtl
        yield* Effect.orDie(sessions.create(user.id, newRefreshToken(), lifetime, cookieToken))
        yield* recordSignIn(user, method)
        const session = {
          kind: "browser_session" as const,
          csrf_token: csrfTokenOf(cookieToken),
          expires_at: new Date(Date.now() + Duration.toMillis(lifetime)),
          user: publicUser(user)
        }
        return withSessionCookies(respond(session), cookieToken, lifetime)
      })

    /**
     * The session of `presented` continued with new tokens; the presented refresh token stops
     * working. One presented again after its rotation revokes the whole session (stolen or replayed).
     */
    const refresh = (presented: string): Effect.Effect<TokenPair, Unauthorized> =>
      Effect.gen(function* () {
        const next = newRefreshToken()
        const outcome = yield* Effect.orDie(sessions.rotate(presented, next))
        switch (outcome._tag) {
          case "Rotated":
            return yield* tokenPair(outcome.user, outcome.user.session_id, next)
          case "Replayed":
            yield* callers.invalidateAll
            return yield* new Unauthorized({ message: "This refresh token was already used; the session has been revoked" })
          case "Invalid":
            return yield* new Unauthorized({ message: "The refresh token is invalid or expired" })
        }
      })

    return { checkPassword, withTokens, withCookie, refresh } as const
  })
}) {
  static readonly layer = Layer.effect(this, this.make).pipe(Layer.provide([UsersRepo.layer, SessionsRepo.layer, AuditRepo.layer]))
}
