/**
 * SQL for sessions. Refresh tokens are stored only as SHA-256 hashes: they are long random
 * strings, so a fast hash suffices, and a leaked table gives no usable token.
 */
import { Context, Duration, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { createHash, randomBytes } from "node:crypto"
import type { User } from "./Accounts.ts"
import type { UserRow } from "./UsersRepo.ts"

export const newRefreshToken = () => `bsr_${randomBytes(32).toString("base64url")}`

const hashOf = (token: string) => createHash("sha256").update(token).digest("base64url")

/** Who is calling: an account, and the session it signed in with (none for an API key). */
export interface Caller extends User {
  readonly session_id: string | null
  /** The API key it called with, if it did. */
  readonly api_key_id?: string
}

export interface SessionUser extends Caller {
  readonly session_id: string
}

interface SessionUserRow extends UserRow {
  readonly session_id: string
}

/** What a refresh token turned out to be. */
export type RefreshOutcome =
  | { readonly _tag: "Rotated"; readonly user: SessionUser }
  | { readonly _tag: "Replayed" }
  | { readonly _tag: "Invalid" }

export class SessionsRepo extends Context.Service<SessionsRepo>()("basalt/SessionsRepo", {
  make: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient

    /** A new session; with `cookieToken`, also reachable by the browser session cookie. */
    const create = (userId: string, refreshToken: string, ttl: Duration.Duration, cookieToken?: string) =>
      Effect.map(
        sql<{ id: string }>`
          INSERT INTO sessions (user_id, refresh_token_hash, cookie_token_hash, expires_at)
          VALUES (${userId}, ${hashOf(refreshToken)}, ${cookieToken === undefined ? null : hashOf(cookieToken)},
                  now() + ${`${Duration.toMillis(ttl)} milliseconds`}::interval)
          RETURNING id`,
        (rows) => rows[0]!.id
      )

    /** The active user of a live session, if both are. */
    const activeUser = (sessionId: string, userId: string) =>
      Effect.map(
        sql<SessionUserRow>`
          SELECT s.id AS session_id, u.id, u.email, u.display_name, u.role, u.active, u.created_at
          FROM sessions s JOIN users u ON u.id = s.user_id
          WHERE s.id = ${sessionId} AND u.id = ${userId}
            AND s.revoked_at IS NULL AND s.expires_at > now() AND u.active`,
        (rows): SessionUser | undefined => rows[0]
      )

    /** The active user of the live session this browser cookie belongs to, if both are. */
    const activeUserByCookie = (cookieToken: string) =>
      Effect.map(
        sql<SessionUserRow>`
          SELECT s.id AS session_id, u.id, u.email, u.display_name, u.role, u.active, u.created_at
          FROM sessions s JOIN users u ON u.id = s.user_id
          WHERE s.cookie_token_hash = ${hashOf(cookieToken)}
            AND s.revoked_at IS NULL AND s.expires_at > now() AND u.active`,
        (rows): SessionUser | undefined => rows[0]
      )

    /**
     * Swaps `presented` for `next`. A token already swapped away is a replay: its session is
     * revoked (committed, whatever the caller does next).
     */
    const rotate = (presented: string, next: string) =>
      sql.withTransaction(
        Effect.gen(function* () {
          const presentedHash = hashOf(presented)
          const [current] = yield* sql<SessionUserRow & { live: boolean }>`
            SELECT s.id AS session_id, u.id, u.email, u.display_name, u.role, u.active, u.created_at,
                   (s.revoked_at IS NULL AND s.expires_at > now() AND u.active) AS live
            FROM sessions s JOIN users u ON u.id = s.user_id
            WHERE s.refresh_token_hash = ${presentedHash}
            FOR UPDATE OF s`
          if (current === undefined) {
            const revoked = yield* sql`
              UPDATE sessions SET revoked_at = coalesce(revoked_at, now())
              WHERE id = (SELECT session_id FROM rotated_refresh_tokens WHERE token_hash = ${presentedHash})
              RETURNING id`
            return { _tag: revoked.length > 0 ? "Replayed" : "Invalid" } as RefreshOutcome
          }
          if (!current.live) return { _tag: "Invalid" } as RefreshOutcome
          yield* sql`UPDATE sessions SET refresh_token_hash = ${hashOf(next)} WHERE id = ${current.session_id}`
          yield* sql`INSERT INTO rotated_refresh_tokens (token_hash, session_id) VALUES (${presentedHash}, ${current.session_id})`
          const { live: _, ...user } = current
          return { _tag: "Rotated", user } as RefreshOutcome
        })
      )

    const revoke = (sessionId: string) =>
      Effect.asVoid(sql`UPDATE sessions SET revoked_at = coalesce(revoked_at, now()) WHERE id = ${sessionId}`)

    /** Ends every session of `userId` except `keep`. */
    const revokeOthers = (userId: string, keep: string | null) =>
      Effect.asVoid(sql`
        UPDATE sessions SET revoked_at = now()
        WHERE user_id = ${userId} AND revoked_at IS NULL AND (${keep}::uuid IS NULL OR id <> ${keep}::uuid)`)

    return { create, activeUser, activeUserByCookie, rotate, revoke, revokeOthers } as const
  })
}) {
  static readonly layer = Layer.effect(this, this.make)
}
