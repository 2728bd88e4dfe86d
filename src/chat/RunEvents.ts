/**
 * The events of answers being generated (runs), kept in the database so that any process can
 * replay them from a position and follow the rest live, and the stop signal a runner races its
 * generation against.
 *
 * A run generated in this process (its runner holds `generating`) also keeps its last committed
 * events in memory (LiveRunLog), published after each append's transaction commits: a follower
 * here takes them from there without reading the database, and reads the table for whatever the
 * memory does not hold (events from before, evicted ones, a gap in seqs, a write by another
 * process), so every event still comes exactly once and in order.
 *
 * A reader waits for news of a run in three ways, the first to come: a wake from this process's
 * writer, a NOTIFY from another process's (Postgres, delivered on commit; every process LISTENs on
 * one channel and ignores its own), and a safety poll every few seconds (a run generated here needs
 * none), so that a notification lost while the LISTEN connection was down delays a reader little.
 * Each wait takes its signal before it reads, so a wake between the read and the wait is not missed.
 *
 * A run ends with its terminal event (message_end or error), stored in the same transaction that
 * sets chat_messages.finished_at. Its events are deleted `BASALT_CHAT_RUN_RETENTION` after that,
 * by every process once a minute; a reader of a finished run whose events are gone gets
 * `RunEventsExpired`.
 */
import { randomUUID } from "node:crypto"
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

/**
 * The most a reader of a run generated in another process waits without looking at the database
 * itself: NOTIFY wakes it, and a LISTEN connection that comes back wakes every reader.
 */
const safetyPoll = Duration.seconds(10)
const replayPage = 1_000
/** The events a live run holds in memory at most; a follower further behind reads the table. */
export const liveRunCapacity = 512
const cleanupInterval = Duration.minutes(1)
const cleanupBatch = 5_000
const channel = "basalt_chat_events"

/** A notification's payload, and the in-process key of what it is about. */
const eventsKey = (messageId: string) => `e:${messageId}`
const stopKey = (messageId: string) => `s:${messageId}`

/**
 * Wake-ups by key. `signal` is taken before reading and awaited after; `wake` completes every
 * signal taken for its key so far.
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

/**
 * The last committed events of a run generated in this process, an unbroken range of seqs of at
 * most `liveRunCapacity`. A batch that does not follow the last one held (a publication was
 * missed) starts the range again from itself; one older than it is left to the table.
 */
class LiveRunLog {
  private events: Array<RunEvent> = []
  /** Index of the first event held in `events` (evicted ones are dropped in bulk). */
  private start = 0
  terminalSeq: number | undefined = undefined
  /** Writes to this run notified by another process: a follower that accounted for fewer reads the table. */
  foreignWrites = 0

  publish(batch: ReadonlyArray<RunEvent>) {
    if (this.terminalSeq !== undefined) return
    const last = this.events.length > this.start ? this.events[this.events.length - 1]!.seq : undefined
    const fresh = last === undefined ? batch : batch.filter((event) => event.seq > last)
    if (fresh.length === 0) return
    if (last === undefined || fresh[0]!.seq !== last + 1) {
      this.events = []
      this.start = 0
    }
    for (const event of fresh) {
      this.events.push(event)
      if (isTerminal(event.type)) {
        this.terminalSeq = event.seq
        break
      }
    }
    const held = this.events.length - this.start
    if (held > liveRunCapacity) this.start += held - liveRunCapacity
    if (this.start >= liveRunCapacity) {
      this.events = this.events.slice(this.start)
      this.start = 0
    }
  }

  /**
   * The seq after the last one held: the next one when no one else wrote since. 1 before anything
   * was published, as for a run starting now: should the run have earlier events, that seq is
   * taken and the write takes the locked way.
   */
  nextSeq(): number | undefined {
    if (this.terminalSeq !== undefined) return undefined
    return this.events.length > this.start ? this.events[this.events.length - 1]!.seq + 1 : 1
  }

  /**
   * The held events after `afterSeq` (the terminal one last); none when nothing was committed
   * after it (as far as this process knows); undefined when the table must tell.
   */
  after(afterSeq: number): ReadonlyArray<RunEvent> | undefined {
    if (this.events.length === this.start) return undefined
    const first = this.events[this.start]!.seq
    if (afterSeq + 1 < first) return undefined
    return this.events.slice(this.start + afterSeq + 1 - first)
  }
}

/** Where a follower is: its last seq sent, and the other process's writes it has read the table for. */
interface FollowState {
  readonly after: number
  readonly foreignWrites: number
}

export class RunEvents extends Context.Service<RunEvents>()("basalt/RunEvents", {
  make: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const config = yield* AppConfig
    const lifecycle = yield* ServerLifecycle
    const signals = makeSignals()
    const embedded = Option.isNone(config.database.url)
    /** Runs generated in this process, by message id. */
    const liveRuns = new Map<string, LiveRunLog>()
    /** Tells this process's notifications apart from the others'. */
    const origin = randomUUID()

    // A NOTIFY inside a transaction is delivered on commit, and not at all on rollback.
    /** A notification's payload: its key and this process. */
    const payloadOf = (key: string) => `${key}:${origin}`
    const notifying = (key: string) => (embedded ? sql`` : sql`, pg_notify(${channel}, ${payloadOf(key)})`)

    const decodeEvents = Schema.decodeUnknownEffect(Schema.Array(RunEvent))
    const decodeState = Schema.decodeUnknownEffect(Schema.Array(RunState))

    /** The batch as rows of seq (`first` for its first event, or after the run's last stored), type and data. */
    const batchRows = (messageId: string, batch: string, first: number | undefined) => sql`
      batch AS (
        SELECT (${first === undefined ? sql`(SELECT COALESCE(max(seq), 0) FROM chat_run_events WHERE message_id = ${messageId})` : sql`${first - 1}::integer`} + e.ord)::integer AS seq,
          e.value->>'type' AS type, e.value->'data' AS data
        FROM jsonb_array_elements(${batch}::jsonb) WITH ORDINALITY AS e(value, ord)
      )`
    const finishing = (messageId: string, terminal: boolean) =>
      terminal
        ? sql`, finished AS (
            UPDATE chat_messages SET finished_at = now() WHERE id = ${messageId} AND finished_at IS NULL RETURNING id
          )`
        : sql``

    /**
     * One transaction that takes the message's row lock, so that concurrent writers of one run
     * take their turns and each reads the sequence the previous one left.
     */
    const appendLocked = (messageId: string, batch: string, terminal: boolean) =>
      sql.withTransaction(
        Effect.gen(function* () {
          const locked = yield* sql`SELECT id ${notifying(eventsKey(messageId))} FROM chat_messages WHERE id = ${messageId} FOR UPDATE`
          if (locked.length === 0) return yield* Effect.die(new Error(`chat message ${messageId} does not exist`))
          return yield* sql<{ seq: number }>`
            WITH ${batchRows(messageId, batch, undefined)}${finishing(messageId, terminal)}
            INSERT INTO chat_run_events (message_id, seq, type, data)
            SELECT ${messageId}, seq, type, data FROM batch
            RETURNING seq`
        })
      )

    /**
     * One statement, no lock: the seqs from `first`, which this process's last write of the run
     * makes the next ones. Had anyone else written since, one of them is taken and the whole
     * statement fails (nothing stored, nothing notified): undefined, and the locked way is taken.
     */
    const appendAt = (messageId: string, batch: string, terminal: boolean, first: number) =>
      sql<{ seq: number }>`
        WITH ${batchRows(messageId, batch, first)}${finishing(messageId, terminal)}${
          embedded ? sql`` : sql`, notified AS (SELECT pg_notify(${channel}, ${payloadOf(eventsKey(messageId))}))`
        }
        INSERT INTO chat_run_events (message_id, seq, type, data)
        SELECT ${messageId}, seq, type, data FROM batch${embedded ? sql`` : sql` CROSS JOIN notified`}
        RETURNING seq`.pipe(
        Effect.map((rows): ReadonlyArray<{ seq: number }> | undefined => rows),
        Effect.catchIf(
          (error) => error.reason._tag === "UniqueViolation",
          () => Effect.succeed(undefined)
        )
      )

    const append = (messageId: string, events: ReadonlyArray<NewRunEvent>): Effect.Effect<ReadonlyArray<number>> => {
      if (events.length === 0) return Effect.succeed([])
      const terminal = events.some((event) => isTerminal(event.type))
      const batch = JSON.stringify(events.map(({ data, type }) => ({ type, data: data ?? null })))
      const next = liveRuns.get(messageId)?.nextSeq()
      return (
        next === undefined
          ? appendLocked(messageId, batch, terminal)
          : Effect.flatMap(appendAt(messageId, batch, terminal, next), (rows) =>
              rows === undefined ? appendLocked(messageId, batch, terminal) : Effect.succeed(rows)
            )
      ).pipe(
        Effect.map((rows) => rows.map((row) => Number(row.seq)).sort((a, b) => a - b)),
        Effect.orDie,
        Effect.tap((seqs) =>
          Effect.sync(() => {
            const live = liveRuns.get(messageId)
            if (live !== undefined) {
              // As a reader of the table would get them: the stored JSON, in seq order (seq = the run's last + position).
              const stored = JSON.parse(batch) as Array<{ type: RunEventType; data: unknown }>
              live.publish(stored.map((event, n) => ({ seq: seqs[n]!, type: event.type, data: event.data })))
            }
            signals.wake(eventsKey(messageId))
          })
        )
      )
    }

    const generating = (messageId: string): Effect.Effect<void, never, Scope.Scope> =>
      Effect.asVoid(
        Effect.acquireRelease(
          Effect.sync(() => {
            const live = new LiveRunLog()
            liveRuns.set(messageId, live)
            signals.wake(eventsKey(messageId))
            return live
          }),
          (live) =>
            Effect.sync(() => {
              if (liveRuns.get(messageId) === live) liveRuns.delete(messageId)
              // Its followers here go back to the table (and to NOTIFY, should another process take the run over).
              signals.wake(eventsKey(messageId))
            })
        )
      )

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

    /** Waits for `signal`, the server's draining or `bound`, the first to come. */
    const awaitWake = (signal: Deferred.Deferred<void>, bound: Duration.Input) =>
      Effect.asVoid(Effect.timeoutOption(Effect.raceFirst(Deferred.await(signal), lifecycle.whenDraining), bound))

    type Step = readonly [ReadonlyArray<RunEvent>, Option.Option<FollowState>]
    const ended: Step = [[], Option.none()]
    const sent = (events: ReadonlyArray<RunEvent>, foreignWrites: number): Step => {
      const end = events.findIndex((event) => isTerminal(event.type))
      if (end >= 0) return [events.slice(0, end + 1), Option.none()]
      return [events, Option.some({ after: events[events.length - 1]!.seq, foreignWrites })]
    }

    /** What to send next from `state`, and from where to go on (none: the stream ends). */
    const step = (messageId: string, state: FollowState): Effect.Effect<Step, RunEventsExpired> =>
      Effect.scoped(
        Effect.gen(function* () {
          const { after } = state
          const signal = yield* signals.signal(eventsKey(messageId))
          const live = liveRuns.get(messageId)
          if (live !== undefined && live.foreignWrites === state.foreignWrites) {
            const held = live.after(after)
            if (held !== undefined) {
              if (held.length > 0) return sent(held, state.foreignWrites)
              if (live.terminalSeq !== undefined && live.terminalSeq <= after) return ended
              if (lifecycle.isDraining()) return ended
              // Generated here: a publication, another process's write or the run's end wakes it.
              yield* awaitWake(signal, safetyPoll)
              return [[], lifecycle.isDraining() ? Option.none() : Option.some(state)] as const
            }
          }
          // Accounted for from here on: what another process wrote so far is in the table now.
          const foreignWrites = live?.foreignWrites ?? 0
          while (true) {
            const rows = yield* eventsAfter(messageId, after)
            if (rows.length > 0) return sent(rows, foreignWrites)
            if (live !== undefined) {
              if (lifecycle.isDraining()) return ended
              yield* awaitWake(signal, safetyPoll)
              return [[], lifecycle.isDraining() ? Option.none() : Option.some({ after, foreignWrites })] as const
            }
            const run = yield* runState(messageId)
            if (run === undefined) return yield* new RunEventsExpired({ messageId })
            if (run.finished) {
              if (run.terminal_seq === null) return yield* new RunEventsExpired({ messageId })
              if (run.terminal_seq <= after) return ended
              // The last events were committed between the two reads: read them.
              continue
            }
            if (lifecycle.isDraining()) return ended
            yield* awaitWake(signal, safetyPoll)
            return [[], lifecycle.isDraining() ? Option.none() : Option.some({ after, foreignWrites: 0 })] as const
          }
        })
      )

    const follow = (messageId: string, afterSeq: number): Stream.Stream<RunEvent, RunEventsExpired> =>
      Stream.paginate({ after: afterSeq, foreignWrites: 0 } as FollowState, (state) => step(messageId, state))

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
          yield* Effect.timeoutOption(Deferred.await(signal), safetyPoll)
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

    /** `<key>:<origin>`; this process's own are ignored (its writer wakes its readers itself). */
    const notified = (payload: string) => {
      const at = payload.lastIndexOf(":")
      if (at > 1 && payload.slice(at + 1) === origin) return
      const key = at > 1 ? payload.slice(0, at) : payload
      const live = key.startsWith("e:") ? liveRuns.get(key.slice(2)) : undefined
      if (live !== undefined) live.foreignWrites++
      signals.wake(key)
    }

    if (!embedded) {
      const pg = yield* PgClient.PgClient
      const listen = Effect.scoped(
        Effect.gen(function* () {
          const notifications = yield* pg.listen(channel)
          // Notifications sent while no connection listened are lost: every waiter looks again.
          for (const live of liveRuns.values()) live.foreignWrites++
          signals.wakeAll()
          yield* Stream.fromQueue(notifications).pipe(
            Stream.runForEach((notification) => Effect.sync(() => notified(notification.payload)))
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
      /**
       * Marks the run as generated in this process for the scope: its appends are kept in memory
       * for its followers here.
       */
      generating,
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
