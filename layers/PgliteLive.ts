/**
 * The embedded database: PGlite (Postgres in WebAssembly, with pgvector) persisted on disk and
 * served on a loopback port through pglite-socket, so the server reaches it with the same
 * Postgres driver and SqlClient as a real Postgres. It runs in a worker thread of this process
 * (PgliteWorker.ts), so that its statements, synchronous WebAssembly, do not hold the event loop.
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer } from "effect"
import { Worker } from "node:worker_threads"
import { AppConfig } from "../src/config/AppConfig.ts"
import { makeTypes } from "../src/database/PgTypeCodecs.ts"

const bootstrap = new URL("./TypeScriptWorker.mjs", import.meta.url)
const workerModule = new URL("./PgliteWorker.ts", import.meta.url).href

interface PgliteThread {
  readonly worker: Worker
  readonly port: number
  /** Whether the thread has ended (then there is nothing left to close). */
  readonly ended: () => boolean
}

const startThread = (dataDir: string) =>
  Effect.gen(function* () {
    const context = yield* Effect.context<never>()
    return yield* Effect.callback<PgliteThread>((resume) => {
      const worker = new Worker(bootstrap, { workerData: { module: workerModule, dataDir } })
      // The scope ends the thread; a server failing before that must still be able to exit.
      worker.unref()
      let listening = false
      let ended = false
      worker.on("error", (error) => {
        if (!listening) return resume(Effect.die(error))
        // Past the start, an uncaught error is logged (an 'error' event nobody hears would end the process).
        Effect.runForkWith(context)(Effect.logError("the embedded database's thread failed", error))
      })
      worker.on("exit", (code) => {
        ended = true
        if (!listening) resume(Effect.die(new Error(`the PGlite thread ended (exit code ${code}) before it listened`)))
      })
      worker.once("message", (message: { readonly port: number }) => {
        listening = true
        resume(Effect.succeed({ worker, port: message.port, ended: () => ended }))
      })
    })
  })

/**
 * PGlite in `dataDir`, served on a loopback port for the scope's lifetime. Any Postgres client
 * may connect, from this process or another: the tests run several servers on one PGlite so.
 */
export const servePglite = (dataDir: string) =>
  Effect.acquireRelease(startThread(dataDir), ({ ended, worker }) =>
    Effect.callback<void>((resume) => {
      if (ended()) return resume(Effect.void)
      worker.once("exit", () => resume(Effect.void))
      worker.postMessage("close")
    })
  ).pipe(
    Effect.tap(({ port }) => Effect.logDebug(`PGlite served on 127.0.0.1:${port}`)),
    Effect.map(({ port }) => ({ port }))
  )

export const PgliteClientLive = Layer.unwrap(
  Effect.gen(function* () {
    const config = yield* AppConfig
    const { port } = yield* servePglite(config.dataDir)
    return PgClient.layer({
      host: "127.0.0.1",
      port,
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
