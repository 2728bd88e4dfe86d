/**
 * What a benchmark run has started (Basalt processes, fake providers, databases, temporary
 * directories), undone last first: at the end of a run, and on a signal, so that an interrupted
 * bench leaves no process and no database behind. `npm run` passes a signal to its shell, not to
 * the bench: when npm goes, so does the run. On an exit before the cleanup ran, the processes are
 * killed and the directories removed, the only things possible then.
 */
import { rmSync } from "node:fs"
import type { ServerProcess } from "./ServerProcess.ts"

const describe = (error: unknown) => (error instanceof Error ? error.message : String(error))

export const makeTeardown = (bench: string) => {
  const undoStack: Array<() => Promise<void> | void> = []
  const liveServers = new Set<ServerProcess>()
  const liveDirectories = new Set<string>()
  let undoing: Promise<void> | undefined
  let interrupted = false

  const undoAll = (): Promise<void> =>
    (undoing ??= (async () => {
      for (let undo = undoStack.pop(); undo !== undefined; undo = undoStack.pop()) {
        try {
          await undo()
        } catch (error) {
          process.stderr.write(`${bench}: cleaning up: ${describe(error)}\n`)
        }
      }
    })().finally(() => {
      undoing = undefined
    }))

  const interrupt = (reason: string, code: number) => {
    // A second signal while cleaning up: no more waiting for the processes.
    if (interrupted) process.exit(code)
    interrupted = true
    process.stderr.write(`${bench}: ${reason}: stopping Basalt and dropping the database\n`)
    void undoAll().finally(() => process.exit(code))
  }
  for (const [signal, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
    ["SIGHUP", 129]
  ] as const) {
    process.on(signal, () => interrupt(signal, code))
  }
  const parentPid = process.ppid
  const parentWatch = setInterval(() => {
    if (process.ppid === parentPid) return
    clearInterval(parentWatch)
    if (!interrupted) interrupt("the parent process has gone", 129)
  }, 1_000).unref()
  process.on("exit", () => {
    for (const server of liveServers) server.kill("SIGKILL")
    for (const directory of liveDirectories) rmSync(directory, { recursive: true, force: true })
  })
  // Output piped into a reader that has gone (`| head`): a write failing must not end the cleanup.
  process.stdout.on("error", () => {})
  process.stderr.on("error", () => {})

  return {
    /** Undone at the end, before what was registered earlier. */
    undo: (step: () => Promise<void> | void) => {
      undoStack.push(step)
    },
    undoAll,
    liveServers,
    liveDirectories,
    isInterrupted: () => interrupted
  }
}
