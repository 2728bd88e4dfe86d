/**
 * Access tokens: JWTs (HS256) naming the user and the session, valid for
 * BASALT_ACCESS_TOKEN_TTL. The key is BASALT_JWT_SECRET, or else one generated on first start and
 * kept in the database, so every process on that database signs and checks with the same key.
 */
import { Context, Duration, Effect, Layer, Option, Redacted, Schema } from "effect"
import { jwtVerify, SignJWT } from "jose"
import { AppConfig } from "../config/AppConfig.ts"
import { Uuid } from "../contract/Uuid.ts"
import { sharedSecret } from "../database/SharedSecrets.ts"

const issuer = "basalt"
const audience = "basalt"
const isUuid = Schema.is(Uuid)

export interface AccessClaims {
  readonly userId: string
  readonly sessionId: string
  /** When the token expires, in milliseconds since the epoch. */
  readonly expiresAtMs: number
}

export class AccessTokens extends Context.Service<
  AccessTokens,
  {
    readonly ttlSeconds: number
    readonly issue: (claims: Omit<AccessClaims, "expiresAtMs">) => Effect.Effect<string>
    /** The claims of a valid token; None for anything else (malformed, expired, forged, alg none). */
    readonly verify: (token: string) => Effect.Effect<Option.Option<AccessClaims>>
  }
>()("basalt/AccessTokens") {
  static readonly layer = Layer.effect(
    AccessTokens,
    Effect.gen(function* () {
      const config = yield* AppConfig
      const secret = yield* Option.match(config.auth.jwtSecret, {
        onSome: (secret) => Effect.succeed(Redacted.value(secret)),
        onNone: () => sharedSecret("access_token_hs256")
      })
      const key = new TextEncoder().encode(secret)
      const ttlSeconds = Math.round(Duration.toSeconds(config.auth.accessTokenTtl))
      return AccessTokens.of({
        ttlSeconds,
        issue: ({ sessionId, userId }) =>
          Effect.promise(() =>
            new SignJWT({ sid: sessionId })
              .setProtectedHeader({ alg: "HS256", typ: "JWT" })
              .setSubject(userId)
              .setIssuer(issuer)
              .setAudience(audience)
              .setIssuedAt()
              .setExpirationTime(`${ttlSeconds}s`)
              .sign(key)
          ),
        verify: (token) =>
          Effect.promise(() =>
            jwtVerify(token, key, { algorithms: ["HS256"], issuer, audience }).then(
              ({ payload }) =>
                // Ids as the database takes them: a token signed with this key but naming no UUID is no token.
                isUuid(payload.sub) && isUuid(payload["sid"]) && typeof payload.exp === "number"
                  ? Option.some({ userId: payload.sub, sessionId: payload["sid"], expiresAtMs: payload.exp * 1000 })
                  : Option.none(),
              // Every rejection is the same to the caller: not a valid token.
              () => Option.none()
            )
          )
      })
    })
  )
}
