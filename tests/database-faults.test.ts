/**
 * Database faults, on a PostgreSQL server of this test's own (never the run's shared one): a
 * restart and a stop under load answer 503 with Retry-After (never 500), log the outage once and
 * lose nothing acknowledged; a frozen server (SIGSTOP) holds no request past the configured
 * bounds, nor /ready past its 2 s; a server started while Postgres is down waits for it, live but
 * not ready, and past BASALT_DATABASE_WAIT exits with one line. Runs the same on both CI passes:
 * it never uses DATABASE_URL.
 */
import { existsSync } from "node:fs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { latestMigrationId } from "../src/database/migrations/index.ts"
import { type Person, signUp } from "./support/people.ts"
import { freePort, postgresBinDir, type PostgresServer, startPostgresServer } from "./support/postgresServer.ts"
import { postgresQuery, receive, startServer, type TestResponse, type TestServer } from "./support/server.ts"
import { exitWithin, startProcess } from "./support/serverProcess.ts"

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** The bounds the server runs with here: short, so that a freeze of a few seconds outlasts them. */
const statementTimeoutMs = 1_500
const acquireTimeoutMs = 500
/**
 * The longest a request may wait on a frozen database: one connection and one statement, twice
 * (a request may join the rate limiter's batch after the one in flight, whose bounds run first).
 */
const longestWaitMs = 2 * (acquireTimeoutMs + statementTimeoutMs)
const freezeMs = 8_000

interface Tally {
  readonly statuses: Map<number, number>
  /** Ids of the documents the server answered 2xx for. */
  readonly acknowledged: Array<string>
  slowestMs: number
}

const count = (tally: Tally, predicate: (status: number) => boolean) =>
  [...tally.statuses].filter(([status]) => predicate(status)).reduce((sum, [, n]) => sum + n, 0)

describe.skipIf(!existsSync(`${postgresBinDir}/pg_ctl`))("database faults (a Postgres server of the test's own)", () => {
  let postgres: PostgresServer
  let server: TestServer
  let ada: Person
  const logs: Array<string> = []
  const write = process.stdout.write.bind(process.stdout)

  beforeAll(async () => {
    postgres = await startPostgresServer()
    process.stdout.write = ((chunk: string | Uint8Array, ...rest: Array<any>) => {
      logs.push(
        ...String(chunk)
          .split("\n")
          .filter((line) => line !== "")
      )
      return write(chunk, ...rest)
    }) as typeof process.stdout.write
    server = await startServer({
      DATABASE_URL: postgres.url,
      DATABASE_STATEMENT_TIMEOUT: `${statementTimeoutMs} millis`,
      DATABASE_ACQUIRE_TIMEOUT: `${acquireTimeoutMs} millis`,
      LOG_LEVEL: "Warning"
    })
    ada = await signUp(server, "ada")
  })
  afterAll(async () => {
    process.stdout.write = write
    await server?.stop()
    await postgres?.destroy()
  })

  const logEntries = () => logs.filter((line) => line.startsWith("{")).map((line) => JSON.parse(line) as Record<string, unknown>)
  const messages = (from: number) =>
    logs
      .slice(from)
      .filter((line) => line.startsWith("{"))
      .map((line) => String(JSON.parse(line).message))

  const expectUnavailable = (response: TestResponse) => {
    // The contract validator has checked the shape and the Retry-After header already.
    expect(response.json().error).toBe("service_unavailable")
    expect(Number(response.headers.get("retry-after"))).toBeGreaterThan(0)
  }

  /**
   * `clients` clients, each alternating an ingestion and a listing, while `fault` runs; every
   * answer goes through the contract validator (a 500 has no Retry-After and a 503 needs one).
   */
  const underLoad = async (fault: () => Promise<void>, clients = 6): Promise<Tally> => {
    const tally: Tally = { statuses: new Map(), acknowledged: [], slowestMs: 0 }
    let running = true
    let sent = 0
    const client = async () => {
      while (running) {
        const n = sent++
        const started = performance.now()
        const response =
          n % 2 === 0
            ? await server.request(
                "/api/v1/documents",
                ada.json("POST", { title: `Note ${n}`, content: `note number ${n}`, source: "faults", external_id: `note-${n}` })
              )
            : await ada.get("/api/v1/documents?limit=5")
        tally.slowestMs = Math.max(tally.slowestMs, performance.now() - started)
        tally.statuses.set(response.status, (tally.statuses.get(response.status) ?? 0) + 1)
        if (response.status === 503) expectUnavailable(response)
        if (n % 2 === 0 && response.status < 300) tally.acknowledged.push(response.json().id)
      }
    }
    const inFlight = Array.from({ length: clients }, client)
    try {
      await fault()
    } finally {
      running = false
      await Promise.all(inFlight)
    }
    return tally
  }

  const untilReady = async (boundMs = 30_000) => {
    const deadline = Date.now() + boundMs
    while ((await server.request("/ready")).status !== 200) {
      if (Date.now() > deadline) throw new Error(`not ready ${boundMs} ms after the fault:\n${postgres.log().slice(-2000)}`)
      await sleep(100)
    }
  }

  /** The outage's two lines: once when it began, once when it ended (waited for), nothing per request. */
  const expectOutageLoggedOnce = async (from: number) => {
    const deadline = Date.now() + 15_000
    while (!messages(from).includes("the database is available again") && Date.now() < deadline) await sleep(100)
    const lines = messages(from)
    expect(lines.filter((message) => message.startsWith("the database is unavailable:"))).toHaveLength(1)
    expect(lines.filter((message) => message === "the database is available again")).toHaveLength(1)
    expect(lines.filter((message) => message === "unhandled failure")).toEqual([])
  }

  const expectAllStored = async (ids: ReadonlyArray<string>) => {
    const missing: Array<string> = []
    for (const id of ids) {
      let answer = await ada.get(`/api/v1/documents/${id}`)
      // The short statement bound may meet a busy machine: a 503 is asked again, a 404 is a loss.
      for (let retry = 0; answer.status === 503 && retry < 5; retry++) answer = await ada.get(`/api/v1/documents/${id}`)
      if (answer.status !== 200) missing.push(`${id}: ${answer.status}`)
    }
    expect(missing).toEqual([])
  }

  it("a restart under load: 503 with Retry-After instead of 500, logged once, every acknowledged document stored", async () => {
    const from = logs.length
    const tally = await underLoad(async () => {
      await sleep(500)
      await postgres.restart("fast")
      await untilReady()
      await sleep(500)
    })
    console.info(`restart: ${JSON.stringify(Object.fromEntries(tally.statuses))}, slowest ${Math.round(tally.slowestMs)} ms`)
    expect(count(tally, (status) => status >= 500 && status !== 503)).toBe(0)
    expect(tally.acknowledged.length).toBeGreaterThan(0)
    await expectAllStored(tally.acknowledged)
    await expectOutageLoggedOnce(from)
  })

  it("Postgres stopped (a crash) for seconds: every request answers at once, 503 with Retry-After; /health 200, /ready 503", async () => {
    const from = logs.length
    let probes: { health: number; ready: TestResponse } | undefined
    const tally = await underLoad(async () => {
      await sleep(300)
      await postgres.stop("immediate")
      await sleep(3_000)
      probes = { health: (await server.request("/health")).status, ready: await server.request("/ready") }
      await postgres.start()
      await untilReady()
      await sleep(300)
    })
    console.info(`stop: ${JSON.stringify(Object.fromEntries(tally.statuses))}, slowest ${Math.round(tally.slowestMs)} ms`)
    expect(count(tally, (status) => status >= 500 && status !== 503)).toBe(0)
    expect(count(tally, (status) => status === 503)).toBeGreaterThan(0)
    // Refused connections fail fast: no request waits for the database to come back.
    expect(tally.slowestMs).toBeLessThan(statementTimeoutMs + acquireTimeoutMs)
    expect(probes?.health).toBe(200)
    expect(probes?.ready.status).toBe(503)
    expect(probes?.ready.json().details).toEqual([{ path: "database", message: expect.stringMatching(/^The database is unavailable: /) }])
    await expectAllStored(tally.acknowledged)
    await expectOutageLoggedOnce(from)
    // No stack trace from Basalt for any of it: the outage's lines name their reason only. (The
    // cluster library's lines, which carry a `module`, log its retries and the indexing entity's
    // restarts with their causes, as it sees fit; so do its shard-lock health lines, which carry none.)
    const libraryLine = (line: string) => line.includes('"module":') || /"message":"Shard lock storage is (still )?unhealthy"/.test(line)
    const ownLines = logs.slice(from).filter((line) => !libraryLine(line))
    expect(ownLines.filter((line) => line.includes("    at "))).toEqual([])
  })

  it("Postgres frozen (SIGSTOP): requests answer within the statement and acquire bounds, /ready within its 2 s", async () => {
    const from = logs.length
    const readyMs: Array<number> = []
    const tally = await underLoad(async () => {
      await sleep(300)
      postgres.freeze()
      const frozenAt = Date.now()
      try {
        for (let i = 0; i < 3; i++) {
          const started = performance.now()
          const ready = await server.request("/ready")
          readyMs.push(performance.now() - started)
          expect(ready.status).toBe(503)
        }
        await sleep(freezeMs - (Date.now() - frozenAt))
      } finally {
        postgres.thaw()
      }
      await untilReady()
      // More clients than the pool has connections (DATABASE_POOL_MAX, 10): some wait for one.
    }, 16)
    console.info(
      `freeze: ${JSON.stringify(Object.fromEntries(tally.statuses))}, slowest ${Math.round(tally.slowestMs)} ms, ` +
        `/ready ${readyMs.map(Math.round).join(", ")} ms`
    )
    expect(count(tally, (status) => status >= 500 && status !== 503)).toBe(0)
    expect(count(tally, (status) => status === 503)).toBeGreaterThan(0)
    for (const ms of readyMs) expect(ms).toBeLessThan(2_500)
    // A statement abandoned at its bound fails its request at once (a ROLLBACK included), well
    // before the freeze ends; with room for a busy machine.
    expect(tally.slowestMs).toBeLessThan(longestWaitMs + 1_500)
    expect(longestWaitMs + 1_500).toBeLessThan(freezeMs)
    await expectAllStored(tally.acknowledged)
    await expectOutageLoggedOnce(from)
  })

  it("a server started while Postgres is down waits for it, live but not ready, then migrates and serves", async () => {
    await postgresQuery(postgres.url, "CREATE DATABASE started_while_down")
    const databaseUrl = postgres.url.replace(/\/postgres$/, "/started_while_down")
    await postgres.stop("fast")
    // Chosen here: the server says where it listens only once it is ready.
    const port = await freePort()
    const url = `http://127.0.0.1:${port}`
    const child = await startProcess({ DATABASE_URL: databaseUrl, PORT: String(port), BASALT_DATABASE_WAIT: "60 seconds" })
    try {
      await child.waitFor((lines) => lines.some((line) => line.includes("the database is unavailable: it cannot be reached")), "the wait")
      const get = async (path: string) => receive("GET", path, await fetch(`${url}${path}`))
      expect((await get("/health")).status).toBe(200)
      const ready = await get("/ready")
      expect(ready.status).toBe(503)
      expect(ready.json().error).toBe("not_ready")
      expectUnavailable(await get("/api/v1/documents"))
      await postgres.start()
      const deadline = Date.now() + 60_000
      let answer = await get("/ready")
      while (answer.status !== 200 && Date.now() < deadline) {
        await sleep(200)
        answer = await get("/ready")
      }
      expect(answer.status).toBe(200)
      expect(answer.json().database.migration_version).toBe(latestMigrationId)
      expect(child.child.exitCode).toBe(null)
    } finally {
      child.child.kill("SIGTERM")
      await exitWithin(child, 30_000, "SIGTERM")
      if (!postgres.running()) await postgres.start()
    }
  })

  it("past BASALT_DATABASE_WAIT it exits 1 with one line, no stack trace", async () => {
    await postgres.stop("fast")
    try {
      const started = Date.now()
      const child = await startProcess({ DATABASE_URL: postgres.url, BASALT_DATABASE_WAIT: "2 seconds" })
      const exit = await exitWithin(child, 60_000, "waiting past BASALT_DATABASE_WAIT")
      expect(exit.code).toBe(1)
      expect(child.stderr()).toMatch(
        /^basalt: the database did not become available within 2 s: it cannot be reached \(connect ECONNREFUSED [^\n]*\)\n$/
      )
      expect(child.stdoutLines().filter((line) => line.includes("    at ") || line.includes('"level":"fatal"'))).toEqual([])
      // It waited, but not much longer than it was told to (the process's own start included).
      expect(Date.now() - started).toBeGreaterThan(2_000)
    } finally {
      await postgres.start()
    }
  })

  it("the server in process recovered from all of it", async () => {
    await untilReady()
    expect((await ada.get("/api/v1/documents?limit=1")).status).toBe(200)
    expect(logEntries().filter((entry) => entry["message"] === "unhandled failure")).toEqual([])
  })
})
