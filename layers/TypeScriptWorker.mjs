// The entry of a worker thread whose code is TypeScript (`workerData.module`, a file URL).
// Node 20 does not carry the parent's tsx loader into worker threads, so the worker registers
// it itself, in JavaScript; Deno runs TypeScript as it is.
import { workerData } from "node:worker_threads"

if (!("Deno" in globalThis)) {
  const { register } = await import("tsx/esm/api")
  register()
}
await import(workerData.module)
