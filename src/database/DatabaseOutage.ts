/**
 * What counts as the database being unavailable (down, restarting, not answering, out of disk or
 * connections) rather than a fault of one request: such a failure answers 503 with Retry-After,
 * and is logged once for the whole outage, with its end, instead of once per request. Every
 * database failure is classified here and nowhere else.
 */
import { type Cause, Context, Duration, Effect, Layer, Option, Schedule } from "effect"
import { SqlClient, SqlError } from "effect/sql"
import { abandonAfter } from "./Deadline.ts"

export interface DatabaseOutage {
  /** Why, for a person: never SQL, addresses or credentials. Completes "The database is unavailable: …". */
  readonly reason: string
  /** When a client may try again. */
  readonly retryAfterSeconds: number
}

const transient = (reason: string): DatabaseOutage => ({ reason, retryAfterSeconds: 2 })

const unreachable = transient("it cannot be reached")
const restarting = transient("it is starting up or shutting down")
const notAnswering = transient("it did not answer in time")
const noFreeConnection = transient("no connection to it became free in time")
const outOfResources = transient("it is out of connections or memory")
/** Freeing disk space takes a person: no point in asking again within seconds. */
const diskFull: DatabaseOutage = { reason: "it is out of disk space", retryAfterSeconds: 30 }

/** By SQLSTATE (https://www.postgresql.org/docs/current/errcodes-appendix.html). */
const outageOfSqlState = (code: string): DatabaseOutage | undefined => {
  // 08: connection exception.
  if (code.startsWith("08")) return unreachable
  // admin_shutdown, crash_shutdown, cannot_connect_now (starting, stopping, in recovery).
  if (code === "57P01" || code === "57P02" || code === "57P03") return restarting
  // query_canceled: a statement timeout, or the cancel this side sends after abandoning a statement.
  if (code === "57014") return notAnswering
  if (code === "53100") return diskFull
  // 53: insufficient resources (too many connections, out of memory, configuration limit).
  if (code.startsWith("53")) return outOfResources
  return undefined
}

/** A field of the reason's cause: the driver keeps the server's error fields, or the socket's error, there. */
const causeField = (error: SqlError.SqlError, field: "code" | "severity"): string | undefined => {
  const cause: unknown = error.reason.cause
  if (typeof cause !== "object" || cause === null || !(field in cause)) return undefined
  const value = (cause as Record<string, unknown>)[field]
  return typeof value === "string" ? value : undefined
}

/**
 * What a socket meets when the server is down, restarting or out of reach for now. Anything else
 * (a certificate the client refuses, a host name that does not exist) is a misconfiguration that
 * no wait mends.
 */
const transientNetworkCodes = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
  "EAI_AGAIN"
])

const outageOfSqlError = (error: SqlError.SqlError): DatabaseOutage | undefined => {
  // An error the server sent carries its SQLSTATE (and a severity, which a socket's error has not).
  const sqlState = causeField(error, "severity") === undefined ? undefined : causeField(error, "code")
  if (sqlState !== undefined) return outageOfSqlState(sqlState)
  switch (error.reason._tag) {
    case "ConnectionError": {
      if (error.reason.operation === acquireOperation) return noFreeConnection
      // Without a code: the driver's own (the connection closed, no answer within the connect timeout).
      const code = causeField(error, "code")
      return code === undefined || transientNetworkCodes.has(code) ? unreachable : undefined
    }
    case "StatementTimeoutError":
      return notAnswering
    default:
      return undefined
  }
}

/** The `operation` of the failure a bounded pool gives when no connection became free in time. */
export const acquireOperation = "acquire"

/**
 * The outage a failure stands for, if it is one. Looks through wrappers that keep the database's
 * failure as their `cause` (a failed migration, the cluster's persistence errors).
 */
export const databaseOutageOf = (failure: unknown): DatabaseOutage | undefined => {
  let current = failure
  for (let depth = 0; depth < 5 && typeof current === "object" && current !== null; depth++) {
    if (SqlError.isSqlError(current)) return outageOfSqlError(current)
    current = (current as { readonly cause?: unknown }).cause
  }
  return undefined
}

/** The outage behind the first failure or defect of `cause`, if it is one. */
export const databaseOutageIn = (cause: Cause.Cause<unknown>): DatabaseOutage | undefined => {
  const reason = cause.reasons.find((reason) => reason._tag !== "Interrupt")
  if (reason === undefined) return undefined
  return databaseOutageOf(reason._tag === "Fail" ? reason.error : reason.defect)
}

const probeEvery = Schedule.min([Schedule.exponential(Duration.millis(250)), Schedule.spaced(Duration.seconds(2))])
const probeBound = Duration.seconds(2)
/** An outage is over once the database answers and no failure came for this long (stragglers of the outage). */
const settledAfterMs = 1_000

/**
 * The log of outages: the first failure of an outage is logged, with its reason; the ones after
 * are counted; a probe then asks the database until it answers, and logs the end with how long it
 * lasted and how many failures it caused. Both at warning level, so that whoever sees one sees
 * the other.
 */
export class DatabaseOutages extends Context.Service<
  DatabaseOutages,
  {
    /** Records one failure that `outage` caused (a request answered 503, a background round skipped). */
    readonly report: (outage: DatabaseOutage) => Effect.Effect<void>
  }
>()("basalt/DatabaseOutages") {
  static readonly layer = Layer.effect(
    DatabaseOutages,
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const scope = yield* Effect.scope
      let current: { readonly since: number; failures: number; lastFailure: number } | undefined
      const over = sql`SELECT 1`.pipe(
        abandonAfter(probeBound, () => "no answer" as const),
        Effect.isSuccess,
        Effect.map((answered) => answered && current !== undefined && Date.now() - current.lastFailure >= settledAfterMs),
        Effect.withTracerEnabled(false)
      )
      const probe = over.pipe(
        Effect.repeat({ schedule: probeEvery, until: (ended) => ended }),
        Effect.andThen(
          Effect.suspend(() => {
            const ended = current
            current = undefined
            return ended === undefined
              ? Effect.void
              : Effect.logWarning("the database is available again").pipe(
                  Effect.annotateLogs({ outage_ms: Date.now() - ended.since, failures: ended.failures })
                )
          })
        )
      )
      const report = (outage: DatabaseOutage) =>
        Effect.suspend(() => {
          const now = Date.now()
          if (current !== undefined) {
            current.failures++
            current.lastFailure = now
            return Effect.void
          }
          current = { since: now, failures: 1, lastFailure: now }
          return Effect.andThen(
            Effect.logWarning(`the database is unavailable: ${outage.reason}; answering 503 until it is back`),
            Effect.asVoid(Effect.forkIn(probe, scope))
          )
        })
      return DatabaseOutages.of({ report })
    })
  )
}

/** Reports `outage` to the server's DatabaseOutages (logged once per outage); where there is none, logs it. */
export const reportOutage = (outage: DatabaseOutage): Effect.Effect<void> =>
  Effect.flatMap(Effect.serviceOption(DatabaseOutages), (outages) =>
    Option.isSome(outages) ? outages.value.report(outage) : Effect.logWarning(`the database is unavailable: ${outage.reason}`)
  )

/**
 * For background work that runs again later: logs a failed round with its cause, unless the
 * database was unavailable (then the outage is reported, and logged once for all).
 */
export const warnUnlessOutage =
  (message: string) =>
  (cause: Cause.Cause<unknown>): Effect.Effect<void> => {
    const outage = databaseOutageIn(cause)
    return outage === undefined ? Effect.logWarning(message, cause) : reportOutage(outage)
  }
