import { HttpApiBuilder } from "@effect/platform"
import { Effect, Layer, Redacted } from "effect"
import { BasaltApi } from "../Api.ts"
import { AppConfig } from "../config/AppConfig.ts"
import { Conflict, Forbidden, Unauthorized } from "../http/ApiError.ts"
import type { TokenPair, User } from "./Accounts.ts"
import { AccessTokens } from "./AccessTokens.ts"
import { CurrentUser } from "./Authentication.ts"
import { PasswordHasher } from "./PasswordHasher.ts"
import { newRefreshToken, type SessionUser, SessionsRepo } from "./SessionsRepo.ts"
import { UsersRepo } from "./UsersRepo.ts"

const publicUser = ({ active, created_at, display_name, email, id, role }: User): User => ({
  id,
  email,
  display_name,
  role,
  active,
  created_at
})

const wrongCredentials = new Unauthorized({ message: "Incorrect email or password" })

export const AuthHttpLive = HttpApiBuilder.group(BasaltApi, "auth", (handlers) =>
  Effect.gen(function*() {
    const config = yield* AppConfig
    const users = yield* UsersRepo
    const sessions = yield* SessionsRepo
    const hasher = yield* PasswordHasher
    const tokens = yield* AccessTokens

    const tokenPair = (user: User, sessionId: string, refreshToken: string): Effect.Effect<TokenPair> =>
      Effect.map(tokens.issue({ userId: user.id, sessionId }), (accessToken) => ({
        access_token: accessToken,
        token_type: "Bearer" as const,
        expires_in: tokens.ttlSeconds,
        refresh_token: refreshToken,
        user: publicUser(user)
      }))

    return handlers
      .handle("register", ({ payload }) =>
        Effect.gen(function*() {
          const passwordHash = yield* hasher.hash(Redacted.make(payload.password))
          const user = yield* users.register(
            { email: payload.email, passwordHash, displayName: payload.display_name },
            ({ emailTaken, firstAccount }): Effect.Effect<void, Forbidden | Conflict> =>
              !firstAccount && !config.auth.allowSignup
                ? Effect.fail(new Forbidden({ message: "Self sign-up is disabled; ask an administrator for an account" }))
                : emailTaken
                ? Effect.fail(new Conflict({ message: "An account with this email already exists" }))
                : Effect.void
          ).pipe(Effect.catchTag("SqlError", Effect.die))
          return publicUser(user)
        }))
      .handle("login", ({ payload }) =>
        Effect.gen(function*() {
          const user = yield* Effect.orDie(users.findByEmail(payload.email.trim().toLowerCase()))
          const matches = yield* hasher.verifyOrWaste(user?.password_hash ?? undefined, Redacted.make(payload.password))
          if (user === undefined || !matches || !user.active) return yield* wrongCredentials
          const refreshToken = newRefreshToken()
          const sessionId = yield* Effect.orDie(sessions.create(user.id, refreshToken, config.auth.refreshTokenTtl))
          return yield* tokenPair(user, sessionId, refreshToken)
        }))
      .handle("refreshSession", ({ payload }) =>
        Effect.gen(function*() {
          const next = newRefreshToken()
          const outcome = yield* Effect.orDie(sessions.rotate(payload.refresh_token, next))
          switch (outcome._tag) {
            case "Rotated":
              return yield* tokenPair(outcome.user, outcome.user.session_id, next)
            case "Replayed":
              return yield* new Unauthorized({
                message: "This refresh token was already used; the session has been revoked"
              })
            case "Invalid":
              return yield* new Unauthorized({ message: "The refresh token is invalid or expired" })
          }
        }))
      .handle("logout", () =>
        Effect.flatMap(CurrentUser, (user: SessionUser) => Effect.orDie(sessions.revoke(user.session_id))))
  })).pipe(Layer.provide([UsersRepo.Default, SessionsRepo.Default]))

export const UsersHttpLive = HttpApiBuilder.group(BasaltApi, "users", (handlers) =>
  handlers.handle("getCurrentUser", () => Effect.map(CurrentUser, publicUser)))
