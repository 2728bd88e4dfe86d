/**
 * PGlite (with pgvector) served on a loopback port from a process of its own, for benchmarks that
 * need pgvector with the database's CPU outside Basalt's process: `node --import tsx
 * bench/PgliteProcess.ts <data dir>` prints `port <n>` once it listens, and serves until killed.
 */
import { Effect, Exit, Scope } from "effect"
import { servePglite } from "../layers/PgliteLive.ts"

const dataDir = process.argv[2]
if (dataDir === undefined) {
  process.stderr.write("usage: PgliteProcess.ts <data dir>\n")
  process.exit(2)
}
const scope = Scope.makeUnsafe()
const { port } = await Effect.runPromise(Scope.provide(servePglite(dataDir), scope))
process.stdout.write(`port ${port}\n`)
const close = () => void Effect.runPromise(Scope.close(scope, Exit.void)).finally(() => process.exit(0))
process.once("SIGTERM", close)
process.once("SIGINT", close)
