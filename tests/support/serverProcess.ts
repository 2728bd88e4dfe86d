/**
 * The server as a child process, started like `npm start`, for what only a process shows: its
 * exit code and stderr, signals, start-up failures, its log lines.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll } from "vitest"
import { receive } from "./server.ts"

export const repoRoot = new URL("../..", import.meta.url).pathname

export const startupDeadlineMs = 90_000
export const processTimeout = 150_000

export interface ServerProcess {
  readonly url: string
  readonly dataDir: string
  readonly port: number
  readonly child: ChildProcess
  readonly stdoutLines: () => ReadonlyArray<string>
  readonly stderr: () => string
  /**
   * Resolves once the stdout lines so far satisfy `condition`; rejects if the process exits first
   * or after `boundMs` (a bound against a hang, not a measurement).
   */
  readonly waitFor: (condition: (lines: ReadonlyArray<string>) => boolean, what: string, boundMs?: number) => Promise<void>
  readonly exited: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
}

const running = new Set<ChildProcess>()
const dataDirs = new Set<string>()

afterAll(() => {
  for (const child of running) child.kill("SIGKILL")
  for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true })
})

/**
 * `npm start`'s command (or `nodeArguments`), with only the variables given (and DATABASE_URL when
 * the run has one); a variable given as undefined is not set at all.
 */
export const startProcess = async (
  env: Record<string, string | undefined> = {},
  nodeArguments: ReadonlyArray<string> = ["--import", "tsx", "src/main.ts"]
): Promise<ServerProcess> => {
  const dataDir = "BASALT_DATA_DIR" in env ? (env["BASALT_DATA_DIR"] ?? "") : mkdtempSync(join(tmpdir(), "basalt-lifecycle-"))
  if (dataDir !== "") dataDirs.add(dataDir)
  const variables = {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? tmpdir(),
    // A port the server picks and logs: a port chosen here could be taken by another test's
    // server in between, which would then answer for this one.
    PORT: "0",
    HOST: "127.0.0.1",
    BASALT_DATA_DIR: dataDir,
    ...(process.env.DATABASE_URL ? { DATABASE_URL: process.env.DATABASE_URL } : {}),
    ...env
  }
  const child = spawn(process.execPath, nodeArguments, {
    cwd: repoRoot,
    env: Object.fromEntries(Object.entries(variables).filter((entry): entry is [string, string] => entry[1] !== undefined)),
    stdio: ["ignore", "pipe", "pipe"]
  })
  running.add(child)
  const lines: Array<string> = []
  const waiters = new Set<() => void>()
  let partial = ""
  let stderr = ""
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    const parts = (partial + chunk).split("\n")
    partial = parts.pop() ?? ""
    lines.push(...parts)
    for (const wake of waiters) wake()
  })
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => {
      running.delete(child)
      resolve({ code, signal })
      for (const wake of waiters) wake()
    })
  })
  const waitFor = (condition: (lines: ReadonlyArray<string>) => boolean, what: string, boundMs = 30_000) =>
    new Promise<void>((resolve, reject) => {
      const settle = (error?: Error) => {
        waiters.delete(check)
        clearTimeout(bound)
        if (error === undefined) resolve()
        else reject(error)
      }
      const check = () => {
        if (condition(lines)) settle()
        else if (child.exitCode !== null || child.signalCode !== null) {
          settle(new Error(`the server exited before logging ${what}; stdout:\n${lines.join("\n")}\nstderr:\n${stderr}`))
        }
      }
      const bound = setTimeout(() => settle(new Error(`the server did not log ${what} within ${boundMs} ms`)), boundMs)
      waiters.add(check)
      check()
    })
  const listeningPort = () => {
    for (const line of lines) {
      const match = /"Basalt listening on http:\/\/[^:]+:(\d+)/.exec(line)
      if (match !== null) return Number(match[1])
    }
    throw new Error("the server has not said where it listens yet")
  }
  return {
    get url() {
      return `http://127.0.0.1:${listeningPort()}`
    },
    dataDir,
    get port() {
      return listeningPort()
    },
    child,
    stdoutLines: () => lines,
    stderr: () => stderr,
    waitFor,
    exited
  }
}

export const logEntries = (server: ServerProcess) =>
  server
    .stdoutLines()
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>)

/** Waits for the server to say where it listens, then polls GET /health until it is 200. */
export const waitUntilHealthy = async (server: ServerProcess) => {
  await server.waitFor((lines) => lines.some((line) => line.includes('"Basalt listening on')), "where it listens", startupDeadlineMs)
  const deadline = Date.now() + startupDeadlineMs
  while (Date.now() < deadline) {
    if (server.child.exitCode !== null) {
      throw new Error(`the server exited with ${server.child.exitCode} while starting:\n${server.stderr()}`)
    }
    // Refused while starting; but once accepted, a request must be answered.
    const response = await fetch(`${server.url}/health`, { signal: AbortSignal.timeout(15_000) }).then(
      (answer) => receive("GET", "/health", answer),
      (error: Error) => {
        if (error.name === "TimeoutError") throw new Error("GET /health was accepted but not answered within 15 s")
        return undefined
      }
    )
    if (response?.status === 200) return
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  throw new Error(`the server did not answer /health within ${startupDeadlineMs} ms:\n${server.stdoutLines().join("\n")}`)
}

/** Resolves with the exit, or rejects after `ms` (a bound against a hung process, not a measurement). */
export const exitWithin = (server: ServerProcess, ms: number, what: string) =>
  Promise.race([
    server.exited,
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`the server did not exit within ${ms} ms after ${what}`)), ms).unref()
    )
  ])
