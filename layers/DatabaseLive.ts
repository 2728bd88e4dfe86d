/**
 * The database: one SqlClient (@effect/sql-pg) over either the embedded PGlite or the Postgres
 * that DATABASE_URL names, its statements and connection waits bounded (BoundedPgClient). At
 * start it waits for the database while it is unavailable (up to BASALT_DATABASE_WAIT), creates
 * pgvector when the server has it, then applies the migrations under an advisory lock so that
 * processes starting together take turns.
 */
import { PgClient } from "@effect/sql-pg"
import { Duration, Effect, Layer, Option, type Redacted, Schedule } from "effect"
import { Migrator, SqlClient } from "effect/sql"
import { readFileSync } from "node:fs"
import type { ConnectionOptions } from "node:tls"
import { AppConfig, type AppConfigShape } from "../src/config/AppConfig.ts"
import { DatabaseInfo, migrationLockKey, migrationsTable } from "../src/database/Database.ts"
import { DatabaseOutages, databaseOutageOf } from "../src/database/DatabaseOutage.ts"
import { migrations } from "../src/database/migrations/index.ts"
import { makeTypes, registerVector } from "../src/database/PgTypeCodecs.ts"
import { StartupError } from "../src/StartupFailure.ts"
import { boundedPgClient, withoutStatementTimeout } from "./BoundedPgClient.ts"
import { PgliteClientLive } from "./PgliteLive.ts"

const tlsOptions = (database: AppConfigShape["database"]): boolean | ConnectionOptions | undefined => {
  switch (database.ssl) {
    case "disable":
      return undefined
    case "require":
      // Encrypted, but the server's certificate is not checked (libpq's sslmode=require).
      return { rejectUnauthorized: false }
    case "verify-full":
      return Option.match(database.sslCaFile, {
        onNone: () => ({ rejectUnauthorized: true }),
        onSome: (file) => ({ rejectUnauthorized: true, ca: readFileSync(file, "utf8") })
      })
  }
}

const postgresClient = (url: Redacted.Redacted, database: AppConfigShape["database"]) =>
  boundedPgClient(
    {
      url,
      ssl: tlsOptions(database),
      maxConnections: database.poolMax,
      connectTimeout: database.connectTimeout,
      idleTimeout: database.idleTimeout,
      applicationName: "basalt",
      types: makeTypes()
    },
    { statementTimeout: database.statementTimeout, acquireTimeout: database.acquireTimeout }
  )

const runMigrations = Migrator.make({})

/**
 * Applies the migrations while holding a session advisory lock on a reserved connection: a
 * second process starting at the same moment waits, then finds nothing left to apply.
 */
const migrateExclusively = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const lock = yield* sql.reserve
  yield* Effect.acquireRelease(lock.execute("SELECT pg_advisory_lock($1)", [migrationLockKey], undefined), () =>
    Effect.ignore(lock.execute("SELECT pg_advisory_unlock($1)", [migrationLockKey], undefined))
  )
  return yield* runMigrations({ loader: migrations, table: migrationsTable })
}).pipe(
  Effect.scoped,
  // A migration may rightly take long (an index over a large table), and so may the wait for
  // another process's.
  withoutStatementTimeout
)

/**
 * Has the client read pgvector's `vector` as text (see PgTypeCodecs): its type id is the
 * database's own, known once the extension exists.
 */
const readVectors = Effect.gen(function* () {
  const pg = yield* PgClient.PgClient
  const [vector] = yield* pg<{ oid: number; array_oid: number }>`
    SELECT t.oid, t.typarray AS array_oid
    FROM pg_type t JOIN pg_extension e ON e.extname = 'vector'
    JOIN pg_depend d ON d.objid = t.oid AND d.refobjid = e.oid AND d.deptype = 'e'
    WHERE t.typname = 'vector'`
  if (vector !== undefined && pg.config.types !== undefined) registerVector(pg.config.types, vector.oid, vector.array_oid)
})

const prepareDatabase = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  // What the server is, not how it was reached: PGlite served by another process (DATABASE_URL
  // naming a pglite-socket) still gives every connection one session, which the cluster's shard
  // locks must know (ClusterLive).
  const [server] = yield* sql<{ pglite: boolean }>`SELECT version() LIKE '%PGlite%' AS pglite`
  const backend = server?.pglite === true ? ("pglite" as const) : ("postgres" as const)

  // Created outside the migrations: a server that gains pgvector later picks it up on restart.
  yield* sql`
    DO $$ BEGIN
      IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') THEN
        CREATE EXTENSION IF NOT EXISTS vector;
      END IF;
    EXCEPTION WHEN insufficient_privilege THEN
      RAISE NOTICE 'pgvector is available but this role may not create it';
    END $$`

  yield* readVectors
  const applied = yield* migrateExclusively
  const [state] = yield* sql<{ pgvector: boolean; instance_id: string }>`
    SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector') AS pgvector,
           (SELECT instance_id::text FROM basalt_instance) AS instance_id`
  const pgvector = state?.pgvector === true

  yield* Effect.logInfo("database ready").pipe(
    Effect.annotateLogs({
      backend,
      instance_id: state?.instance_id,
      migrations_applied: applied.map(([id, name]) => `${id}_${name}`).join(",")
    })
  )
  if (!pgvector) {
    yield* Effect.logWarning(
      "pgvector is not installed in this database: Basalt runs in lexical-only mode " +
        "(keyword search works; semantic search is unavailable and hybrid search falls back to keyword)"
    )
  }
  return DatabaseInfo.of({ backend, pgvector })
})

const waitSchedule = Schedule.min([Schedule.exponential(Duration.millis(250)), Schedule.spaced(Duration.seconds(2))])

/** The innermost words: the socket's (`connect ECONNREFUSED …`, or its code alone) or the server's own. */
const causeMessage = (error: unknown): string => {
  let words = ""
  for (let current: unknown = error; current instanceof Error; current = current.cause) {
    const code = (current as { readonly code?: unknown }).code
    words = current.message !== "" ? current.message : typeof code === "string" ? code : words
  }
  return words
}

/**
 * Runs `prepare` again, with backoff, while it fails because the database is unavailable (not
 * started yet, restarting), for up to `wait`; then gives up with one line. Any other failure (a
 * wrong password, an unknown database) ends the start at once.
 */
const whenAvailable = <A, E, R>(prepare: Effect.Effect<A, E, R>, wait: Duration.Duration) =>
  Effect.suspend(() => {
    const deadline = Date.now() + Duration.toMillis(wait)
    let waiting = false
    return prepare.pipe(
      Effect.tapError((error) => {
        const outage = databaseOutageOf(error)
        if (outage === undefined || waiting || Date.now() >= deadline) return Effect.void
        waiting = true
        return Effect.logWarning(`the database is unavailable: ${outage.reason}; waiting up to ${Duration.toSeconds(wait)} s for it`)
      }),
      Effect.retry({ schedule: waitSchedule, while: (error) => databaseOutageOf(error) !== undefined && Date.now() < deadline }),
      Effect.mapError((error) => {
        const outage = databaseOutageOf(error)
        return outage === undefined
          ? error
          : new StartupError({
              message: `the database did not become available within ${Duration.toSeconds(wait)} s: ${outage.reason} (${causeMessage(error)})`
            })
      })
    )
  })

const SqlClientLive = Layer.unwrap(
  Effect.map(AppConfig, (config) =>
    Option.match(config.database.url, {
      onNone: () => PgliteClientLive,
      onSome: (url) => postgresClient(url, config.database)
    })
  )
)

const PreparedLive = Layer.unwrap(
  Effect.map(AppConfig, (config) => Layer.effect(DatabaseInfo, whenAvailable(prepareDatabase, config.database.startupWait)))
)

export const DatabaseLive = PreparedLive.pipe(Layer.provideMerge(DatabaseOutages.layer), Layer.provideMerge(SqlClientLive))
