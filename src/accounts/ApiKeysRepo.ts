/**
 * SQL for API keys. Secrets are long random strings, stored as SHA-256 hashes; a key acts for its
 * creator with the lower of its own role and the creator's current one.
 */
import { Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { createHash, randomBytes } from "node:crypto"
import type { ApiKey, Role } from "./Accounts.ts"
import type { Caller } from "./SessionsRepo.ts"

export const apiKeyPrefix = "bsk_"

export const newApiKeySecret = () => `${apiKeyPrefix}${randomBytes(32).toString("base64url")}`

const hashOf = (secret: string) => createHash("sha256").update(secret).digest("base64url")

export class ApiKeysRepo extends Context.Service<ApiKeysRepo>()("basalt/ApiKeysRepo", {
  make: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const columns = sql`id, name, prefix, role, expires_at, date_trunc('minute', last_used_at) AS last_used_at, created_at`

    const create = (
      userId: string,
      key: { readonly name: string; readonly role: Role; readonly expiresAt: Date | undefined },
      secret: string
    ) =>
      Effect.map(
        sql<ApiKey>`
          INSERT INTO api_keys (user_id, name, prefix, secret_hash, role, expires_at)
          VALUES (${userId}, ${key.name}, ${secret.slice(0, apiKeyPrefix.length + 8)}, ${hashOf(secret)}, ${key.role},
                  ${key.expiresAt ?? null})
          RETURNING ${columns}`,
        (rows) => rows[0]!
      )

    const list = (userId: string) =>
      sql<ApiKey>`SELECT ${columns} FROM api_keys WHERE user_id = ${userId} AND revoked_at IS NULL ORDER BY created_at DESC`

    /** Whether a live key of `userId` was revoked. */
    const revoke = (userId: string, id: string) =>
      Effect.map(
        sql`UPDATE api_keys SET revoked_at = now() WHERE id = ${id} AND user_id = ${userId} AND revoked_at IS NULL RETURNING id`,
        (rows) => rows.length > 0
      )

    /**
     * The caller a secret stands for, if the key is live and its owner active. Marks the key used,
     * at most once a minute, so that a busy key does not write on every request.
     */
    const caller = (secret: string) =>
      Effect.map(
        sql<Omit<Caller, "session_id">>`
          WITH used AS (
            UPDATE api_keys SET last_used_at = now()
            WHERE secret_hash = ${hashOf(secret)}
              AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
              AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
            RETURNING id
          )
          SELECT u.id, u.email, u.display_name, u.active, u.created_at, k.id AS api_key_id,
                 CASE WHEN (CASE k.role WHEN 'admin' THEN 2 WHEN 'curator' THEN 1 ELSE 0 END)
                         < (CASE u.role WHEN 'admin' THEN 2 WHEN 'curator' THEN 1 ELSE 0 END)
                      THEN k.role ELSE u.role END AS role
          FROM api_keys k JOIN users u ON u.id = k.user_id
          WHERE k.secret_hash = ${hashOf(secret)}
            AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now()) AND u.active`,
        (rows): Caller | undefined => (rows[0] === undefined ? undefined : { ...rows[0], session_id: null })
      )

    return { create, list, revoke, caller } as const
  })
}) {
  static readonly layer = Layer.effect(this, this.make)
}
