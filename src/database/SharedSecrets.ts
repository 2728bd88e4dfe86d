/**
 * Secrets every Basalt process on one database shares without being configured with them (the
 * access-token key, the runner transport's key): the first process to ask writes a random one,
 * and every process reads that same row.
 */
import { Effect, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { randomBytes } from "node:crypto"

const SecretRow = Schema.Struct({ value: Schema.String })

/** The secret called `name`, made on first use. */
export const sharedSecret = (name: string): Effect.Effect<string, never, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`
      INSERT INTO basalt_secrets (name, value)
      VALUES (${name}, ${randomBytes(32).toString("base64url")})
      ON CONFLICT (name) DO NOTHING`
    const rows = yield* sql`SELECT value FROM basalt_secrets WHERE name = ${name}`
    return (yield* Schema.decodeUnknownEffect(SecretRow)(rows[0])).value
  }).pipe(Effect.orDie)
