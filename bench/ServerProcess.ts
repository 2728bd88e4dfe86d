/** Starting, probing and stopping the servers bench/http.ts measures, each a child process. */
import { spawn } from "node:child_process"
import { closeSync, openSync, readdirSync, readFileSync } from "node:fs"
import { createServer } from "node:net"
import { setTimeout as sleep } from "node:timers/promises"

export interface ProcessExit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

export interface ServerProcess {
  readonly name: string
  readonly baseUrl: string
  readonly logFile: string
  /** Settles once the process has exited (or failed to start). */
  readonly exited: Promise<ProcessExit>
  readonly hasExited: () => boolean
  readonly kill: (signal: NodeJS.Signals) => void
  /**
   * CPU time (user + system) the process and its descendants (workers) have used so far, in ms;
   * undefined where /proc is missing.
   */
  readonly cpuTimeMs: () => number | undefined
}

/** A port free on 127.0.0.1 right now; the child that gets it binds it moments later. */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const probe = createServer()
    probe.once("error", reject)
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      probe.close(() => (port > 0 ? resolve(port) : reject(new Error("could not find a free port"))))
    })
  })

export interface ServerProcessOptions {
  readonly name: string
  /** A TypeScript entry point, relative to `cwd`, run as `node --import tsx <script>`... */
  readonly script?: string
  /** ...or any program (the Python peer). */
  readonly command?: { readonly file: string; readonly args: ReadonlyArray<string> }
  readonly cwd: string
  readonly port: number
  /** The child's whole environment: nothing is inherited, so no exporter endpoint or database URL leaks in. */
  readonly env: Readonly<Record<string, string>>
  /** Receives the child's stdout and stderr. */
  readonly logFile: string
  /** Options for node itself, before the script (e.g. `--cpu-prof`, which NODE_OPTIONS refuses). */
  readonly nodeArgs?: ReadonlyArray<string>
}

export const startServerProcess = (options: ServerProcessOptions): ServerProcess => {
  const log = openSync(options.logFile, "a")
  const [file, args] =
    options.command !== undefined
      ? [options.command.file, options.command.args]
      : [process.execPath, [...(options.nodeArgs ?? []), "--import", "tsx", options.script ?? "src/main.ts"]]
  const child = spawn(file, args, {
    cwd: options.cwd,
    env: options.env,
    stdio: ["ignore", log, log]
  })
  // The child holds its own copy of the descriptor.
  closeSync(log)

  let exit: ProcessExit | undefined
  const exited = new Promise<ProcessExit>((resolve) => {
    const settle = (code: number | null, signal: NodeJS.Signals | null) => {
      exit ??= { code, signal }
      resolve(exit)
    }
    child.once("exit", settle)
    // A process that could not be spawned emits "error" and never "exit".
    child.once("error", () => settle(null, null))
  })

  return {
    name: options.name,
    baseUrl: `http://127.0.0.1:${options.port}`,
    logFile: options.logFile,
    exited,
    hasExited: () => exit !== undefined,
    kill: (signal) => {
      if (exit === undefined) child.kill(signal)
    },
    cpuTimeMs: () => (child.pid === undefined ? undefined : processTreeCpuTimeMs(child.pid))
  }
}

// /proc/<pid>/stat counts CPU time in clock ticks, 100 a second on Linux (USER_HZ).
const msPerTick = 10

/** Parent pid and utime + stime (fields 4, 14 and 15, counted after the parenthesised command name). */
const procStat = (pid: number): { readonly parent: number; readonly ticks: number } | undefined => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    const ticks = Number(fields[11]) + Number(fields[12])
    return Number.isFinite(ticks) ? { parent: Number(fields[1]), ticks } : undefined
  } catch {
    return undefined
  }
}

/**
 * CPU time of a Linux process and every live descendant (a cluster's or uvicorn's workers). A
 * descendant that exits between two samples takes its time with it: the servers measured keep
 * their workers for the whole run.
 */
const processTreeCpuTimeMs = (root: number): number | undefined => {
  const rootStat = procStat(root)
  if (rootStat === undefined) return undefined
  const children = new Map<number, Array<number>>()
  const stats = new Map<number, number>([[root, rootStat.ticks]])
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    const pid = Number(entry)
    const stat = pid === root ? undefined : procStat(pid)
    if (stat === undefined) continue
    stats.set(pid, stat.ticks)
    children.set(stat.parent, [...(children.get(stat.parent) ?? []), pid])
  }
  let ticks = 0
  const pending = [root]
  for (let pid = pending.pop(); pid !== undefined; pid = pending.pop()) {
    ticks += stats.get(pid) ?? 0
    pending.push(...(children.get(pid) ?? []))
  }
  return ticks * msPerTick
}

/** The last lines the process wrote, to explain a failure. */
export const logTail = (server: ServerProcess, lines = 20): string => {
  try {
    return readFileSync(server.logFile, "utf8").trimEnd().split("\n").slice(-lines).join("\n")
  } catch {
    return "(no log)"
  }
}

/** Polls GET `path` until it answers 2xx; fails early if the process exits first. */
export const waitUntilAnswering = async (server: ServerProcess, path: string, timeoutMs: number): Promise<void> => {
  const deadline = performance.now() + timeoutMs
  while (performance.now() < deadline) {
    if (server.hasExited()) {
      const { code, signal } = await server.exited
      throw new Error(`${server.name} exited (code ${code}, signal ${signal}) before answering:\n${logTail(server)}`)
    }
    try {
      const response = await fetch(server.baseUrl + path, { signal: AbortSignal.timeout(1_000) })
      // Read the body so the connection goes back to the pool.
      await response.arrayBuffer()
      if (response.ok) return
    } catch {
      // Not listening yet.
    }
    await sleep(200)
  }
  throw new Error(`${server.name} did not answer ${path} within ${timeoutMs} ms:\n${logTail(server)}`)
}

export interface StopOutcome extends ProcessExit {
  /** True when the process ignored SIGTERM for the whole grace period and was killed. */
  readonly forced: boolean
}

/** SIGTERM, then SIGKILL if the process is still running after `graceMs`. */
export const stopServerProcess = async (server: ServerProcess, graceMs: number): Promise<StopOutcome> => {
  server.kill("SIGTERM")
  const timedOut = Symbol("timed out")
  const first = await Promise.race([server.exited, sleep(graceMs, timedOut, { ref: false })])
  if (first !== timedOut) return { ...first, forced: false }
  server.kill("SIGKILL")
  return { ...(await server.exited), forced: true }
}

/** A JSON request to Basalt at `baseUrl`, as a benchmark makes it: anything but 2xx throws, with what Basalt said. */
export const request = async (baseUrl: string, path: string, init: { method?: string; body?: unknown; token?: string } = {}) => {
  const response = await fetch(baseUrl + path, {
    method: init.method ?? "GET",
    headers: {
      ...(init.body !== undefined ? { "content-type": "application/json" } : {}),
      ...(init.token ? { authorization: `Bearer ${init.token}` } : {})
    },
    ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {})
  })
  const text = await response.text()
  if (!response.ok) throw new Error(`${init.method ?? "GET"} ${path} answered ${response.status}: ${text.slice(0, 500)}`)
  return { status: response.status, headers: response.headers, body: JSON.parse(text) as Record<string, any> }
}
