/** The readiness query: one round trip that proves the database answers and reads its state. */
import { Context, Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"

const DatabaseState = Schema.Struct({
  migration_version: Schema.NumberFromString,
  pgvector: Schema.Boolean
})

export class HealthRepo extends Context.Service<HealthRepo>()("basalt/HealthRepo", {
  make: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const decode = Schema.decodeUnknownEffect(DatabaseState)
    const state = Effect.flatMap(
      sql<{ migration_version: string; pgvector: boolean }>`
        SELECT
          (SELECT coalesce(max(migration_id), 0)::text FROM basalt_migrations) AS migration_version,
          EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector') AS pgvector`,
      (rows) => decode(rows[0])
    )
    return { state } as const
  })
}) {
  static readonly layer = Layer.effect(this, this.make)
}
