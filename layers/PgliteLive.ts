/**
 * The embedded database: PGlite (Postgres in WebAssembly, with pgvector) persisted on disk and
 * served on a loopback port through pglite-socket, so the server reaches it with the same pg
 * driver and SqlClient as a real Postgres. It runs in a worker thread of this process
 * (PgliteWorker.ts), so that its statements, synchronous WebAssembly, do not hold the event loop.
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer } from "effect"
import { Worker } from "node:worker_threads"
import { AppConfig } from "../src/config/AppConfig.ts"

const bootstrap = new URL("./TypeScriptWorker.mjs", import.meta.url)
const workerModule = new URL("./PgliteWorker.ts", import.meta.url).href

/**
 * PGlite in `dataDir`, served on a loopback port for the scope's lifetime. Any Postgres client
 * may connect, from this process or another: the tests run several servers on one PGlite so.
 */
export const servePglite = (dataDir: string) =>
  Effect.acquireRelease(
    Effect.async<{ readonly worker: Worker; readonly port: number }>((resume) => {
      const worker = new Worker(bootstrap, { workerData: { module: workerModule, dataDir } })
      // The scope ends the thread; a server failing before that must still be able to exit.
      worker.unref()
      const failed = (cause: unknown) => resume(Effect.die(cause))
      worker.once("error", failed)
      worker.once("exit", (code) => failed(new Error(`the PGlite thread ended (exit code ${code}) before it listened`)))
      worker.once("message", (message: { readonly port: number }) => {
        worker.removeAllListeners()
        resume(Effect.succeed({ worker, port: message.port }))
      })
    }),
    ({ worker }) =>
      Effect.async<void>((resume) => {
        worker.once("exit", () => resume(Effect.void))
        worker.postMessage("close")
      })
  ).pipe(
    Effect.tap(({ port }) => Effect.logDebug(`PGlite served on 127.0.0.1:${port}`)),
    Effect.map(({ port }) => ({ port }))
  )

export const PgliteClientLive = Layer.unwrapScoped(
  Effect.gen(function*() {
    const config = yield* AppConfig
    const { port } = yield* servePglite(config.dataDir)
    return PgClient.layer({
      host: "127.0.0.1",
      port,
      username: "postgres",
      database: "postgres",
      maxConnections: config.database.poolMax,
      applicationName: "basalt"
    })
  })
)
