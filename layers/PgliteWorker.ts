/**
 * The thread the embedded database runs in (started by PgliteLive.ts): PGlite in `dataDir`,
 * served on a loopback port through pglite-socket. PGlite executes every statement synchronously
 * in WebAssembly; in the server's own thread, a statement held the event loop (measured: 0.5 s
 * between two requests to an embedding provider while chunks were written). Here it holds only
 * this thread.
 *
 * Protocol with the parent: `workerData` holds `dataDir`; once listening the worker posts
 * `{ port }`; the message "close" closes the socket server and PGlite, then the thread ends
 * (exit code 0).
 */
import { PGlite } from "@electric-sql/pglite"
import { vector } from "@electric-sql/pglite-pgvector"
import { PGLiteSocketHandler } from "@electric-sql/pglite-socket"
import { mkdirSync } from "node:fs"
import { createServer, type AddressInfo, type Socket } from "node:net"
import { join } from "node:path"
import { parentPort, workerData } from "node:worker_threads"
import { PgliteMultiplexer } from "../src/database/PgliteMultiplexer.ts"

const { dataDir } = workerData as { readonly dataDir: string }
mkdirSync(dataDir, { recursive: true })
const db = await PGlite.create(join(dataDir, "pglite"), { extensions: { vector } })

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
await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))

parentPort!.once("message", async () => {
  // The pool has closed its connections by now; anything left open is cut.
  for (const socket of sockets) socket.destroy()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  await db.close()
  // Ends this thread only (Node and Deno alike; Deno's parentPort has no close()).
  process.exit(0)
})
parentPort!.postMessage({ port: (server.address() as AddressInfo).port })
