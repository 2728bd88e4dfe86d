/**
 * The SqlClient over @effect/sql-pg's connection pool, as `PgClient.layer` builds it, with every
 * wait bounded: a connection from the pool within `acquireTimeout`, each statement within
 * `statementTimeout`, after which it is cancelled. A Postgres that stops answering (frozen, cut
 * off by the network) keeps its connections open and says nothing, so only this side can bound
 * the wait: without it, every request would wait for as long as the database does. Work that may
 * rightly run longer (migrations, an index built at start) runs `withoutStatementTimeout`.
 */
import { PgClient, type PgConnection, PgPool } from "@effect/sql-pg"
import { Context, Duration, Effect, Layer, Redacted, Stream } from "effect"
import * as Reactivity from "effect/reactivity/Reactivity"
import { SqlClient, type SqlConnection, SqlError, Statement } from "effect/sql"
import { acquireOperation } from "../src/database/DatabaseOutage.ts"
import { withDeadline } from "../src/database/Deadline.ts"

const StatementsUnbounded = Context.Reference<boolean>("basalt/StatementsUnbounded", { defaultValue: () => false })

/** Runs `effect` with no bound on its statements' time (a wait for a connection stays bounded). */
export const withoutStatementTimeout = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.provideService(effect, StatementsUnbounded, true)

export interface Bounds {
  readonly statementTimeout: Duration.Duration
  readonly acquireTimeout: Duration.Duration
}

const seconds = (duration: Duration.Duration) => `${Duration.toSeconds(duration)} s`

const statementTimedOut = (bound: Duration.Duration) =>
  new SqlError.SqlError({
    reason: new SqlError.StatementTimeoutError({
      cause: new Error(`no answer within ${seconds(bound)}`),
      message: `The statement did not finish within ${seconds(bound)} (DATABASE_STATEMENT_TIMEOUT)`,
      operation: "execute"
    })
  })

const noFreeConnection = (bound: Duration.Duration) =>
  new SqlError.SqlError({
    reason: new SqlError.ConnectionError({
      cause: new Error(`no connection within ${seconds(bound)}`),
      message: `No database connection became free within ${seconds(bound)} (DATABASE_ACQUIRE_TIMEOUT)`,
      operation: acquireOperation
    })
  })

/** The Connection interface over one checkout of `connection`; `bounded` wraps each statement. */
const connectionOf = (
  connection: PgConnection.PgConnection,
  bounded: <A>(statement: Effect.Effect<A, SqlError.SqlError>) => Effect.Effect<A, SqlError.SqlError>
): SqlConnection.Connection => {
  const rows = (sql: string, params: ReadonlyArray<unknown>, prepare: boolean) =>
    bounded(Effect.map(connection.query(sql, params, prepare), (result) => result.rows))
  return {
    execute: (sql, params, transformRows) => (transformRows ? Effect.map(rows(sql, params, true), transformRows) : rows(sql, params, true)),
    executeUnprepared: (sql, params, transformRows) =>
      transformRows ? Effect.map(rows(sql, params, false), transformRows) : rows(sql, params, false),
    // The whole result: COMMIT's command tag tells a committed transaction from a rolled back one.
    executeRaw: (sql, params) => bounded(connection.query(sql, params)),
    executeValues: (sql, params) => bounded(connection.queryValues(sql, params)),
    executeValuesUnprepared: (sql, params) => bounded(connection.queryValues(sql, params, false)),
    // A stream's rows come as long as its reader wants them: only its connection's acquisition is bounded.
    executeStream: (sql, params, transformRows) => {
      const stream = connection.stream(sql, params)
      return transformRows ? Stream.mapArray(stream, (batch) => transformRows(batch) as typeof batch) : stream
    }
  }
}

/** PostgreSQL answers `ROLLBACK` to the COMMIT of a transaction that had already failed. */
const commit = (connection: SqlConnection.Connection) =>
  Effect.flatMap(connection.executeRaw("COMMIT", []), (result) =>
    (result as PgConnection.Result).command === "ROLLBACK"
      ? Effect.fail(
          new SqlError.SqlError({
            reason: new SqlError.UnknownError({
              cause: new Error("COMMIT rolled back an aborted transaction"),
              message: "COMMIT rolled back an aborted transaction",
              operation: "commit"
            })
          })
        )
      : Effect.void
  )

/** Where the client connects, for its spans: the URL's host, port and database, never its credentials. */
const spanAttributes = (config: PgClient.PgPoolConfig): ReadonlyArray<readonly [string, unknown]> => {
  const url = config.url === undefined ? undefined : new URL(Redacted.value(config.url))
  return [
    ["db.system.name", "postgresql"],
    ["db.namespace", config.database ?? (url?.pathname.slice(1) || "postgres")],
    ["server.address", config.host ?? url?.hostname ?? "localhost"],
    ["server.port", config.port ?? (Number(url?.port) || 5432)]
  ]
}

/** PgClient's JSON parameter: its compiler sends it as `jsonb`. */
const PgJson = Statement.custom<Statement.Custom<"PgJson", unknown>>("PgJson")

/** The client, as `PgClient.layer` provides it: as `SqlClient` and as `PgClient`. */
export const boundedPgClient = (
  config: PgClient.PgPoolConfig,
  bounds: Bounds
): Layer.Layer<SqlClient.SqlClient | PgClient.PgClient, SqlError.SqlError> =>
  Layer.effectContext(
    Effect.gen(function* () {
      const pool = yield* PgPool.make(config)
      const { acquireTimeout, statementTimeout } = bounds
      const waitForConnection = <A, E, R>(checkout: Effect.Effect<A, E, R>) =>
        Effect.timeoutOrElse(checkout, { duration: acquireTimeout, orElse: () => Effect.fail(noFreeConnection(acquireTimeout)) })
      const unbounded = <A>(statement: Effect.Effect<A, SqlError.SqlError>) => statement

      /**
       * A statement on its own (most): one deadline for both the wait for a connection and then
       * the statement. A connection whose statement was abandoned is not lent again until the
       * statement is over, and the pool retires it unless Postgres confirmed the cancel.
       */
      const borrower: SqlConnection.Borrower = (f) =>
        Effect.withFiber((fiber) => {
          const bound = fiber.getRef(StatementsUnbounded) ? undefined : statementTimeout
          return withDeadline(
            acquireTimeout,
            () => noFreeConnection(acquireTimeout),
            (rearm) =>
              pool.use((connection) =>
                Effect.suspend(() => {
                  rearm(bound, () => statementTimedOut(statementTimeout))
                  return f(connectionOf(connection, unbounded))
                })
              )
          )
        })

      /**
       * A transaction's connection: each statement bounded. One past its bound fails what comes
       * after it on the connection (its ROLLBACK) at once instead of queueing behind it, and the
       * connection leaves the pool: it may hold an aborted transaction.
       */
      const transactionConnection = (connection: PgConnection.PgConnection): SqlConnection.Connection => {
        let abandoned: SqlError.SqlError | undefined
        const bounded = <A>(statement: Effect.Effect<A, SqlError.SqlError>): Effect.Effect<A, SqlError.SqlError> =>
          Effect.withFiber((fiber) => {
            if (abandoned !== undefined) return Effect.fail(abandoned)
            if (fiber.getRef(StatementsUnbounded)) return statement
            const timedOut = () => {
              abandoned = statementTimedOut(statementTimeout)
              return abandoned
            }
            return withDeadline(statementTimeout, timedOut, () => statement).pipe(
              Effect.tapError(() => (abandoned === undefined ? Effect.void : pool.invalidate(connection)))
            )
          })
        return connectionOf(connection, bounded)
      }

      const acquirer = Effect.map(waitForConnection(pool.get), transactionConnection)
      const sql = yield* SqlClient.make({
        driver: "pg",
        acquirer,
        borrower,
        transactionAcquirer: Effect.map(waitForConnection(pool.reserve), transactionConnection),
        compiler: PgClient.makeCompiler(config.transformQueryNames, config.transformJson),
        // Postgres prepares transaction control like any statement (as PgClient does).
        prepareTransactionControls: true,
        commit,
        releaseSavepoint: (name) => `RELEASE SAVEPOINT ${name}`,
        spanAttributes: spanAttributes(config)
      })
      const pg: PgClient.PgClient = Object.assign(sql, {
        [PgClient.TypeId]: PgClient.TypeId,
        config,
        json: (value: unknown) => Statement.fragment([PgJson(value, undefined, undefined)]),
        listen: (channel: string) => Effect.flatMap(waitForConnection(pool.reserve), (connection) => connection.listen(channel)),
        notify: (channel: string, payload: string) =>
          Effect.asVoid(
            Effect.scoped(Effect.flatMap(acquirer, (connection) => connection.executeRaw("SELECT pg_notify($1, $2)", [channel, payload])))
          )
      })
      return Context.make(SqlClient.SqlClient, pg).pipe(Context.add(PgClient.PgClient, pg))
    })
  ).pipe(Layer.provide(Reactivity.layer))
