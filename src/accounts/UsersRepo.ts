/** SQL for accounts. */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import type { Role, User } from "./Accounts.ts"

interface UserRow {
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

export class UsersRepo extends Effect.Service<UsersRepo>()("basalt/UsersRepo", {
  effect: Effect.gen(function*() {
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
      account: { readonly email: string; readonly passwordHash: string; readonly displayName: string },
      decide: (state: { readonly firstAccount: boolean; readonly emailTaken: boolean }) => Effect.Effect<void, E>
    ) =>
      sql.withTransaction(
        Effect.gen(function*() {
          yield* sql`SELECT pg_advisory_xact_lock(${registrationLockKey})`
          const [state] = yield* sql<{ first_account: boolean; email_taken: boolean }>`
            SELECT NOT EXISTS (SELECT 1 FROM users) AS first_account,
                   EXISTS (SELECT 1 FROM users WHERE email = ${account.email}) AS email_taken`
          const firstAccount = state!.first_account
          yield* decide({ firstAccount, emailTaken: state!.email_taken })
          const [user] = yield* sql<UserRow>`
            INSERT INTO users (email, password_hash, display_name, role)
            VALUES (${account.email}, ${account.passwordHash}, ${account.displayName}, ${firstAccount ? "admin" : "basic"})
            RETURNING ${columns}`
          return user as User
        })
      )

    return { findByEmail, register } as const
  })
}) {}
