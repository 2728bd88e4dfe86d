/**
 * Starting the server as a process: one process per embedded data directory, start-up failures
 * as one line on stderr (port in use, a data directory that does not open, a database that cannot
 * be used), configuration as documented (`.env`, the listening line at any log level), and the
 * embedded database on a full disk.
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Redacted } from "effect"
import { execFileSync } from "node:child_process"
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statfsSync, writeFileSync } from "node:fs"
import { createServer, type Server } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { receive } from "./support/server.ts"
import {
  exitWithin,
  logEntries,
  processTimeout,
  repoRoot,
  type ServerProcess,
  startProcess,
  waitUntilHealthy
} from "./support/serverProcess.ts"

const scratch = mkdtempSync(join(tmpdir(), "basalt-startup-"))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

/** The embedded database whatever the run: `DATABASE_URL=` counts as unset. */
const embedded = { DATABASE_URL: "" }

const lockHolder = (dataDir: string) => JSON.parse(readFileSync(join(dataDir, "basalt.lock"), "utf8")).pid as number

/** Expects the process to exit at once with code 1 and exactly one line on stderr. */
const refusedWith = async (server: ServerProcess, line: RegExp) => {
  const exit = await exitWithin(server, 60_000, "a start that must fail")
  expect(exit.code).toBe(1)
  expect(server.stderr()).toMatch(new RegExp(`^basalt: ${line.source}\\n$`))
  // Nothing else: no stack trace, no fatal log line.
  expect(server.stdoutLines().filter((line) => line.includes('"level":"fatal"'))).toEqual([])
}

describe("one process per data directory", () => {
  const dataDir = join(scratch, "shared")
  let first: ServerProcess

  it("a server started with LOG_LEVEL=warn and PORT=0 still says where it listens", { timeout: processTimeout }, async () => {
    first = await startProcess({ ...embedded, BASALT_DATA_DIR: dataDir, LOG_LEVEL: "warn" })
    await waitUntilHealthy(first)
    const listening = logEntries(first).filter((entry) => String(entry["message"]).startsWith("Basalt listening on"))
    expect(listening).toHaveLength(1)
    expect(listening[0]!["message"]).toContain(`http://127.0.0.1:${first.port}/docs`)
    // The only line below warn.
    expect(logEntries(first).filter((entry) => entry["level"] === "info")).toHaveLength(1)
  })

  it("a second server on the same data directory exits at once with one line naming it and the holder", {
    timeout: processTimeout
  }, async () => {
    const second = await startProcess({ ...embedded, BASALT_DATA_DIR: dataDir })
    await refusedWith(
      second,
      new RegExp(
        `the data directory ${literally(dataDir)} is in use by process ${first.child.pid}: stop that one, or set BASALT_DATA_DIR to another directory`
      )
    )
    // The first one is untouched.
    expect((await receive("GET", "/ready", await fetch(`${first.url}/ready`))).status).toBe(200)
    expect(lockHolder(dataDir)).toBe(first.child.pid)
  })

  it("the lock of a server that was killed is taken over by the next one", { timeout: processTimeout }, async () => {
    first.child.kill("SIGKILL")
    await exitWithin(first, 10_000, "SIGKILL")
    expect(lockHolder(dataDir)).toBe(first.child.pid)
    const next = await startProcess({ ...embedded, BASALT_DATA_DIR: dataDir })
    await waitUntilHealthy(next)
    expect(lockHolder(dataDir)).toBe(next.child.pid)
    next.child.kill("SIGTERM")
    expect(await exitWithin(next, 30_000, "SIGTERM")).toEqual({ code: 0, signal: null })
    // A clean stop leaves no lock behind.
    expect(existsSync(join(dataDir, "basalt.lock"))).toBe(false)
  })
})

describe("start-up failures are one line", () => {
  it("a port in use: nothing else is started, no database opened", { timeout: processTimeout }, async () => {
    const taken: Server = createServer()
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve))
    const port = (taken.address() as { port: number }).port
    const dataDir = join(scratch, "never-opened")
    try {
      // On a Postgres run, a database that does not exist: the port must fail first.
      const database = process.env.DATABASE_URL ? { DATABASE_URL: databaseNamed("basalt_port_first_never_created") } : embedded
      const server = await startProcess({ ...database, PORT: String(port), BASALT_DATA_DIR: dataDir })
      await refusedWith(
        server,
        new RegExp(
          `cannot listen on 127\\.0\\.0\\.1:${port}: the port is in use by another process \\(set PORT to another one, or 0 for any free port\\)`
        )
      )
      expect(existsSync(dataDir)).toBe(false)
    } finally {
      taken.close()
    }
  })

  it.skipIf(!process.env.DATABASE_URL)("an unknown database in DATABASE_URL", { timeout: processTimeout }, async () => {
    const server = await startProcess({ DATABASE_URL: databaseNamed("basalt_no_such_database") })
    await refusedWith(server, /cannot use the database of DATABASE_URL: database "basalt_no_such_database" does not exist/)
  })

  it("a file where the data directory should be", { timeout: processTimeout }, async () => {
    const dataDir = join(scratch, "a-file")
    writeFileSync(dataDir, "not a directory")
    const server = await startProcess({ ...embedded, BASALT_DATA_DIR: dataDir })
    await refusedWith(server, new RegExp(`cannot open the data directory ${literally(dataDir)}: it is not a directory`))
  })

  it("a data directory on a read-only file system (or, without root, one this user may not write)", {
    timeout: processTimeout
  }, async (context) => {
    const dataDir = join(scratch, "read-only")
    mkdirSync(dataDir)
    const mountProblem = tryMount(dataDir, "ro,size=1m")
    // Root writes through permissions: only a read-only mount refuses it.
    if (mountProblem !== undefined && process.getuid?.() === 0) {
      return context.skip(`root needs a read-only mount, and none could be made: ${mountProblem}`)
    }
    if (mountProblem !== undefined) chmodSync(dataDir, 0o555)
    try {
      const server = await startProcess({ ...embedded, BASALT_DATA_DIR: dataDir })
      const reason = mountProblem === undefined ? "it is on a read-only file system" : "permission denied"
      await refusedWith(server, new RegExp(`cannot open the data directory ${literally(dataDir)}: ${reason}`))
    } finally {
      if (mountProblem === undefined) execFileSync("umount", [dataDir])
      else chmodSync(dataDir, 0o755)
    }
  })

  it("a damaged data directory: the line says what Postgres found", { timeout: processTimeout }, async () => {
    const dataDir = join(scratch, "damaged")
    mkdirSync(join(dataDir, "pglite"), { recursive: true })
    writeFileSync(join(dataDir, "pglite", "PG_VERSION"), "garbage\n")
    const server = await startProcess({ ...embedded, BASALT_DATA_DIR: dataDir })
    await refusedWith(
      server,
      new RegExp(
        `cannot open the data directory ${literally(dataDir)}: PGlite failed to initialize properly \\(postgres: could not access the server configuration file "${literally(dataDir)}/pglite/postgresql.conf": No such file or directory\\)`
      )
    )
  })
})

describe("configuration as documented", () => {
  it("`npm run start:env` starts with .env.example copied to .env, as it is", { timeout: processTimeout }, async () => {
    const dataDir = join(scratch, "from-dotenv")
    const envFile = join(scratch, ".env")
    const example = readFileSync(join(repoRoot, ".env.example"), "utf8")
    // Only what a test needs: any port, loopback, a directory of its own; the rest as shipped.
    writeFileSync(
      envFile,
      example
        .replace(/^PORT=.*$/m, "PORT=0")
        .replace(/^HOST=.*$/m, "HOST=127.0.0.1")
        .replace(/^BASALT_DATA_DIR=.*$/m, `BASALT_DATA_DIR=${dataDir}`)
    )
    const script = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")).scripts["start:env"] as string
    const [command, ...nodeArguments] = script.split(" ")
    expect(command).toBe("node")
    expect(nodeArguments).toContain("--env-file=.env")
    // The script's command, reading this test's file; the environment sets nothing the file does
    // (a variable set there, even empty, wins over the file).
    const server = await startProcess(
      { PORT: undefined, HOST: undefined, BASALT_DATA_DIR: undefined, DATABASE_URL: undefined },
      nodeArguments.map((argument) => (argument === "--env-file=.env" ? `--env-file=${envFile}` : argument))
    )
    try {
      await waitUntilHealthy(server)
      // The file's directory, not the default ./data.
      expect(lockHolder(dataDir)).toBe(server.child.pid)
      server.child.kill("SIGTERM")
      expect(await exitWithin(server, 30_000, "SIGTERM")).toEqual({ code: 0, signal: null })
    } finally {
      server.child.kill("SIGKILL")
    }
  })
})

describe("the embedded database on a full disk", () => {
  it("answers 503 with the reason and Retry-After, logs it once, recovers when space is freed, and stops on SIGTERM", {
    timeout: 4 * processTimeout
  }, async (context) => {
    const disk = join(scratch, "small-disk")
    mkdirSync(disk)
    const mountProblem = tryMount(disk, "size=128m")
    if (mountProblem !== undefined) return context.skip(`a small file system is needed and none could be mounted: ${mountProblem}`)
    const filler = join(disk, "filler")
    // Debug: the line that names PGlite's own port, through which the test fills the WAL.
    const server = await startProcess({ ...embedded, BASALT_DATA_DIR: join(disk, "data"), LOG_LEVEL: "debug" })
    try {
      await waitUntilHealthy(server)
      const pglitePort = Number(
        /PGlite served on 127\.0\.0\.1:(\d+)/.exec(server.stdoutLines().find((line) => line.includes("PGlite served on")) ?? "")?.[1]
      )
      const token = await firstAdmin(server)
      const createDocument = async () => {
        const response = await fetch(`${server.url}/api/v1/documents`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: JSON.stringify({ title: "Full disk", content: "Written while the disk fills up.", source: "test" }),
          signal: AbortSignal.timeout(20_000)
        })
        return receive("POST", "/api/v1/documents", response)
      }
      expect((await createDocument()).status).toBe(202)

      /** Fills the disk, then has PGlite write WAL until it cannot (PANIC: could not write to file "pg_wal/…"). */
      const exhaust = () =>
        walUntilFailure(pglitePort, () => {
          const { bavail, bsize } = statfsSync(disk)
          try {
            writeFileSync(filler, Buffer.alloc(bavail * bsize))
          } catch {
            // Full: what matters.
          }
        })
      await exhaust()

      // Every request that needs the database is answered, 503 with the reason, within a bound.
      const answers = await Promise.all([createDocument(), createDocument()])
      for (const answer of answers) {
        expect(answer.status).toBe(503)
        expect(Number(answer.headers.get("retry-after"))).toBeGreaterThan(0)
      }
      const refused = await until(createDocument, (answer) => /disk space/.test(answer.json().message), 30_000)
      expect(refused.status).toBe(503)
      expect(refused.json().message).toMatch(/out of disk space/)
      expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0)

      // Logged once, with the cause.
      const failures = logEntries(server).filter((entry) => String(entry["message"]).startsWith("the embedded database failed"))
      expect(failures).toHaveLength(1)
      expect(failures[0]).toMatchObject({ level: "error" })
      expect(failures[0]!["message"]).toMatch(/on a full disk .*PANIC: could not write to file/)

      // Space comes back: so does the database, without a restart of the server.
      rmSync(filler)
      await server.waitFor(
        () => logEntries(server).some((entry) => entry["message"] === "the embedded database is back"),
        "that the embedded database is back",
        60_000
      )
      expect((await until(createDocument, (answer) => answer.status !== 503, 30_000)).status).toBe(202)

      // Full again, and stuck again: SIGTERM still stops it.
      await exhaust()
      server.child.kill("SIGTERM")
      expect(await exitWithin(server, 60_000, "SIGTERM on a full disk")).toEqual({ code: 0, signal: null })
    } finally {
      server.child.kill("SIGKILL")
      await server.exited
      execFileSync("umount", ["--lazy", disk])
    }
  })
})

const literally = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")

/** Polls `attempt` until `done` holds or `boundMs` has passed; the last answer. */
const until = async <A>(attempt: () => Promise<A>, done: (answer: A) => boolean, boundMs: number): Promise<A> => {
  const deadline = Date.now() + boundMs
  let answer = await attempt()
  while (!done(answer) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 250))
    answer = await attempt()
  }
  return answer
}

/** DATABASE_URL with another database name. */
const databaseNamed = (name: string) => {
  const url = new URL(process.env.DATABASE_URL!)
  url.pathname = `/${name}`
  return url.toString()
}

/** Mounts a tmpfs with `options` on `dir`; the reason when it cannot (not root, no mount). */
const tryMount = (dir: string, options: string): string | undefined => {
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", options, "tmpfs", dir], { stdio: "pipe" })
    return undefined
  } catch (error) {
    return String((error as { stderr?: Buffer }).stderr ?? error).trim() || "mount failed"
  }
}

/** Registers the first account (an admin) and signs it in: its access token. */
const firstAdmin = async (server: ServerProcess) => {
  const credentials = { email: "admin@example.com", password: "correct horse battery" }
  const post = async (path: string, body: unknown) =>
    receive(
      "POST",
      path,
      await fetch(`${server.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })
    )
  expect((await post("/api/v1/auth/register", { ...credentials, display_name: "Admin" })).status).toBe(201)
  return (await post("/api/v1/auth/login", credentials)).json().access_token as string
}

/**
 * Creates a one-row table through PGlite's own port, calls `fill` (the disk), then updates the row
 * again and again, committing each time: WAL grows while the table does not, so the first write
 * to fail is a new WAL segment's.
 */
const walUntilFailure = (port: number, fill: () => void) =>
  Effect.runPromise(
    Effect.gen(function* () {
      const sql = yield* PgClient.PgClient
      yield* sql`CREATE TABLE IF NOT EXISTS wal_filler (id int PRIMARY KEY, filler text)`
      yield* sql`INSERT INTO wal_filler VALUES (1, '') ON CONFLICT DO NOTHING`
      fill()
      return yield* sql
        .unsafe(
          "DO $$ BEGIN FOR i IN 1..1000000 LOOP UPDATE wal_filler SET filler = repeat(md5(i::text), 60) WHERE id = 1; COMMIT; END LOOP; END $$"
        )
        .pipe(Effect.timeout("60 seconds"), Effect.flip)
    }).pipe(
      Effect.provide(
        PgClient.layer({ url: Redacted.make(`postgres://postgres@127.0.0.1:${port}/postgres`), maxConnections: 1, prepare: false })
      )
    )
  )
