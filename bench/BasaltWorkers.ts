/**
 * Basalt in BENCH_WORKERS processes (default 2) sharing one listening port through node:cluster,
 * for bench/http.ts's multi-worker rows (the FastAPI peer's `uvicorn --workers N`). The kernel
 * spreads connections over the workers (SCHED_NONE, as uvicorn's shared socket does), so the
 * primary only watches them. Needs PostgreSQL (DATABASE_URL): PGlite's data directory belongs
 * to one process. SIGTERM stops every worker the way it stops one Basalt; the exit code is 0
 * when all of them exited 0.
 */
import cluster from "node:cluster"
import { resolve } from "node:path"

const workers = Number(process.env["BENCH_WORKERS"] ?? 2)
cluster.schedulingPolicy = cluster.SCHED_NONE
cluster.setupPrimary({ exec: resolve("src/main.ts"), execArgv: ["--import", "tsx"] })

let stopping = false
let failed = false
let running = 0
for (let i = 0; i < workers; i++) {
  cluster.fork()
  running++
}
cluster.on("exit", (_worker, code) => {
  running--
  if (!stopping || code !== 0) failed = true
  // One worker gone on its own leaves a half-sized server: stop the rest rather than measure it.
  if (!stopping) stopAll()
  if (running === 0) process.exit(failed ? 1 : 0)
})

const stopAll = () => {
  stopping = true
  for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill("SIGTERM")
}
process.on("SIGTERM", stopAll)
process.on("SIGINT", stopAll)
