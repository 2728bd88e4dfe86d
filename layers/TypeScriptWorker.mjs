// The entry of a worker thread whose code is TypeScript (`workerData.module`, a file URL).
// The parent may run without tsx (under vitest, or a bundler), and Node's own type stripping
// refuses part of TypeScript, so the worker registers tsx itself, in JavaScript; Deno runs
// TypeScript as it is.
import { workerData } from "node:worker_threads"

if (!("Deno" in globalThis)) {
  const { register } = await import("tsx/esm/api")
  register()
}
await import(workerData.module)
