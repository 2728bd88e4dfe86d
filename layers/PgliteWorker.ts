/**
 * The thread the embedded database runs in (started by PgliteLive.ts): PGlite in `dataDir`,
 * served on a loopback port through pglite-socket. PGlite executes every statement synchronously
 * in WebAssembly; in the server's own thread, a statement held the event loop (measured: 0.5 s
 * between two requests to an embedding provider while chunks were written). Here it holds only
 * this thread.
 *
 * Protocol with the parent: `workerData` holds `dataDir`, the `port` to listen on (0: any), and
 * `busySince`, a shared clock where the thread writes when its running statement started (0:
 * none), which the parent reads while this thread cannot answer. Postgres's FATAL and PANIC lines
 * are posted as `{ problem }` as they come; once listening the worker posts `{ port }`, or
 * `{ failed }` if PGlite does not open; the message "close" closes the socket server and PGlite,
 * then the thread ends (exit code 0).
 */
import { PGlite } from "@electric-sql/pglite"
import { vector } from "@electric-sql/pglite-pgvector"
import { PGLiteSocketHandler } from "@electric-sql/pglite-socket"
import { createServer, type AddressInfo, type Socket } from "node:net"
import { join } from "node:path"
import { parentPort, workerData } from "node:worker_threads"
import { PgliteMultiplexer } from "../src/database/PgliteMultiplexer.ts"

const { busySince, dataDir, port } = workerData as {
  readonly dataDir: string
  readonly port: number
  readonly busySince: Float64Array
}

const directory = join(dataDir, "pglite")
const db = await PGlite.create(directory, {
  extensions: { vector },
  // Postgres's log: the lines that say why it cannot go on (a damaged directory, a full disk),
  // naming the directory as the server sees it rather than as PGlite mounts it.
  onStderr: (line: string) => {
    // The server's FATAL and PANIC lines, and the postmaster's own before its log is set up.
    if (/\b(FATAL|PANIC):|^postgres: /.test(line)) {
      parentPort!.postMessage({ problem: line.replace(/^.*?\b(FATAL|PANIC):\s*/, "$1: ").replaceAll("/pglite/data", directory) })
    }
    return false
  }
}).catch((error: unknown) => {
  // Posted, not thrown: an 'error' event could overtake the problems posted before it. The
  // parent receives every message posted before it sees the thread end.
  parentPort!.postMessage({ failed: error instanceof Error ? error.message : String(error) })
  return process.exit(1)
})

const multiplexer = new PgliteMultiplexer(db, (running) => {
  busySince[0] = running ? Date.now() : 0
})
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
// The port of a previous thread on this directory if it is free (clients elsewhere know it), else any.
await new Promise<void>((resolve, reject) => {
  server.once("error", (error: NodeJS.ErrnoException) => {
    if (error.code !== "EADDRINUSE" || port === 0) return reject(error)
    server.listen(0, "127.0.0.1", resolve)
  })
  server.listen(port, "127.0.0.1", resolve)
})

parentPort!.once("message", async () => {
  // The pool has closed its connections by now; anything left open is cut.
  for (const socket of sockets) socket.destroy()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  await db.close()
  // Ends this thread only (Node and Deno alike; Deno's parentPort has no close()).
  process.exit(0)
})
parentPort!.postMessage({ port: (server.address() as AddressInfo).port })
