/**
 * SQL for single sign-on: sign-ins in flight (looked up by a hash of their state, taken once)
 * and the provider identities linked to accounts.
 */
import { Context, Duration, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { createHash } from "node:crypto"
import type { User } from "./Accounts.ts"
import type { ProviderIdentity } from "./OidcProvider.ts"
import { UsersRepo } from "./UsersRepo.ts"

const hashOf = (state: string) => createHash("sha256").update(state).digest("base64url")

export interface PendingSignIn {
  readonly nonce: string
  readonly code_verifier: string
  readonly return_to: string
}

export class SingleSignOnRepo extends Context.Service<SingleSignOnRepo>()("basalt/SingleSignOnRepo", {
  make: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const users = yield* UsersRepo

    /** Remembers a sign-in until `ttl`; sign-ins abandoned earlier are cleared on the way. */
    const begin = (state: string, pending: PendingSignIn, ttl: Duration.Duration) =>
      Effect.andThen(
        sql`DELETE FROM oidc_sign_ins WHERE expires_at < now()`,
        sql`
          INSERT INTO oidc_sign_ins (state_hash, nonce, code_verifier, return_to, expires_at)
          VALUES (${hashOf(state)}, ${pending.nonce}, ${pending.code_verifier}, ${pending.return_to},
                  now() + ${`${Duration.toMillis(ttl)} milliseconds`}::interval)`
      )

    /** The sign-in of `state`, if it is live; it can be taken only once. */
    const take = (state: string) =>
      Effect.map(
        sql<PendingSignIn & { live: boolean }>`
          DELETE FROM oidc_sign_ins WHERE state_hash = ${hashOf(state)}
          RETURNING nonce, code_verifier, return_to, expires_at > now() AS live`,
        (rows): PendingSignIn | undefined => (rows[0]?.live ? rows[0] : undefined)
      )

    /**
     * The account of a provider identity: the one linked to its subject; else the one with its
     * (verified) email, which is then linked; else a new account (basic, or admin on an empty
     * system), linked too.
     */
    const accountOf = (identity: ProviderIdentity & { readonly email: string }) =>
      sql.withTransaction(
        Effect.gen(function* () {
          const [linked] = yield* sql<User>`
            UPDATE user_identities i SET last_sign_in_at = now(), email = ${identity.email}
            FROM users u
            WHERE i.issuer = ${identity.issuer} AND i.subject = ${identity.subject} AND u.id = i.user_id
            RETURNING u.id, u.email, u.display_name, u.role, u.active, u.created_at`
          if (linked !== undefined) return { user: linked, created: false }
          const existing = yield* users.findByEmail(identity.email)
          const user: User =
            existing ??
            (yield* users.register(
              { email: identity.email, passwordHash: null, displayName: identity.name?.trim().slice(0, 100) || identity.email },
              () => Effect.void
            ))
          yield* sql`
            INSERT INTO user_identities (issuer, subject, user_id, email)
            VALUES (${identity.issuer}, ${identity.subject}, ${user.id}, ${identity.email})`
          return { user, created: existing === undefined }
        })
      )

    return { begin, take, accountOf } as const
  })
}) {
  static readonly layer = Layer.effect(this, this.make).pipe(Layer.provide(UsersRepo.layer))
}
