/**
 * The embedded database: PGlite (Postgres in WebAssembly, with pgvector) persisted on disk and
 * served on a loopback port through pglite-socket, so the server reaches it with the same
 * Postgres driver and SqlClient as a real Postgres. It runs in a worker thread of this process
 * (PgliteWorker.ts), so that its statements, synchronous WebAssembly, do not hold the event loop.
 *
 * The data directory is locked first (DataDirectoryLock). Then a watchdog keeps the thread
 * answering. PGlite that fails to write its WAL on a full disk does not stop as Postgres would
 * after its PANIC: it spins in XLogFlush, or leaves the session in a transaction nobody owns, and
 * every statement waits forever, even once space is freed. So a PANIC, or a statement that holds
 * the thread for `stallAfter` while the directory's file system is (nearly) full, ends the
 * thread, and a new one is started (Postgres recovers from its WAL), once space is back if that
 * was the cause; a thread that ended on its own is started again too. While there is no thread,
 * new connections are refused with the SQLSTATE that says why (53100 disk full, 57P03 starting),
 * which the error path answers as 503 with Retry-After.
 */
import { PgClient } from "@effect/sql-pg"
import { Duration, Effect, Layer, Schedule, type Scope } from "effect"
import { statfsSync } from "node:fs"
import { connect as connectTcp } from "node:net"
import { resolve } from "node:path"
import { Duplex } from "node:stream"
import { Worker } from "node:worker_threads"
import { AppConfig } from "../src/config/AppConfig.ts"
import { cannotOpen, lockDataDirectory } from "../src/database/DataDirectoryLock.ts"
import { makeTypes } from "../src/database/PgTypeCodecs.ts"
import type { StartupError } from "../src/StartupFailure.ts"

const bootstrap = new URL("./TypeScriptWorker.mjs", import.meta.url)
const workerModule = new URL("./PgliteWorker.ts", import.meta.url).href

/** How long one statement may hold the thread, on a full disk, before the thread is taken for stuck. */
const stallAfter = Duration.seconds(5)
/** Below this, the file system counts as full: Postgres adds WAL in segments of 16 MiB. */
const fullBelowBytes = 16 * 1024 * 1024
/** A restart that has not listened by then is abandoned (and tried again). */
const restartBound = Duration.minutes(1)
/** How long "close" may take (a checkpoint) before the thread is ended without it. */
const closeBound = Duration.seconds(10)

interface PgliteThread {
  readonly worker: Worker
  readonly port: number
  /** When the running statement started (ms since the epoch), 0 when none runs; written by the thread. */
  readonly busySince: Float64Array
  /** Whether the thread has ended (then there is nothing left to close). */
  readonly ended: () => boolean
  /** Postgres's first PANIC, after which this PGlite is done for: it has to be started again. */
  readonly panic: () => string | undefined
}

/** Why there is no thread: the SQLSTATE and message new connections are refused with. */
interface Down {
  readonly code: string
  readonly message: string
}

const diskFull: Down = { code: "53100", message: "the embedded database's disk is full" }
const starting: Down = { code: "57P03", message: "the embedded database is starting" }

const freeBytes = (dir: string): number | undefined => {
  try {
    const stats = statfsSync(dir)
    return stats.bavail * stats.bsize
  } catch {
    return undefined
  }
}

const megabytes = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`

/**
 * A connection that answers its startup message with a Postgres ErrorResponse (FATAL, `down`'s
 * SQLSTATE and message) and ends, as a server that cannot take connections does.
 */
const refusal = (down: Down): Duplex => {
  const field = (type: string, value: string) => Buffer.concat([Buffer.from(type), Buffer.from(value), Buffer.from([0])])
  const fields = Buffer.concat([
    field("S", "FATAL"),
    field("V", "FATAL"),
    field("C", down.code),
    field("M", down.message),
    Buffer.from([0])
  ])
  const length = Buffer.alloc(4)
  length.writeInt32BE(fields.length + 4)
  const answer = Buffer.concat([Buffer.from("E"), length, fields])
  let answered = false
  return new Duplex({
    read() {},
    write(_chunk, _encoding, callback) {
      if (!answered) {
        answered = true
        this.push(answer)
        this.push(null)
      }
      callback()
    }
  })
}

/** Starts a thread on `dir` listening on `port` (0: any); fails with the line that says why it could not. */
const startThread = (dir: string, port: number, onProblem: (line: string) => void) =>
  Effect.callback<PgliteThread, StartupError>((resume) => {
    const busySince = new Float64Array(new SharedArrayBuffer(Float64Array.BYTES_PER_ELEMENT))
    const worker = new Worker(bootstrap, { workerData: { module: workerModule, dataDir: dir, port, busySince } })
    // The scope ends the thread; a server failing before that must still be able to exit.
    worker.unref()
    let listening = false
    let ended = false
    let lastProblem: string | undefined
    let panic: string | undefined
    const failed = (reason: string) =>
      resume(Effect.fail(cannotOpen(dir, lastProblem === undefined ? reason : `${reason} (${lastProblem})`)))
    worker.on("error", (error) => {
      if (!listening) return failed(error.message)
      // Past the start, an uncaught error is logged (an 'error' event nobody hears would end the process).
      onProblem(`the embedded database's thread failed: ${error.message}`)
    })
    worker.on("exit", (code) => {
      ended = true
      if (!listening) failed(`the embedded database's thread ended (exit code ${code}) before it opened`)
    })
    worker.on("message", (message: { readonly port: number } | { readonly problem: string } | { readonly failed: string }) => {
      if ("failed" in message) return failed(message.failed)
      if ("port" in message) {
        listening = true
        return resume(Effect.succeed({ worker, port: message.port, busySince, ended: () => ended, panic: () => panic }))
      }
      lastProblem = message.problem
      if (!listening) return
      if (message.problem.startsWith("PANIC")) panic ??= message.problem
      else onProblem(`the embedded database reported ${message.problem}`)
    })
    return Effect.promise(() => worker.terminate())
  })

/** Ends a thread now; bounded, since a thread that does not end cannot be helped. */
const terminate = (thread: PgliteThread) =>
  Effect.promise(() => thread.worker.terminate()).pipe(Effect.timeoutOption(Duration.seconds(5)), Effect.asVoid)

/** Asks a thread to close PGlite (a clean shutdown), then ends it if that takes longer than `closeBound`. */
const close = (thread: PgliteThread) =>
  Effect.callback<void>((resume) => {
    if (thread.ended()) return resume(Effect.void)
    thread.worker.once("exit", () => resume(Effect.void))
    thread.worker.postMessage("close")
  }).pipe(
    Effect.timeoutOption(closeBound),
    Effect.flatMap((closed) => (closed._tag === "Some" ? Effect.void : terminate(thread)))
  )

/**
 * PGlite in `dataDir`, served on a loopback port for the scope's lifetime, and kept answering.
 * Any Postgres client may connect to `port`, from this process or another (the tests run several
 * servers on one PGlite so); `connect` is for this process's own pool: it reaches whichever thread
 * is current, and refuses with the reason while there is none.
 */
export const servePglite = (
  dataDir: string
): Effect.Effect<{ readonly port: number; readonly connect: () => Duplex }, StartupError, Scope.Scope> =>
  Effect.gen(function* () {
    const dir = resolve(dataDir)
    yield* lockDataDirectory(dir)
    const free = freeBytes(dir)
    if (free !== undefined && free < fullBelowBytes) {
      return yield* Effect.fail(cannotOpen(dir, `its file system is full (${megabytes(free)} free, at least 16 MB needed)`))
    }
    const context = yield* Effect.context<never>()
    const onProblem = (line: string) => Effect.runForkWith(context)(Effect.logError(line))
    const first = yield* startThread(dir, 0, onProblem)
    yield* Effect.logDebug(`PGlite served on 127.0.0.1:${first.port}`)

    let thread: PgliteThread | undefined = first
    /** The thread last stopped: no other may start on the same files before it has ended. */
    let stopped: PgliteThread | undefined
    let down: Down = starting
    let warnedBusy = false
    let failedRestarts = 0
    let nextRestartAt = 0
    yield* Effect.addFinalizer(() => Effect.suspend(() => (thread === undefined ? Effect.void : close(thread))))

    const restart = Effect.gen(function* () {
      if (stopped !== undefined && !stopped.ended()) return yield* terminate(stopped)
      const space = freeBytes(dir)
      if (Date.now() < nextRestartAt || (down === diskFull && space !== undefined && space < fullBelowBytes)) return
      const started = yield* startThread(dir, first.port, onProblem).pipe(
        Effect.timeoutOrElse({ duration: restartBound, orElse: () => Effect.fail(cannotOpen(dir, "it did not open within a minute")) }),
        Effect.result
      )
      if (started._tag === "Success") {
        thread = started.success
        failedRestarts = 0
        return yield* Effect.logWarning("the embedded database is back")
      }
      failedRestarts++
      nextRestartAt = Date.now() + Math.min(30_000, 1000 * 2 ** failedRestarts)
      if (failedRestarts === 1) yield* Effect.logError(`the embedded database could not be started again: ${started.failure.message}`)
    })

    /** Ends the current thread; the watchdog starts another when it can. */
    const stop = (current: PgliteThread, why: Down, message: string) => {
      stopped = current
      thread = undefined
      down = why
      return Effect.andThen(Effect.logError(`${message}; until then requests that need it answer 503`), terminate(current))
    }

    const watch = Effect.suspend(() => {
      if (thread === undefined) return restart
      if (thread.ended()) {
        thread = undefined
        down = starting
        return Effect.logError("the embedded database's thread ended: starting it again; until then requests that need it answer 503")
      }
      const panic = thread.panic()
      const since = thread.busySince[0] ?? 0
      const busyMs = since === 0 ? 0 : Date.now() - since
      if (panic === undefined && busyMs < Duration.toMillis(stallAfter)) {
        warnedBusy = false
        return Effect.void
      }
      const space = freeBytes(dir)
      const full = space !== undefined && space < fullBelowBytes
      const onFullDisk = full ? ` on a full disk (${megabytes(space)} free in ${dir})` : ""
      if (panic !== undefined) {
        return stop(
          thread,
          full ? diskFull : starting,
          `the embedded database failed${onFullDisk} (${panic}): it is started again${full ? " once space is freed" : ""}`
        )
      }
      if (full) return stop(thread, diskFull, `the embedded database is stuck${onFullDisk}: it is started again once space is freed`)
      if (warnedBusy || busyMs < 30_000) return Effect.void
      warnedBusy = true
      return Effect.logWarning(`one statement has held the embedded database for ${Math.round(busyMs / 1000)} s`)
    })
    yield* Effect.forkScoped(Effect.repeat(watch, Schedule.spaced("1 second")))

    return {
      port: first.port,
      connect: () => (thread === undefined ? refusal(down) : connectTcp({ host: "127.0.0.1", port: thread.port, noDelay: true }))
    }
  })

export const PgliteClientLive = Layer.unwrap(
  Effect.gen(function* () {
    const config = yield* AppConfig
    const { connect } = yield* servePglite(config.dataDir)
    return PgClient.layer({
      stream: connect,
      username: "postgres",
      database: "postgres",
      maxConnections: config.database.poolMax,
      applicationName: "basalt",
      types: makeTypes(),
      // Every connection is the same PGlite session: statements prepared by name would stay in it
      // after their connection closed, a few more with each connection the pool opens.
      prepare: false
    })
  })
)
