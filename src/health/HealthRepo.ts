/** The readiness query: one round trip that proves the database answers and reads its state. */
import { SqlClient } from "@effect/sql"
import { Effect, Schema } from "effect"

const DatabaseState = Schema.Struct({
  migration_version: Schema.NumberFromString,
  pgvector: Schema.Boolean
})

export class HealthRepo extends Effect.Service<HealthRepo>()("basalt/HealthRepo", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const state = Effect.flatMap(
      sql<{ migration_version: string; pgvector: boolean }>`
        SELECT
          (SELECT coalesce(max(migration_id), 0)::text FROM basalt_migrations) AS migration_version,
          EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector') AS pgvector`,
      (rows) => Schema.decodeUnknown(DatabaseState)(rows[0])
    )
    return { state } as const
  })
}) {}
