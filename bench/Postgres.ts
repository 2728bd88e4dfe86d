/**
 * One-off statements for the benchmarks' setup (create or drop a database, read pg_stat_activity):
 * a single-connection PgClient for each call, closed when the statements are done.
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Redacted } from "effect"
import { SqlClient } from "effect/sql"

/** Runs `use` with a client on `url`, then closes the connection. */
export const withPostgres = <A>(url: string, use: (sql: SqlClient.SqlClient) => Effect.Effect<A, unknown>): Promise<A> =>
  Effect.runPromise(
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      return yield* use(sql)
    }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(url), maxConnections: 1 })))
  )

/** Runs statements (no parameters; one after the other, outside a transaction) and returns the last one's rows. */
export const postgresStatements = (url: string, ...statements: ReadonlyArray<string>): Promise<ReadonlyArray<Record<string, unknown>>> =>
  withPostgres(url, (sql) =>
    Effect.gen(function* () {
      let rows: ReadonlyArray<Record<string, unknown>> = []
      for (const statement of statements) rows = yield* sql.unsafe<Record<string, unknown>>(statement)
      return rows
    })
  )
