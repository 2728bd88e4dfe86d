/**
 * The embedded database: PGlite (Postgres in WebAssembly, with pgvector) persisted on disk and
 * served on a loopback port through pglite-socket, so the server reaches it with the same pg
 * driver and SqlClient as a real Postgres.
 */
import { PGlite } from "@electric-sql/pglite"
import { vector } from "@electric-sql/pglite-pgvector"
import { PGLiteSocketHandler } from "@electric-sql/pglite-socket"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer } from "effect"
import { mkdirSync } from "node:fs"
import { createServer, type AddressInfo, type Server, type Socket } from "node:net"
import { join } from "node:path"
import { AppConfig } from "../src/config/AppConfig.ts"
import { PgliteMultiplexer } from "../src/database/PgliteMultiplexer.ts"

const openPglite = (dataDir: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      mkdirSync(dataDir, { recursive: true })
      return PGlite.create(join(dataDir, "pglite"), { extensions: { vector } })
    }),
    (db) => Effect.promise(() => db.close())
  )

const listen = (db: PGlite) =>
  Effect.acquireRelease(
    Effect.async<{ readonly server: Server; readonly sockets: Set<Socket> }>((resume) => {
      const multiplexer = new PgliteMultiplexer(db)
      const sockets = new Set<Socket>()
      const server = createServer((socket) => {
        sockets.add(socket)
        socket.once("close", () => sockets.delete(socket))
        const handler = new PGLiteSocketHandler({
          // Structurally the queue PGLiteSocketHandler drives; see PgliteMultiplexer for why it is ours.
          queryQueue: multiplexer as unknown as ConstructorParameters<typeof PGLiteSocketHandler>[0]["queryQueue"],
          closeOnDetach: true
        })
        handler.attach(socket).catch(() => socket.destroy())
      })
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed({ server, sockets })))
    }),
    ({ server, sockets }) =>
      Effect.async<void>((resume) => {
        // The pool has closed its connections by now; anything left open is cut.
        for (const socket of sockets) socket.destroy()
        server.close(() => resume(Effect.void))
      })
  )

/**
 * PGlite in `dataDir`, served on a loopback port for the scope's lifetime. Any Postgres client
 * may connect, from this process or another: the tests run several servers on one PGlite so.
 */
export const servePglite = (dataDir: string) =>
  Effect.gen(function*() {
    const db = yield* openPglite(dataDir)
    const { server } = yield* listen(db)
    const { port } = server.address() as AddressInfo
    yield* Effect.logDebug(`PGlite served on 127.0.0.1:${port}`)
    return { port }
  })

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
