/**
 * Single sign-on handlers. The sign-in in flight (state, nonce, PKCE verifier) is kept in the
 * database, so the callback may reach another process, and bound to the browser that started it
 * by a short-lived cookie, so a sign-in started by someone else cannot be completed here (login
 * CSRF). The end is the same browser session a password login with `session_cookie` gets.
 */
import { Duration, Effect, Exit, Layer, Option, Schema } from "effect"
import { HttpServerRequest, HttpServerResponse } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import { createHash, randomBytes, timingSafeEqual } from "node:crypto"
import { BasaltApi } from "../Api.ts"
import { AuditRepo } from "../audit/AuditRepo.ts"
import { BadGateway, Forbidden, NotFound, Unauthorized } from "../http/ApiError.ts"
import { Email } from "./Accounts.ts"
import { OidcProvider, type ProviderUnavailable, type SignInRejected } from "./OidcProvider.ts"
import { SignIn } from "./SignIn.ts"
import { SingleSignOnRepo } from "./SingleSignOnRepo.ts"

const stateCookieName = "basalt_oidc_state"
const stateCookie = { path: "/api/v1/auth/oidc", httpOnly: true, secure: true, sameSite: "lax" } as const
const signInLifetime = Duration.minutes(10)

const randomToken = () => randomBytes(32).toString("base64url")
const sameText = (a: string, b: string) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b))

const notConfigured = new NotFound({ message: "Single sign-on is not configured on this server" })

const unreachable = (error: ProviderUnavailable) => new BadGateway({ message: `The identity provider could not be used: ${error.reason}` })

const providerFailure = (error: ProviderUnavailable | SignInRejected) =>
  error._tag === "ProviderUnavailable" ? unreachable(error) : new Unauthorized({ message: `The sign-in was not accepted: ${error.reason}` })

const emailDomain = (email: string) => email.slice(email.lastIndexOf("@") + 1)

export const SingleSignOnHttpLive = HttpApiBuilder.group(BasaltApi, "oidc", (handlers) =>
  Effect.gen(function* () {
    const provider = yield* Effect.serviceOption(OidcProvider)
    const repo = yield* SingleSignOnRepo
    const signIn = yield* SignIn
    const audit = yield* AuditRepo
    const configured = Option.match(provider, { onNone: () => Effect.fail(notConfigured), onSome: Effect.succeed })

    /** A refused sign-on, recorded in the audit log with why. */
    const refuse = (error: Unauthorized | Forbidden, details: Record<string, unknown>) =>
      Effect.andThen(
        audit.record({ action: "sign_in_failed", actorId: null, subjectId: null, details: { method: "oidc", ...details } }),
        Effect.fail(error)
      )

    return handlers
      .handle("startOidcSignIn", ({ query }) =>
        Effect.gen(function* () {
          const oidc = yield* configured
          const state = randomToken()
          const nonce = randomToken()
          const codeVerifier = randomToken()
          const codeChallenge = createHash("sha256").update(codeVerifier).digest("base64url")
          const location = yield* oidc.authorizationUrl({ state, nonce, codeChallenge }).pipe(Effect.mapError(unreachable))
          yield* Effect.orDie(repo.begin(state, { nonce, code_verifier: codeVerifier, return_to: query.return_to ?? "/" }, signInLifetime))
          return HttpServerResponse.setCookieUnsafe(
            HttpServerResponse.empty({ status: 302, headers: { location, "cache-control": "no-store" } }),
            stateCookieName,
            state,
            { ...stateCookie, maxAge: signInLifetime }
          )
        })
      )
      .handle("completeOidcSignIn", ({ query }) =>
        Effect.gen(function* () {
          const oidc = yield* configured
          const request = yield* HttpServerRequest.HttpServerRequest
          const { code, error, error_description, state } = query
          // Whatever happens, the state is used up.
          const pending = state === undefined ? undefined : yield* Effect.orDie(repo.take(state))
          if (error !== undefined) {
            return yield* refuse(
              new Unauthorized({
                message: `The identity provider refused the sign-in: ${error}${error_description ? ` (${error_description})` : ""}`
              }),
              { reason: "provider_error", error }
            )
          }
          const browserState = request.cookies[stateCookieName]
          if (state === undefined || code === undefined || browserState === undefined || !sameText(state, browserState)) {
            return yield* refuse(new Unauthorized({ message: "This sign-in was not started by this browser, or its state is missing" }), {
              reason: "state_mismatch"
            })
          }
          if (pending === undefined) {
            return yield* refuse(new Unauthorized({ message: "This sign-in has expired or was already completed; start again" }), {
              reason: "state_unknown"
            })
          }
          const identity = yield* oidc.redeem({ code, codeVerifier: pending.code_verifier, nonce: pending.nonce }).pipe(
            Effect.tapError((failure) =>
              failure._tag === "SignInRejected"
                ? audit.record({
                    action: "sign_in_failed",
                    actorId: null,
                    subjectId: null,
                    details: { method: "oidc", reason: failure.reason }
                  })
                : Effect.void
            ),
            Effect.mapError(providerFailure)
          )
          const { email } = identity
          if (email === undefined || !identity.emailVerified) {
            return yield* refuse(new Forbidden({ message: "The identity provider did not vouch for an email address" }), {
              reason: "email_unverified",
              subject: identity.subject
            })
          }
          // Every account's email is one the contract's `format: email` accepts, as at registration.
          if (!Exit.isSuccess(Schema.decodeUnknownExit(Email)(email))) {
            return yield* refuse(new Forbidden({ message: "The identity provider's email address is not one this server accepts" }), {
              reason: "email_unsupported",
              email
            })
          }
          const allowed = oidc.config.allowedDomains
          if (allowed.length > 0 && !allowed.includes(emailDomain(email))) {
            return yield* refuse(new Forbidden({ message: `Accounts of ${emailDomain(email)} may not sign in here` }), {
              reason: "domain_not_allowed",
              email
            })
          }
          const { created, user } = yield* Effect.orDie(repo.accountOf({ ...identity, email }))
          if (created)
            yield* audit.record({
              action: "user_created",
              actorId: user.id,
              subjectId: user.id,
              details: { role: user.role, method: "oidc" }
            })
          if (!user.active) {
            return yield* refuse(new Forbidden({ message: "This account is deactivated" }), { reason: "deactivated", email })
          }
          const signedIn = yield* signIn.withCookie(user, "oidc", () =>
            HttpServerResponse.empty({ status: 303, headers: { location: pending.return_to, "cache-control": "no-store" } })
          )
          return HttpServerResponse.expireCookieUnsafe(signedIn, stateCookieName, stateCookie)
        })
      )
  })
).pipe(Layer.provide([SignIn.layer, SingleSignOnRepo.layer, AuditRepo.layer]))
