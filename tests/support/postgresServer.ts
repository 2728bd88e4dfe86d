/**
 * A PostgreSQL server of a test's own, to break on purpose: started from the machine's
 * PostgreSQL binaries on a free port with its data in a temporary directory, then stopped,
 * restarted, crashed or frozen (SIGSTOP) by the test. Never the shared server on port 5432.
 *
 * Postgres refuses to run as root, so as root (CI, containers) every command runs as the
 * `postgres` OS user, which owns the temporary directory. Every wait is bounded.
 */
import { execFile, execFileSync } from "node:child_process"
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"

/** `fast` ends sessions and checkpoints (a clean stop); `immediate` is a crash, recovered at start. */
export type StopMode = "fast" | "immediate"

export interface PostgresServer {
  readonly port: number
  /** The `postgres` database, as the `postgres` superuser (trust authentication). */
  readonly url: string
  readonly start: () => Promise<void>
  /** Whether the server runs (its postmaster.pid is there). */
  readonly running: () => boolean
  /** Stops the server, if it runs. */
  readonly stop: (mode?: StopMode) => Promise<void>
  /** Stops (`fast` by default) and starts again on the same port. */
  readonly restart: (mode?: StopMode) => Promise<void>
  /** SIGSTOPs the postmaster and every backend: connections stay open, nothing answers. */
  readonly freeze: () => void
  /** SIGCONTs what `freeze` stopped. */
  readonly thaw: () => void
  /** Stops the server however it is (frozen included) and removes its directory. */
  readonly destroy: () => Promise<void>
  /** The server's own log, for a failing test's message. */
  readonly log: () => string
}

/** Where the PostgreSQL programs are: BASALT_TEST_PG_BIN, else `pg_config --bindir`, else Debian's place for 15. */
export const postgresBinDir = (() => {
  const fromEnv = process.env["BASALT_TEST_PG_BIN"]
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv
  try {
    return execFileSync("pg_config", ["--bindir"], { encoding: "utf8", timeout: 5_000 }).trim()
  } catch {
    return "/usr/lib/postgresql/15/bin"
  }
})()

const asRoot = process.getuid?.() === 0

/** Runs a PostgreSQL program (as the `postgres` user when this process is root), bounded by `timeoutMs`. */
const run = (program: string, args: ReadonlyArray<string>, timeoutMs: number) =>
  new Promise<string>((resolve, reject) => {
    const [command, commandArgs] = asRoot
      ? ["runuser", ["-u", "postgres", "--", join(postgresBinDir, program), ...args]]
      : [join(postgresBinDir, program), [...args]]
    execFile(command, commandArgs, { timeout: timeoutMs, encoding: "utf8" }, (error, stdout, stderr) => {
      if (error === null) resolve(stdout)
      else reject(new Error(`${program} ${args.join(" ")} failed: ${error.message}\n${stdout}${stderr}`))
    })
  })

/** A loopback port that was free a moment ago. */
export const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const probe = createServer()
    probe.once("error", reject)
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address()
      probe.close(() => (typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port"))))
    })
  })

/** The postmaster and its children (the backends and auxiliary processes), postmaster first. */
const processTree = (postmaster: number): ReadonlyArray<number> => {
  const children: Array<number> = []
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      // pid (comm) state ppid ...: comm may hold spaces, so read after its closing parenthesis.
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8")
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
      if (ppid === postmaster) children.push(Number(entry))
    } catch {
      // The process ended while we looked.
    }
  }
  return [postmaster, ...children]
}

/** Initialises a cluster in a new temporary directory and starts it. */
export const startPostgresServer = async (): Promise<PostgresServer> => {
  const root = mkdtempSync(join(tmpdir(), "basalt-postgres-"))
  const dataDir = join(root, "data")
  const logFile = join(root, "postgres.log")
  if (asRoot) {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim())
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim())
    chownSync(root, uid, gid)
  }
  await run("initdb", ["-D", dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"], 60_000)
  const port = await freePort()
  // fsync off: a crash of the server process (immediate stop) still leaves its writes in the
  // operating system's cache, which is all these tests take away from it.
  const options = [
    `-p ${port}`,
    "-c listen_addresses=127.0.0.1",
    `-c unix_socket_directories=${root}`,
    "-c fsync=off",
    "-c full_page_writes=off",
    "-c max_connections=50",
    "-c shared_buffers=16MB"
  ].join(" ")

  let frozen: ReadonlyArray<number> = []
  const postmasterPid = () => {
    const file = join(dataDir, "postmaster.pid")
    return existsSync(file) ? Number(readFileSync(file, "utf8").split("\n")[0]) : undefined
  }
  const start = async () => {
    await run("pg_ctl", ["-D", dataDir, "-l", logFile, "-o", options, "-w", "-t", "30", "start"], 40_000)
  }
  const stop = async (mode: StopMode = "fast") => {
    if (postmasterPid() === undefined) return
    await run("pg_ctl", ["-D", dataDir, "-m", mode, "-w", "-t", "30", "stop"], 40_000)
  }
  const thaw = () => {
    for (const pid of [...frozen].reverse()) {
      try {
        process.kill(pid, "SIGCONT")
      } catch {
        // Already gone.
      }
    }
    frozen = []
  }
  const freeze = () => {
    const pid = postmasterPid()
    if (pid === undefined) throw new Error("Postgres is not running")
    // The postmaster first, so that it forks no backend that would escape the freeze.
    process.kill(pid, "SIGSTOP")
    frozen = processTree(pid)
    for (const child of frozen.slice(1)) process.kill(child, "SIGSTOP")
  }
  // A test process that ends without `destroy` (killed at a timeout) must not leave a server behind.
  const onExit = () => {
    thaw()
    const pid = postmasterPid()
    try {
      // Postgres's immediate shutdown.
      if (pid !== undefined) process.kill(pid, "SIGQUIT")
    } catch {
      // Already gone.
    }
  }
  const destroy = async () => {
    process.off("exit", onExit)
    thaw()
    const pid = postmasterPid()
    if (pid !== undefined) {
      await stop("immediate").catch(() => {
        try {
          process.kill(pid, "SIGKILL")
        } catch {
          // Already gone.
        }
      })
    }
    rmSync(root, { recursive: true, force: true })
  }
  process.once("exit", onExit)
  try {
    await start()
  } catch (error) {
    process.off("exit", onExit)
    rmSync(root, { recursive: true, force: true })
    throw error
  }
  return {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    start,
    running: () => postmasterPid() !== undefined,
    stop,
    restart: async (mode = "fast") => {
      await stop(mode)
      await start()
    },
    freeze,
    thaw,
    destroy,
    log: () => (existsSync(logFile) ? readFileSync(logFile, "utf8") : "")
  }
}
