/**
 * The events of answers being generated (runs), kept in the database so that any process can
 * replay them from a position and follow the rest live, and the stop signal a runner races its
 * generation against.
 *
 * A reader waits for news of a run in three ways, the first to come: a wake from this process's
 * writer (the run is generated here), a NOTIFY from another process's (Postgres, delivered on
 * commit; every process LISTENs on one channel), and a poll every second, so that a notification
 * lost while the LISTEN connection was down delays a reader by a second at most. Each wait takes
 * its signal before it reads, so a wake between the read and the wait is not missed.
 *
 * A run ends with its terminal event (message_end or error), stored in the same transaction that
 * sets chat_messages.finished_at. Its events are deleted `BASALT_CHAT_RUN_RETENTION` after that,
 * by every process once a minute; a reader of a finished run whose events are gone gets
 * `RunEventsExpired`.
 */
import { PgClient } from "@effect/sql-pg"
import { Context, Data, Deferred, Duration, Effect, Layer, Option, Schedule, Schema, type Scope, Stream } from "effect"
import { SqlClient } from "effect/sql"
import { AppConfig } from "../config/AppConfig.ts"
import { cleanUpEvery, deleteInBatches, olderThan } from "../database/Cleanup.ts"
import { ServerLifecycle } from "../http/ServerLifecycle.ts"

export const RunEventType = Schema.Literals(["message_start", "token", "citation", "message_end", "error"])
export type RunEventType = typeof RunEventType.Type

/** Whether the run ends with an event of this type. */
export const isTerminal = (type: RunEventType) => type === "message_end" || type === "error"

export interface NewRunEvent {
  readonly type: RunEventType
  readonly data: unknown
}

const RunEvent = Schema.Struct({ seq: Schema.Int, type: RunEventType, data: Schema.Unknown })
export type RunEvent = typeof RunEvent.Type

const RunState = Schema.Struct({ finished: Schema.Boolean, terminal_seq: Schema.NullOr(Schema.Int) })

/** The run finished and its events were deleted (its retention passed), or its message is gone. */
export class RunEventsExpired extends Data.TaggedError("RunEventsExpired")<{ readonly messageId: string }> {}

/** The most a reader waits without looking at the database itself. */
const pollInterval = Duration.seconds(1)
const replayPage = 1_000
const cleanupInterval = Duration.minutes(1)
const cleanupBatch = 5_000
const channel = "basalt_chat_events"

/** A notification's payload, and the in-process key of what it is about. */
const eventsKey = (messageId: string) => `e:${messageId}`
const stopKey = (messageId: string) => `s:${messageId}`

/**
 * Wake-ups by key. `signal` is taken before reading the database and awaited after, for at most
 * the poll interval; `wake` completes every signal taken for its key so far.
 */
const makeSignals = () => {
  const entries = new Map<string, { waiters: number; deferred: Deferred.Deferred<void> }>()
  const wake = (key: string) => {
    const entry = entries.get(key)
    if (entry === undefined) return
    const woken = entry.deferred
    entry.deferred = Deferred.makeUnsafe<void>()
    Deferred.doneUnsafe(woken, Effect.void)
  }
  const signal = (key: string): Effect.Effect<Deferred.Deferred<void>, never, Scope.Scope> =>
    Effect.map(
      Effect.acquireRelease(
        Effect.sync(() => {
          const entry = entries.get(key) ?? { waiters: 0, deferred: Deferred.makeUnsafe<void>() }
          entries.set(key, entry)
          entry.waiters++
          return entry
        }),
        (entry) =>
          Effect.sync(() => {
            entry.waiters--
            if (entry.waiters === 0 && entries.get(key) === entry) entries.delete(key)
          })
      ),
      (entry) => entry.deferred
    )
  return {
    wake,
    /** Every key waited on: notifications may have been missed. */
    wakeAll: () => {
      for (const key of [...entries.keys()]) wake(key)
    },
    signal
  }
}

const awaitWake = (signal: Deferred.Deferred<void>) => Effect.asVoid(Effect.timeoutOption(Deferred.await(signal), pollInterval))

export class RunEvents extends Context.Service<RunEvents>()("basalt/RunEvents", {
  make: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const config = yield* AppConfig
    const lifecycle = yield* ServerLifecycle
    const signals = makeSignals()
    const embedded = Option.isNone(config.database.url)

    // A NOTIFY inside a transaction is delivered on commit, and not at all on rollback.
    const notifying = (key: string) => (embedded ? sql`` : sql`, pg_notify(${channel}, ${key})`)

    const decodeEvents = Schema.decodeUnknownEffect(Schema.Array(RunEvent))
    const decodeState = Schema.decodeUnknownEffect(Schema.Array(RunState))

    const append = (messageId: string, events: ReadonlyArray<NewRunEvent>): Effect.Effect<ReadonlyArray<number>> => {
      if (events.length === 0) return Effect.succeed([])
      const terminal = events.some((event) => isTerminal(event.type))
      const batch = JSON.stringify(events.map(({ data, type }) => ({ type, data: data ?? null })))
      return sql
        .withTransaction(
          Effect.gen(function* () {
            // The message's row lock makes concurrent writers of one run take their turns, so
            // each reads the sequence the previous one left.
            const locked = yield* sql`SELECT id ${notifying(eventsKey(messageId))} FROM chat_messages WHERE id = ${messageId} FOR UPDATE`
            if (locked.length === 0) return yield* Effect.die(new Error(`chat message ${messageId} does not exist`))
            const rows = yield* sql<{ seq: number }>`
              WITH batch AS (
                SELECT ((SELECT COALESCE(max(seq), 0) FROM chat_run_events WHERE message_id = ${messageId}) + e.ord)::integer AS seq,
                  e.value->>'type' AS type, e.value->'data' AS data
                FROM jsonb_array_elements(${batch}::jsonb) WITH ORDINALITY AS e(value, ord)
              )${
                terminal
                  ? sql`, finished AS (
                      UPDATE chat_messages SET finished_at = now() WHERE id = ${messageId} AND finished_at IS NULL RETURNING id
                    )`
                  : sql``
              }
              INSERT INTO chat_run_events (message_id, seq, type, data)
              SELECT ${messageId}, seq, type, data FROM batch
              RETURNING seq`
            return rows.map((row) => Number(row.seq)).sort((a, b) => a - b)
          })
        )
        .pipe(
          Effect.orDie,
          Effect.tap(() => Effect.sync(() => signals.wake(eventsKey(messageId))))
        )
    }

    const eventsAfter = (messageId: string, afterSeq: number) =>
      sql`
        SELECT seq, type, data FROM chat_run_events
        WHERE message_id = ${messageId} AND seq > ${afterSeq}
        ORDER BY seq
        LIMIT ${replayPage}`.pipe(Effect.flatMap(decodeEvents), Effect.orDie)

    /** Undefined when the message is gone. */
    const runState = (messageId: string) =>
      sql`
        SELECT m.finished_at IS NOT NULL AS finished,
          (SELECT max(e.seq) FROM chat_run_events e
           WHERE e.message_id = m.id AND e.type IN ('message_end', 'error')) AS terminal_seq
        FROM chat_messages m WHERE m.id = ${messageId}`.pipe(
        Effect.flatMap(decodeState),
        Effect.map((rows) => rows[0]),
        Effect.orDie
      )

    /** What to send next from after `afterSeq`, and from where to go on (none: the stream ends). */
    const step = (messageId: string, afterSeq: number) =>
      Effect.scoped(
        Effect.gen(function* () {
          const signal = yield* signals.signal(eventsKey(messageId))
          while (true) {
            const rows = yield* eventsAfter(messageId, afterSeq)
            const end = rows.findIndex((row) => isTerminal(row.type))
            if (end >= 0) return [rows.slice(0, end + 1), Option.none<number>()] as const
            if (rows.length > 0) return [rows, Option.some(rows[rows.length - 1]!.seq)] as const
            const state = yield* runState(messageId)
            if (state === undefined) return yield* new RunEventsExpired({ messageId })
            if (state.finished) {
              if (state.terminal_seq === null) return yield* new RunEventsExpired({ messageId })
              if (state.terminal_seq <= afterSeq) return [[], Option.none<number>()] as const
              // The last events were committed between the two reads: read them.
              continue
            }
            if (lifecycle.isDraining()) return [[], Option.none<number>()] as const
            yield* awaitWake(signal)
            return [[], lifecycle.isDraining() ? Option.none<number>() : Option.some(afterSeq)] as const
          }
        })
      )

    const follow = (messageId: string, afterSeq: number): Stream.Stream<RunEvent, RunEventsExpired> =>
      Stream.paginate(afterSeq, (after) => step(messageId, after))

    const requestStop = (messageId: string): Effect.Effect<boolean> =>
      sql`
        WITH stopped AS (
          UPDATE chat_messages SET stop_requested_at = COALESCE(stop_requested_at, now())
          WHERE id = ${messageId} AND finished_at IS NULL
          RETURNING id
        )
        SELECT id ${notifying(stopKey(messageId))} FROM stopped`.pipe(
        Effect.orDie,
        Effect.map((rows) => rows.length > 0),
        Effect.tap((requested) => (requested ? Effect.sync(() => signals.wake(stopKey(messageId))) : Effect.void))
      )

    /** Whether a stop was requested (or the message is gone: nothing is left to generate it for). */
    const isStopRequested = (messageId: string) =>
      sql<{ requested: boolean }>`SELECT stop_requested_at IS NOT NULL AS requested FROM chat_messages WHERE id = ${messageId}`.pipe(
        Effect.map((rows) => rows[0]?.requested ?? true),
        // A failed look is "not yet": a runner racing this must not be ended by a database hiccup.
        Effect.orElseSucceed(() => false)
      )

    const stopRequested = (messageId: string): Effect.Effect<void> =>
      Effect.scoped(
        Effect.gen(function* () {
          const signal = yield* signals.signal(stopKey(messageId))
          if (yield* isStopRequested(messageId)) return true
          yield* awaitWake(signal)
          return false
        })
      ).pipe(Effect.repeat({ until: (requested) => requested }), Effect.asVoid)

    const pruneFinishedBefore = (cutoff: Date) =>
      deleteInBatches(
        cleanupBatch,
        Effect.map(
          sql`
            DELETE FROM chat_run_events
            WHERE (message_id, seq) IN (
              SELECT e.message_id, e.seq FROM chat_run_events e
              JOIN chat_messages m ON m.id = e.message_id
              WHERE m.finished_at < ${cutoff.toISOString()}::timestamptz
              LIMIT ${cleanupBatch}
              FOR UPDATE OF e SKIP LOCKED
            )
            RETURNING 1`,
          (rows) => rows.length
        )
      )
    const pruneExpired = olderThan(config.chat.runRetention, pruneFinishedBefore)

    yield* cleanUpEvery(cleanupInterval, "expired chat run events", pruneExpired)

    if (!embedded) {
      const pg = yield* PgClient.PgClient
      const listen = Effect.scoped(
        Effect.gen(function* () {
          const notifications = yield* pg.listen(channel)
          // Notifications sent while no connection listened are lost: every waiter looks again.
          signals.wakeAll()
          yield* Stream.fromQueue(notifications).pipe(
            Stream.runForEach((notification) => Effect.sync(() => signals.wake(notification.payload)))
          )
        })
      )
      yield* listen.pipe(
        // One line, without the stack: during a database outage this says what happens, the outage log the rest.
        Effect.tapError((error) =>
          Effect.logWarning("chat: the run events listener lost its database connection; listening again in 2 s").pipe(
            Effect.annotateLogs("reason", error.message)
          )
        ),
        Effect.retry(Schedule.spaced("2 seconds")),
        Effect.forkScoped
      )
    }

    return {
      /** Stores `events` after the run's last, in order, and returns their seqs; a terminal event finishes the run. */
      append,
      /** The run's events after `afterSeq`, then live ones, up to and including its terminal event. */
      follow,
      /** Asks the run to stop; false when it has finished (or there is no such message). */
      requestStop,
      /** Completes once a stop has been requested for the run. */
      stopRequested,
      /** Deletes the events of runs finished longer than the retention ago; how many. */
      pruneExpired
    } as const
  })
}) {
  static readonly layer = Layer.effect(this, this.make)
}
