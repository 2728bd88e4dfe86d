/** SQL for accounts. */
import { Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import type { Role, User } from "./Accounts.ts"

export interface UserRow {
  readonly id: string
  readonly email: string
  readonly display_name: string
  readonly role: Role
  readonly active: boolean
  readonly created_at: Date
}

export interface UserWithPassword extends User {
  readonly password_hash: string | null
}

// Serialises registrations, so that exactly one first account becomes the admin.
const registrationLockKey = 7_212_881_002

export class UsersRepo extends Context.Service<UsersRepo>()("basalt/UsersRepo", {
  make: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const columns = sql`id, email, display_name, role, active, created_at`

    const findByEmail = (email: string) =>
      Effect.map(
        sql<UserRow & { password_hash: string | null }>`SELECT ${columns}, password_hash FROM users WHERE email = ${email}`,
        (rows): UserWithPassword | undefined => rows[0]
      )

    /**
     * Creates an account; the first one of the system as admin. `decide` sees whether accounts
     * exist and whether the email is taken, under a lock, and may refuse.
     */
    const register = <E>(
      account: {
        readonly email: string
        /** None for an account that signs in only through single sign-on. */
        readonly passwordHash: string | null
        readonly displayName: string
        /** Default: admin for the first account, basic after. */
        readonly role?: Role
      },
      decide: (state: { readonly firstAccount: boolean; readonly emailTaken: boolean }) => Effect.Effect<void, E>
    ) =>
      sql.withTransaction(
        Effect.gen(function* () {
          yield* sql`SELECT pg_advisory_xact_lock(${registrationLockKey})`
          const [state] = yield* sql<{ first_account: boolean; email_taken: boolean }>`
            SELECT NOT EXISTS (SELECT 1 FROM users) AS first_account,
                   EXISTS (SELECT 1 FROM users WHERE email = ${account.email}) AS email_taken`
          const firstAccount = state!.first_account
          yield* decide({ firstAccount, emailTaken: state!.email_taken })
          const [user] = yield* sql<UserRow>`
            INSERT INTO users (email, password_hash, display_name, role)
            VALUES (${account.email}, ${account.passwordHash}, ${account.displayName},
                    ${account.role ?? (firstAccount ? "admin" : "basic")})
            RETURNING ${columns}`
          return user as User
        })
      )

    const setDisplayName = (id: string, displayName: string) =>
      Effect.map(
        sql<UserRow>`UPDATE users SET display_name = ${displayName}, updated_at = now() WHERE id = ${id} RETURNING ${columns}`,
        (rows): User => rows[0]!
      )

    const passwordHashOf = (id: string) =>
      Effect.map(
        sql<{ password_hash: string | null }>`SELECT password_hash FROM users WHERE id = ${id}`,
        (rows) => rows[0]?.password_hash ?? undefined
      )

    const setPasswordHash = (id: string, passwordHash: string) =>
      Effect.asVoid(sql`UPDATE users SET password_hash = ${passwordHash}, updated_at = now() WHERE id = ${id}`)

    /** A page of accounts, newest first, after `after` (the last one of the previous page). */
    const list = (filter: {
      readonly emailContains: string | undefined
      readonly limit: number
      readonly after: { readonly createdAt: string; readonly id: string } | undefined
    }) =>
      sql<UserRow & { created_at_exact: string }>`
        SELECT ${columns}, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_at_exact
        FROM users
        WHERE ${filter.emailContains === undefined ? sql`true` : sql`position(${filter.emailContains.toLowerCase()} in email) > 0`}
          AND ${filter.after === undefined ? sql`true` : sql`(created_at, id) < (${filter.after.createdAt}::timestamptz, ${filter.after.id}::uuid)`}
        ORDER BY created_at DESC, id DESC
        LIMIT ${filter.limit + 1}`

    /**
     * Changes role and/or active. Refuses (with `lastAdmin`) a change that would leave no active
     * admin, under the registration lock so two such changes cannot both pass.
     */
    const update = <E>(
      id: string,
      change: { readonly role?: Role | undefined; readonly active?: boolean | undefined },
      lastAdmin: () => E
    ) =>
      sql.withTransaction(
        Effect.gen(function* () {
          yield* sql`SELECT pg_advisory_xact_lock(${registrationLockKey})`
          const [user] = yield* sql<UserRow & { previous_role: Role; previous_active: boolean }>`
            WITH before AS (SELECT id, role, active FROM users WHERE id = ${id} FOR UPDATE)
            UPDATE users SET
              role = coalesce(${change.role ?? null}, users.role),
              active = coalesce(${change.active ?? null}, users.active),
              updated_at = now()
            FROM before WHERE users.id = before.id
            RETURNING users.id, users.email, users.display_name, users.role, users.active, users.created_at,
                      before.role AS previous_role, before.active AS previous_active`
          if (user === undefined) return undefined
          const [{ admins }] = (yield* sql<{ admins: string }>`
            SELECT count(*)::text AS admins FROM users WHERE role = 'admin' AND active`) as [{ admins: string }]
          if (Number(admins) === 0) return yield* Effect.fail(lastAdmin())
          return user
        })
      )

    return { findByEmail, register, setDisplayName, passwordHashOf, setPasswordHash, list, update } as const
  })
}) {
  static readonly layer = Layer.effect(this, this.make)
}
