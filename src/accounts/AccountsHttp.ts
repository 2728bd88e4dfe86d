import { Effect, Layer, Option, Redacted } from "effect"
import { HttpServerRequest, HttpServerResponse, UrlParams } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import { BasaltApi } from "../Api.ts"
import { AuditRepo } from "../audit/AuditRepo.ts"
import { AppConfig } from "../config/AppConfig.ts"
import { Conflict, Forbidden, InvalidGrant, NotFound, UnsupportedGrantType, ValidationFailed } from "../http/ApiError.ts"
import { decodeCursor, encodeCursor, invalidCursor, pageOf } from "../http/PageCursor.ts"
import { roleRank, supportedGrantTypes, type TokenPair, type TokenRequest } from "./Accounts.ts"
import { TokenGrantType } from "./AccountsApi.ts"
import { sessionCookieName, withoutSessionCookies } from "./BrowserSession.ts"
import { CurrentUser } from "./Authentication.ts"
import { CallerCache } from "./CallerCache.ts"
import { PasswordHasher } from "./PasswordHasher.ts"
import { ApiKeysRepo, newApiKeySecret } from "./ApiKeysRepo.ts"
import { SessionsRepo } from "./SessionsRepo.ts"
import { publicUser, SignIn } from "./SignIn.ts"
import { UsersRepo } from "./UsersRepo.ts"

// Tokens and session secrets are never cached (RFC 6749 section 5.1).
const noStore = { headers: { "cache-control": "no-store" } }

// A body that is not a readable form is left to the body guard and the decoding after it.
const TokenGrantTypeLive = Layer.succeed(TokenGrantType, (httpEffect) =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const form = yield* Effect.option(request.urlParamsBody)
    const grantType = Option.flatMap(form, (params) => UrlParams.getFirst(params, "grant_type"))
    if (Option.isSome(grantType) && !supportedGrantTypes.includes(grantType.value)) {
      return yield* new UnsupportedGrantType({
        message: `Only the password and refresh_token grants are supported, not ${grantType.value}`
      })
    }
    return yield* httpEffect
  })
)

export const AuthHttpLive = HttpApiBuilder.group(BasaltApi, "auth", (handlers) =>
  Effect.gen(function* () {
    const config = yield* AppConfig
    const users = yield* UsersRepo
    const sessions = yield* SessionsRepo
    const hasher = yield* PasswordHasher
    const audit = yield* AuditRepo
    const callers = yield* CallerCache
    const signIn = yield* SignIn

    // RFC 6749: the password grant (4.3) and the refresh grant (6); any failure of either is `invalid_grant`.
    const grant = (request: typeof TokenRequest.Type): Effect.Effect<TokenPair, InvalidGrant> =>
      request.grant_type === "password"
        ? signIn.checkPassword(request.username, request.password).pipe(
            Effect.mapError(() => new InvalidGrant({ message: "Incorrect email or password" })),
            Effect.flatMap((user) => signIn.withTokens(user, "password_grant"))
          )
        : Effect.mapError(signIn.refresh(request.refresh_token), (refused) => new InvalidGrant({ message: refused.message }))

    return (
      handlers
        .handle("register", ({ payload }) =>
          Effect.gen(function* () {
            const passwordHash = yield* hasher.hash(Redacted.make(payload.password))
            const user = yield* users
              .register(
                { email: payload.email, passwordHash, displayName: payload.display_name },
                ({ emailTaken, firstAccount }): Effect.Effect<void, Forbidden | Conflict> =>
                  !firstAccount && !config.auth.allowSignup
                    ? Effect.fail(new Forbidden({ message: "Self sign-up is disabled; ask an administrator for an account" }))
                    : emailTaken
                      ? Effect.fail(new Conflict({ message: "An account with this email already exists" }))
                      : Effect.void
              )
              .pipe(Effect.catchTag("SqlError", Effect.die))
            yield* audit.record({ action: "user_created", actorId: user.id, subjectId: user.id, details: { role: user.role } })
            return publicUser(user)
          })
        )
        .handle("login", ({ payload }) =>
          Effect.flatMap(signIn.checkPassword(payload.email, payload.password), (user) =>
            payload.session_cookie === true
              ? signIn.withCookie(user, "password", (session) => HttpServerResponse.jsonUnsafe(session, noStore))
              : Effect.map(signIn.withTokens(user, "password"), (tokens) => HttpServerResponse.jsonUnsafe(tokens, noStore))
          )
        )
        .handle("issueToken", ({ payload }) =>
          Effect.map(grant(payload), (issued) =>
            HttpServerResponse.jsonUnsafe(
              {
                access_token: issued.access_token,
                token_type: issued.token_type,
                expires_in: issued.expires_in,
                refresh_token: issued.refresh_token
              },
              noStore
            )
          )
        )
        .handle("refreshSession", ({ payload }) => signIn.refresh(payload.refresh_token))
        // With an API key there is no session to end. A browser also forgets its session cookies.
        .handle("logout", () =>
          Effect.gen(function* () {
            const caller = yield* CurrentUser
            if (caller.session_id !== null) {
              yield* Effect.orDie(sessions.revoke(caller.session_id))
              yield* callers.invalidateAll
            }
            const request = yield* HttpServerRequest.HttpServerRequest
            const ended = HttpServerResponse.empty({ status: 204 })
            return request.cookies[sessionCookieName] === undefined ? ended : withoutSessionCookies(ended)
          })
        )
    )
  })
).pipe(Layer.provide([SignIn.layer, UsersRepo.layer, SessionsRepo.layer, AuditRepo.layer, TokenGrantTypeLive]))

export const UsersHttpLive = HttpApiBuilder.group(BasaltApi, "users", (handlers) =>
  Effect.gen(function* () {
    const users = yield* UsersRepo
    const sessions = yield* SessionsRepo
    const hasher = yield* PasswordHasher
    const audit = yield* AuditRepo
    const callers = yield* CallerCache
    return handlers
      .handle("changePassword", ({ payload }) =>
        Effect.gen(function* () {
          const caller = yield* CurrentUser
          const current = yield* Effect.orDie(users.passwordHashOf(caller.id))
          const matches = yield* hasher.verifyOrWaste(current, Redacted.make(payload.current_password))
          if (!matches) return yield* new Forbidden({ message: "The current password is wrong" })
          const next = yield* hasher.hash(Redacted.make(payload.new_password))
          yield* Effect.orDie(users.setPasswordHash(caller.id, next))
          yield* Effect.orDie(sessions.revokeOthers(caller.id, caller.session_id))
          yield* callers.invalidateAll
          yield* audit.record({ action: "password_changed", actorId: caller.id, subjectId: caller.id })
        })
      )
      .handle("getCurrentUser", () => Effect.map(CurrentUser, publicUser))
      .handle("updateCurrentUser", ({ payload }) =>
        Effect.flatMap(CurrentUser, (user) => Effect.orDie(users.setDisplayName(user.id, payload.display_name)))
      )
  })
).pipe(Layer.provide([UsersRepo.layer, SessionsRepo.layer, AuditRepo.layer]))

/** The audit log pages by its event id (a bigint), kept as text in the cursor. */
const decodeAuditCursor = (cursor: string) => {
  const id = Buffer.from(cursor, "base64url").toString("utf8")
  return /^[0-9]{1,19}$/.test(id) ? Effect.succeed(id) : Effect.fail(invalidCursor())
}

export const AdminHttpLive = HttpApiBuilder.group(BasaltApi, "admin", (handlers) =>
  Effect.gen(function* () {
    const users = yield* UsersRepo
    const hasher = yield* PasswordHasher
    const audit = yield* AuditRepo
    const callers = yield* CallerCache
    return handlers
      .handle("listAuditEvents", ({ query }) =>
        Effect.gen(function* () {
          const limit = query.limit ?? 50
          const beforeId = query.cursor === undefined ? undefined : yield* decodeAuditCursor(query.cursor)
          const rows = yield* Effect.orDie(
            audit.list({
              action: query.action,
              actorId: query.actor_id,
              since: query.since,
              until: query.until,
              beforeId,
              limit
            })
          )
          return pageOf(
            rows,
            limit,
            (event) => event,
            (last) => Buffer.from(last.id).toString("base64url")
          )
        })
      )
      .handle("createUser", ({ payload }) =>
        Effect.gen(function* () {
          const passwordHash = yield* hasher.hash(Redacted.make(payload.password))
          const user = yield* users
            .register({ email: payload.email, passwordHash, displayName: payload.display_name, role: payload.role }, ({ emailTaken }) =>
              emailTaken ? Effect.fail(new Conflict({ message: "An account with this email already exists" })) : Effect.void
            )
            .pipe(Effect.catchTag("SqlError", Effect.die))
          const caller = yield* CurrentUser
          yield* audit.record({ action: "user_created", actorId: caller.id, subjectId: user.id, details: { role: user.role } })
          return publicUser(user)
        })
      )
      .handle("listUsers", ({ query }) =>
        Effect.gen(function* () {
          const limit = query.limit ?? 50
          const position = yield* decodeCursor(query.cursor)
          const after = position === undefined ? undefined : { createdAt: position.at, id: position.id }
          const rows = yield* Effect.orDie(users.list({ emailContains: query.email, limit, after }))
          return pageOf(rows, limit, publicUser, (last) => encodeCursor({ at: last.created_at_exact, id: last.id }))
        })
      )
      .handle("updateUser", ({ params, payload }) =>
        Effect.gen(function* () {
          const user = yield* users
            .update(params.user_id, payload, () => new Conflict({ message: "This would leave no active admin" }))
            .pipe(Effect.catchTag("SqlError", Effect.die))
          if (user === undefined) return yield* new NotFound({ message: "No such account" })
          yield* callers.invalidateAll
          const caller = yield* CurrentUser
          const record = (action: "role_changed" | "user_deactivated" | "user_reactivated", details?: Record<string, unknown>) =>
            audit.record({ action, actorId: caller.id, subjectId: user.id, ...(details ? { details } : {}) })
          if (user.role !== user.previous_role) yield* record("role_changed", { from: user.previous_role, to: user.role })
          if (user.active !== user.previous_active) yield* record(user.active ? "user_reactivated" : "user_deactivated")
          return publicUser(user)
        })
      )
  })
).pipe(Layer.provide([UsersRepo.layer, AuditRepo.layer]))

export const ApiKeysHttpLive = HttpApiBuilder.group(BasaltApi, "api-keys", (handlers) =>
  Effect.gen(function* () {
    const apiKeys = yield* ApiKeysRepo
    const audit = yield* AuditRepo
    const callers = yield* CallerCache
    return handlers
      .handle("createApiKey", ({ payload }) =>
        Effect.gen(function* () {
          const caller = yield* CurrentUser
          const role = payload.role ?? caller.role
          if (roleRank[role] > roleRank[caller.role]) {
            return yield* new Forbidden({ message: `A key cannot have more than your own role (${caller.role})` })
          }
          if (payload.expires_at !== undefined && payload.expires_at.getTime() <= Date.now()) {
            return yield* new ValidationFailed({
              message: "The request body is invalid: expires_at: Must be in the future",
              details: [{ path: "expires_at", message: "Must be in the future" }]
            })
          }
          const secret = newApiKeySecret()
          const key = yield* Effect.orDie(apiKeys.create(caller.id, { name: payload.name, role, expiresAt: payload.expires_at }, secret))
          yield* audit.record({ action: "api_key_created", actorId: caller.id, subjectId: key.id, details: { name: key.name, role } })
          return { key, secret }
        })
      )
      .handle("listApiKeys", () =>
        Effect.flatMap(CurrentUser, (caller) => Effect.map(Effect.orDie(apiKeys.list(caller.id)), (items) => ({ items })))
      )
      .handle("revokeApiKey", ({ params }) =>
        Effect.gen(function* () {
          const caller = yield* CurrentUser
          const revoked = yield* Effect.orDie(apiKeys.revoke(caller.id, params.key_id))
          if (!revoked) return yield* new NotFound({ message: "No such API key" })
          yield* callers.invalidateAll
          yield* audit.record({ action: "api_key_revoked", actorId: caller.id, subjectId: params.key_id })
        })
      )
  })
).pipe(Layer.provide([ApiKeysRepo.layer, AuditRepo.layer]))
