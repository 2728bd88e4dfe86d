/**
 * Ingestion and background indexing throughput: BENCH_DOCS (10,000) generated documents of
 * about 2 KB (headings, paragraphs, a Zipf-like vocabulary; the same ones every run) go through
 * POST /api/v1/documents/batch, 100 per call, a few calls at once, into a fresh Basalt started
 * as a child process. Timed from the first 202 to the last document's `status_changed_at` to
 * `indexed` (the database's clock, on this machine), once GET /api/v1/documents/progress
 * (polled twice a second: polling is work for the server too) counts them all; reported as docs/s and chunks/s, next to a baseline measured in the same run:
 * how fast the API alone accepts them (first 202 to last 207). On a shared machine the ratio moves
 * less than either figure.
 *
 *   npm run bench:ingest                                   # PGlite, built-in embedder
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm run bench:ingest
 *   BENCH_EMBEDDER=fake npm run bench:ingest               # fake provider, 20 ms per request
 *   BENCH_PROCESSES=1,2,3 DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm run bench:ingest
 *
 * Settings (environment):
 *   BENCH_DOCS          documents (10000)
 *   BENCH_PARALLEL      batch requests in flight (4)
 *   BENCH_EMBEDDER      local (the built-in model) or fake (an OpenAI-compatible server in this
 *                       process answering every request after BENCH_FAKE_DELAY_MS)
 *   BENCH_FAKE_DELAY_MS the fake provider's fixed time per request (20)
 *   BENCH_HOLD_PROVIDER 1: the fake answers nothing until every document is accepted, and indexing
 *                       is also timed from that moment: the pipeline and the provider with a full
 *                       backlog, ingestion out of the way (where ingestion is slower than the
 *                       provider's ceiling, the end-to-end figure measures ingestion instead)
 *   BENCH_BATCH_SIZE, BENCH_CONCURRENCY  the provider's BASALT_EMBEDDINGS_BATCH_SIZE and
 *                       BASALT_EMBEDDINGS_CONCURRENCY (Basalt's defaults: 64 and 4)
 *   BENCH_INDEXING_CONCURRENCY  BASALT_INDEXING_CONCURRENCY (Basalt's default when unset)
 *   BENCH_PGLITE_PROCESS=1  PGlite served from a process of its own (bench/PgliteProcess.ts)
 *                       instead of Basalt's worker thread: pgvector as on PGlite, the database's
 *                       CPU outside Basalt's process as with a Postgres server
 *   BENCH_NODE_ARGS     node options for Basalt, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" to profile it
 *   DATABASE_URL        a Postgres server: the bench creates a fresh database on it and drops it after
 *   BENCH_PROCESSES     Basalt processes on that one database (unset: one, reported as before), each
 *                       on its own port, the batch requests spread over them round-robin as a load
 *                       balancer would; above 1 it needs DATABASE_URL. Once all answer /ready it waits
 *                       for the shards to settle (their split, from /ready, is printed), then measures
 *                       5 s of idle CPU (the cluster's upkeep, ms per second). Reports CPU time per
 *                       document split between the Basalt processes (the sum of their /proc utime +
 *                       stime, descendants included) and the Postgres server (bench/DatabaseCpu.ts),
 *                       with the share of each. Several counts (1,2,3) run in turn, a fresh database
 *                       each, and end with a table of each count against the first: docs/s and CPU
 *                       per document
 *
 * With the fake provider it also reports the most its batch size and concurrency allow:
 * batch size × concurrency texts per delay, in docs/s at the measured chunks per document.
 *
 * Exits 1 if a document failed or a request was refused, 2 if Basalt could not be started or
 * indexing did not finish in time. On SIGINT, SIGTERM or SIGHUP it stops the Basalt processes and
 * drops the database before exiting.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { availableParallelism, loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { setTimeout as sleep } from "node:timers/promises"
import { startFakeEmbeddingsServer } from "../tests/support/fakeEmbeddingsServer.ts"
import { serverCpu } from "./DatabaseCpu.ts"
import { postgresStatements } from "./Postgres.ts"
import { positiveInt } from "./Settings.ts"
import { makeTeardown } from "./Teardown.ts"
import {
  freePort,
  logTail,
  request,
  type ServerProcess,
  startServerProcess,
  stopServerProcess,
  waitUntilAnswering
} from "./ServerProcess.ts"

const embedderMode = process.env["BENCH_EMBEDDER"]?.trim() || "local"
if (embedderMode !== "local" && embedderMode !== "fake") {
  process.stderr.write(`bench: BENCH_EMBEDDER must be local or fake, got "${embedderMode}"\n`)
  process.exit(2)
}

const settings = {
  docs: positiveInt("BENCH_DOCS", 10_000),
  parallel: positiveInt("BENCH_PARALLEL", 4),
  fakeDelayMs: positiveInt("BENCH_FAKE_DELAY_MS", 20),
  batchSize: positiveInt("BENCH_BATCH_SIZE", 64),
  concurrency: positiveInt("BENCH_CONCURRENCY", 4),
  indexingConcurrency: process.env["BENCH_INDEXING_CONCURRENCY"]?.trim() || undefined,
  holdProvider: process.env["BENCH_HOLD_PROVIDER"]?.trim() === "1"
}
const databaseUrl = process.env["DATABASE_URL"]?.trim() || undefined
const pgliteProcess = process.env["BENCH_PGLITE_PROCESS"] === "1"
if (pgliteProcess && databaseUrl !== undefined) {
  process.stderr.write("bench: BENCH_PGLITE_PROCESS and DATABASE_URL exclude each other\n")
  process.exit(2)
}

/** BENCH_PROCESSES: one count, or several to run in turn (a sweep); undefined when unset. */
const processCounts = (() => {
  const text = process.env["BENCH_PROCESSES"]?.trim()
  if (text === undefined || text === "") return undefined
  const counts = text.split(",").map((count) => Number(count.trim()))
  if (counts.some((count) => !Number.isInteger(count) || count < 1 || count > 8)) {
    process.stderr.write(`bench: BENCH_PROCESSES must be a count from 1 to 8, or several separated by commas (1,2,3), got "${text}"\n`)
    process.exit(2)
  }
  if (counts.some((count) => count > 1) && databaseUrl === undefined) {
    process.stderr.write("bench: BENCH_PROCESSES above 1 needs DATABASE_URL (a Postgres server: PGlite serves a single process)\n")
    process.exit(2)
  }
  return counts
})()

const repoRoot = fileURLToPath(new URL("..", import.meta.url))
const perBatch = 100
const startupTimeoutMs = 120_000
const shardSettleTimeoutMs = 60_000
const indexingTimeoutMs = 30 * 60_000

// --- Documents -------------------------------------------------------------------------------

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
const random = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const syllables = [
  "ka",
  "lo",
  "mi",
  "ren",
  "sto",
  "val",
  "der",
  "qui",
  "na",
  "tor",
  "bel",
  "fi",
  "gar",
  "hu",
  "jen",
  "port",
  "sel",
  "tra",
  "um",
  "vex"
]
const common = [
  "the",
  "of",
  "and",
  "to",
  "in",
  "a",
  "is",
  "that",
  "for",
  "it",
  "as",
  "with",
  "on",
  "by",
  "this",
  "are",
  "be",
  "from",
  "or",
  "at"
]

const vocabulary = (() => {
  const next = random(1)
  const words = new Set<string>()
  while (words.size < 8_000) {
    const length = 2 + Math.floor(next() * 3)
    words.add(Array.from({ length }, () => syllables[Math.floor(next() * syllables.length)]).join(""))
  }
  return [...words]
})()

/** Zipf-like: a few words often, most words rarely, as in prose. */
const word = (next: () => number) =>
  next() < 0.35 ? common[Math.floor(next() * common.length)]! : vocabulary[Math.floor(vocabulary.length * next() ** 2.5)]!

const sentence = (next: () => number) => {
  const words = Array.from({ length: 8 + Math.floor(next() * 14) }, () => word(next))
  return `${words[0]![0]!.toUpperCase()}${words.join(" ").slice(1)}.`
}

/** About 2 KB: a title, two or three headed sections of paragraphs. */
const makeDocument = (n: number) => {
  const next = random(1_000 + n)
  const title = Array.from({ length: 3 + Math.floor(next() * 4) }, () => word(next)).join(" ")
  let content = ""
  while (content.length < 1_900) {
    content += `## ${Array.from({ length: 2 + Math.floor(next() * 3) }, () => word(next)).join(" ")}\n\n`
    for (let p = 0; p < 1 + Math.floor(next() * 3) && content.length < 2_100; p++) {
      content += `${Array.from({ length: 2 + Math.floor(next() * 4) }, () => sentence(next)).join(" ")}\n\n`
    }
  }
  return { title: `${title} ${n}`, content: content.trimEnd(), source: "api", external_id: `bench-${n}`, tags: [`t${n % 20}`] }
}

// --- Basalt ----------------------------------------------------------------------------------

const freshDatabase = async (suffix: string): Promise<{ name: string; url: string; drop: () => Promise<void> } | undefined> => {
  if (databaseUrl === undefined) return undefined
  const name = `basalt_bench_ingest_${process.pid}${suffix}`
  await postgresStatements(databaseUrl, `CREATE DATABASE ${name}`)
  const url = new URL(databaseUrl)
  url.pathname = `/${name}`
  return {
    name,
    url: url.toString(),
    drop: async () => {
      await postgresStatements(databaseUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    }
  }
}

const percentileOf = (sorted: ReadonlyArray<number>, p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!

/**
 * Texts per second that `concurrency` loops of bare `fetch` calls, `batchSize` texts each, get from
 * the fake provider in this process: the most this machine reaches at that moment without Basalt
 * (a loaded machine runs a 20 ms timer and the HTTP round trip late).
 */
const bareClientRate = async (baseUrl: string, batchSize: number, concurrency: number, durationMs: number) => {
  const input = Array.from({ length: batchSize }, (_, i) => `bare client text ${i}`)
  const started = performance.now()
  let texts = 0
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() - started < durationMs) {
        const response = await fetch(`${baseUrl}/embeddings`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model: "bench-fake", input })
        })
        await response.arrayBuffer()
        texts += batchSize
      }
    })
  )
  return texts / ((performance.now() - started) / 1000)
}

/** bench/PgliteProcess.ts as a child process; resolves with its port once it listens. */
const startPgliteProcess = (dataDir: string) =>
  new Promise<{ readonly url: string; readonly stop: () => void }>((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", "bench/PgliteProcess.ts", dataDir], {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "inherit"]
    })
    child.once("exit", (code) => reject(new Error(`the PGlite process exited with ${code}`)))
    child.stdout.setEncoding("utf8").on("data", (text: string) => {
      const port = /port (\d+)/.exec(text)?.[1]
      if (port !== undefined) resolve({ url: `postgres://postgres@127.0.0.1:${port}/postgres`, stop: () => child.kill("SIGTERM") })
    })
  })

// --- Cleaning up ---------------------------------------------------------------------------

const teardown = makeTeardown("bench:ingest")
const { liveServers, liveDirectories, undoAll } = teardown

/**
 * Waits until the shards are spread over the processes: each counts all of them as runners, the
 * shards they hold add up to 300, each holds some, and the split is the same two polls running.
 * A process that has just joined takes its share over a few seconds after answering /ready; the
 * run measures the cluster in its steady state, not that hand-over.
 */
const settledShards = async (servers: ReadonlyArray<ServerProcess>) => {
  const started = performance.now()
  let previous = ""
  let held: Array<number> = []
  while (performance.now() - started < shardSettleTimeoutMs) {
    const states = await Promise.all(
      servers.map(
        async (server) => (await request(server.baseUrl, "/ready")).body["cluster"] as { shards: number; runners: number } | undefined
      )
    )
    // A Basalt without the cluster's readiness fields: nothing to wait for.
    if (states.some((state) => state === undefined)) return undefined
    held = states.map((state) => state!.shards)
    const current = held.join(" / ")
    const spread =
      states.every((state) => state!.runners === servers.length) &&
      held.reduce((sum, shards) => sum + shards, 0) === 300 &&
      held.every((shards) => shards > 0)
    if (spread && current === previous) return { held, settled: true, seconds: (performance.now() - started) / 1000 }
    previous = spread ? current : ""
    await sleep(1_000)
  }
  return { held, settled: false, seconds: (performance.now() - started) / 1000 }
}

const idleWindowMs = 5_000

/** CPU ms per second of the Basalt processes and of Postgres while nothing is asked of them. */
const idleCpu = async (basaltCpu: () => number | undefined, databaseCpu: () => Promise<number | undefined>) => {
  const basaltBefore = basaltCpu()
  const databaseBefore = await databaseCpu()
  const started = performance.now()
  await sleep(idleWindowMs)
  const databaseAfter = await databaseCpu()
  const basaltAfter = basaltCpu()
  const seconds = (performance.now() - started) / 1000
  if (basaltBefore === undefined || basaltAfter === undefined || databaseBefore === undefined || databaseAfter === undefined)
    return undefined
  return { basalt: (basaltAfter - basaltBefore) / seconds, database: (databaseAfter - databaseBefore) / seconds }
}

// --- One run ---------------------------------------------------------------------------------

interface RunResult {
  readonly processes: number
  readonly docsPerSecond: number
  readonly chunksPerSecond: number
  /** CPU ms per document; undefined where /proc is missing or Postgres is not on this machine. */
  readonly basaltCpu: number | undefined
  readonly databaseCpu: number | undefined
  /** CPU ms per second of Basalt and Postgres together before the first batch. */
  readonly idleCpu: number | undefined
}

/** The message with its causes: fetch's own is only "fetch failed". */
const describe = (error: unknown): string =>
  error instanceof Error ? `${error.message}${error.cause !== undefined ? ` (${describe(error.cause)})` : ""}` : String(error)

class RunFailed extends Error {
  constructor(
    message: string,
    readonly exitCode: number
  ) {
    super(message)
  }
}

const share = (part: number, whole: number) => `${((part / whole) * 100).toFixed(0)}%`

/**
 * Ingests and indexes the documents once, on a fresh database, with `processes` Basalt processes
 * (undefined: BENCH_PROCESSES unset, the one process and the output as before it existed).
 */
const run = async (
  documents: ReadonlyArray<ReturnType<typeof makeDocument>>,
  bytes: number,
  processes: number | undefined
): Promise<RunResult> => {
  const count = processes ?? 1
  const dataDir = mkdtempSync(join(tmpdir(), "basalt-bench-ingest-"))
  liveDirectories.add(dataDir)
  teardown.undo(() => {
    rmSync(dataDir, { recursive: true, force: true })
    liveDirectories.delete(dataDir)
  })
  const database = await freshDatabase(processes === undefined ? "" : `_${count}p`)
  if (database !== undefined) teardown.undo(database.drop)
  const pglite = pgliteProcess ? await startPgliteProcess(join(dataDir, "pglite-process")) : undefined
  if (pglite !== undefined) teardown.undo(pglite.stop)
  const fake = embedderMode === "fake" ? await startFakeEmbeddingsServer() : undefined
  if (fake !== undefined) teardown.undo(() => fake.close())
  fake?.setDelay(settings.fakeDelayMs)
  const env: Record<string, string> = {
    PATH: process.env["PATH"] ?? "",
    HOST: "127.0.0.1",
    LOG_LEVEL: "warn",
    BASALT_RATE_LIMIT_PRINCIPAL: "1000000000/1s",
    ...(database ? { DATABASE_URL: database.url } : {}),
    ...(pglite ? { DATABASE_URL: pglite.url } : {}),
    ...(settings.indexingConcurrency ? { BASALT_INDEXING_CONCURRENCY: settings.indexingConcurrency } : {}),
    ...(fake
      ? {
          BASALT_EMBEDDINGS_URL: fake.baseUrl,
          BASALT_EMBEDDINGS_MODEL: "bench-fake",
          BASALT_EMBEDDINGS_BATCH_SIZE: String(settings.batchSize),
          BASALT_EMBEDDINGS_CONCURRENCY: String(settings.concurrency)
        }
      : {})
  }
  // Each process its own port, data directory and log. The runner's address is left to its defaults
  // (HOST, 127.0.0.1, and the API's own port), which is what processes on one machine need.
  const ports = new Set<number>()
  const distinctFreePort = async (): Promise<number> => {
    const port = await freePort()
    if (ports.has(port)) return distinctFreePort()
    ports.add(port)
    return port
  }
  const servers: Array<ServerProcess> = []
  for (let n = 1; n <= count; n++) {
    const port = await distinctFreePort()
    const suffix = n === 1 ? "" : `-${n}`
    const server = startServerProcess({
      name: n === 1 ? "basalt" : `basalt ${n}`,
      script: "src/main.ts",
      cwd: repoRoot,
      port,
      env: {
        ...env,
        PORT: String(port),
        BASALT_DATA_DIR: join(dataDir, `data${suffix}`)
      },
      logFile: join(dataDir, `basalt${suffix}.log`),
      nodeArgs: process.env["BENCH_NODE_ARGS"]?.split(" ").filter((arg) => arg !== "") ?? []
    })
    servers.push(server)
    liveServers.add(server)
    teardown.undo(async () => {
      await stopServerProcess(server, 20_000)
      liveServers.delete(server)
    })
  }
  const logTails = () =>
    servers.map((server) => (servers.length === 1 ? logTail(server) : `--- ${server.name}:\n${logTail(server)}`)).join("\n")
  try {
    await Promise.all(servers.map((server) => waitUntilAnswering(server, "/ready", startupTimeoutMs)))
    const shardSplit = processes === undefined ? undefined : await settledShards(servers)
    const base = servers[0]!.baseUrl
    const account = { email: "bench@example.com", password: "bench password long" }
    await request(base, "/api/v1/auth/register", { method: "POST", body: { ...account, display_name: "Bench" } })
    const token = (await request(base, "/api/v1/auth/login", { method: "POST", body: account })).body["access_token"] as string

    console.log(
      `bench:ingest: ${settings.docs} documents (${(bytes / settings.docs / 1024).toFixed(1)} KB of text each on average), ` +
        `${database ? "Postgres" : pglite ? "PGlite in a process of its own" : "PGlite"}, ${fake ? `fake provider (${settings.fakeDelayMs} ms per request, batch ${settings.batchSize}, concurrency ${settings.concurrency})` : "built-in embedder"}, ` +
        `${processes === undefined ? "" : `${count} Basalt ${count === 1 ? "process" : "processes (batches round-robin)"}, `}` +
        `${availableParallelism()} cores, load ${loadavg()
          .map((n) => n.toFixed(2))
          .join(" ")}`
    )

    if (shardSplit !== undefined) {
      console.log(
        `shards:     ${shardSplit.held.join(" / ")} of 300 held by the processes` +
          (shardSplit.settled
            ? `, settled ${shardSplit.seconds.toFixed(1)} s after all were ready`
            : ", NOT settled within the wait: measured anyway")
      )
    }

    const progress = async () =>
      (await request(base, "/api/v1/documents/progress", { token })).body["by_status"] as { indexed: number; failed: number }

    // After start (the dimension probe is answered by then).
    const resumeProvider = fake !== undefined && settings.holdProvider ? fake.pause() : undefined
    // Wall-clock times (Date.now()), to compare with the database's timestamps.
    let firstAccepted: number | undefined
    let refused = 0
    let nextBatch = 0
    const basaltCpu = () => {
      let sum = 0
      for (const server of servers) {
        const ms = server.cpuTimeMs()
        if (ms === undefined) return undefined
        sum += ms
      }
      return sum
    }
    // The database's own CPU, when it is a Postgres on this machine (its connections are open by now).
    const databaseCpu = () => (database === undefined ? Promise.resolve(undefined) : serverCpu(databaseUrl, database.name))
    // What the processes spend doing nothing (the cluster's heartbeats, lock refreshes and storage
    // polls): a cost per second and per process rather than per document, so short runs and more
    // processes pay more of it per document.
    const idle = processes === undefined ? undefined : await idleCpu(basaltCpu, databaseCpu)
    if (idle !== undefined) {
      console.log(
        `idle:       Basalt ${idle.basalt.toFixed(1)} ms CPU per second (${count === 1 ? "its process" : `its ${count} processes together`}), ` +
          `Postgres ${idle.database.toFixed(1)} ms per second, over ${idleWindowMs / 1000} s before the first batch`
      )
    }
    const perServerCpuBefore = servers.map((server) => server.cpuTimeMs())
    const cpuBefore = basaltCpu()
    const clientCpuBefore = process.cpuUsage()
    const databaseCpuBefore = await databaseCpu()
    const cpuWindowStarted = performance.now()
    const sendAll = async () => {
      while (nextBatch * perBatch < documents.length) {
        const batchNumber = nextBatch++
        const batch = documents.slice(batchNumber * perBatch, (batchNumber + 1) * perBatch)
        // Round-robin over the processes, as a load balancer in front of them would.
        const target = servers[batchNumber % servers.length]!.baseUrl
        const { body } = await request(target, "/api/v1/documents/batch", { method: "POST", body: { documents: batch }, token })
        for (const result of body["results"] as Array<{ status: number }>) {
          if (result.status === 202) firstAccepted ??= Date.now()
          else refused++
        }
      }
    }
    const started = Date.now()
    await Promise.all(Array.from({ length: settings.parallel }, sendAll))
    const allAccepted = Date.now()
    if (refused > 0) throw new RunFailed(`${refused} documents were not accepted with 202`, 1)
    resumeProvider?.()

    let indexed = 0
    while (indexed < settings.docs) {
      if (Date.now() - started > indexingTimeoutMs) throw new RunFailed(`only ${indexed} documents indexed in time`, 2)
      const counts = await progress()
      if (counts.failed > 0) throw new RunFailed(`${counts.failed} documents failed to index`, 1)
      indexed = counts.indexed
      if (indexed < settings.docs) await sleep(500)
    }
    const cpuAfter = basaltCpu()
    const perServerCpuAfter = servers.map((server) => server.cpuTimeMs())
    const clientCpu = process.cpuUsage(clientCpuBefore)
    const databaseCpuAfter = await databaseCpu()
    const cpuWindowSeconds = (performance.now() - cpuWindowStarted) / 1000

    // Not timed: the chunks made and the moment the last document was indexed, read back page by page.
    let chunks = 0
    let allIndexed = 0
    let cursor: string | null = null
    do {
      const page: Record<string, any> = (
        await request(base, `/api/v1/documents?status=indexed&limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`, { token })
      ).body
      for (const document of page["items"] as Array<{ chunk_count: number; status_changed_at: string }>) {
        chunks += document.chunk_count
        allIndexed = Math.max(allIndexed, Date.parse(document.status_changed_at))
      }
      cursor = page["next_cursor"] as string | null
    } while (cursor !== null)

    const start = firstAccepted ?? started
    const seconds = (allIndexed - start) / 1000
    const acceptSeconds = (allAccepted - start) / 1000
    const docsPerSecond = settings.docs / seconds
    const acceptedPerSecond = settings.docs / acceptSeconds
    const chunksPerDoc = chunks / settings.docs
    console.log(`chunks:     ${chunks} (${chunksPerDoc.toFixed(2)} per document)`)
    console.log(
      `accepted:   ${settings.docs} in ${acceptSeconds.toFixed(2)} s, ${acceptedPerSecond.toFixed(0)} docs/s (first 202 to last 207: the API alone, the baseline)`
    )
    console.log(
      `indexed:    ${settings.docs} in ${seconds.toFixed(2)} s, ${docsPerSecond.toFixed(0)} docs/s, ${(chunks / seconds).toFixed(0)} chunks/s (first 202 to last indexed)`
    )
    console.log(
      `ratio:      indexing end to end at ${((docsPerSecond / acceptedPerSecond) * 100).toFixed(0)}% of the API's acceptance rate`
    )
    const basaltCpuPerDoc = cpuBefore !== undefined && cpuAfter !== undefined ? (cpuAfter - cpuBefore) / settings.docs : undefined
    const databaseCpuPerDoc =
      databaseCpuBefore !== undefined && databaseCpuAfter !== undefined ? (databaseCpuAfter - databaseCpuBefore) / settings.docs : undefined
    if (processes === undefined) {
      if (basaltCpuPerDoc !== undefined) console.log(`server CPU: ${basaltCpuPerDoc.toFixed(2)} ms per document`)
      if (databaseCpuPerDoc !== undefined) {
        console.log(`Postgres CPU: ${databaseCpuPerDoc.toFixed(2)} ms per document (its server processes for this database)`)
      }
    } else {
      // The split of CPU time per document between the Basalt processes and the Postgres server.
      const whole = (basaltCpuPerDoc ?? 0) + (databaseCpuPerDoc ?? 0)
      const shareOf = (part: number) => (basaltCpuPerDoc !== undefined && databaseCpuPerDoc !== undefined ? `, ${share(part, whole)}` : "")
      if (basaltCpuPerDoc !== undefined) {
        const each = servers.map((_, i) => ((perServerCpuAfter[i] ?? 0) - (perServerCpuBefore[i] ?? 0)) / settings.docs)
        console.log(
          `Basalt CPU:   ${basaltCpuPerDoc.toFixed(2)} ms per document (${count === 1 ? "its process" : `its ${count} processes together`}${shareOf(basaltCpuPerDoc)})` +
            (count > 1 ? `; each: ${each.map((ms) => ms.toFixed(2)).join(" / ")} ms` : "")
        )
      }
      if (databaseCpuPerDoc !== undefined) {
        console.log(
          `Postgres CPU: ${databaseCpuPerDoc.toFixed(2)} ms per document (its server processes for this database${shareOf(databaseCpuPerDoc)})`
        )
      }
      if (basaltCpuPerDoc !== undefined && databaseCpuPerDoc !== undefined) {
        const clientMs = (clientCpu.user + clientCpu.system) / 1000
        console.log(
          `CPU total:    ${whole.toFixed(2)} ms per document; Basalt and Postgres kept ${((whole * settings.docs) / 1000 / cpuWindowSeconds).toFixed(2)} of ` +
            `${availableParallelism()} cores busy over the ${cpuWindowSeconds.toFixed(1)} s from the first batch to the last progress poll ` +
            `(this bench's own process: ${(clientMs / settings.docs).toFixed(2)} ms per document)`
        )
      }
    }
    if (fake) {
      const textsPerSecond = (settings.batchSize * settings.concurrency) / (settings.fakeDelayMs / 1000)
      const ceiling = textsPerSecond / chunksPerDoc
      const requests = fake.requests.length
      console.log(
        `provider:   ${requests} requests, ${(chunks / Math.max(requests, 1)).toFixed(1)} texts per request on average, ` +
          `at most ${fake.maxInFlight()} in flight, ${fake.connections()} connections`
      )
      console.log(
        `ceiling:    ${settings.batchSize} × ${settings.concurrency} texts per ${settings.fakeDelayMs} ms = ${textsPerSecond.toFixed(0)} texts/s = ${ceiling.toFixed(0)} docs/s; ` +
          `achieved ${((docsPerSecond / ceiling) * 100).toFixed(0)}% of it`
      )
      if (resumeProvider !== undefined) {
        const heldSeconds = (allIndexed - allAccepted) / 1000
        const heldRate = settings.docs / heldSeconds
        console.log(
          `backlog:    provider held until all were accepted; then ${settings.docs} indexed in ${heldSeconds.toFixed(2)} s, ` +
            `${heldRate.toFixed(0)} docs/s, ${((heldRate / ceiling) * 100).toFixed(0)}% of the ceiling`
        )
      }
      // From one request's arrival to the next's: the provider's 20 ms plus whatever kept the next one back.
      const arrivals = fake.requests.map((recorded) => recorded.receivedAt).sort((a, b) => a - b)
      const gaps = arrivals
        .slice(1)
        .map((at, i) => at - arrivals[i]!)
        .sort((a, b) => a - b)
      if (gaps.length > 0) {
        console.log(
          `gaps:       between request arrivals p50 ${percentileOf(gaps, 0.5).toFixed(1)} ms, p90 ${percentileOf(gaps, 0.9).toFixed(1)} ms, p99 ${percentileOf(gaps, 0.99).toFixed(1)} ms`
        )
      }
      // After the run, so that it takes nothing from it.
      const bareTexts = await bareClientRate(fake.baseUrl, settings.batchSize, settings.concurrency, 3_000)
      const bareDocs = bareTexts / chunksPerDoc
      const measured = resumeProvider !== undefined ? settings.docs / ((allIndexed - allAccepted) / 1000) : docsPerSecond
      console.log(
        `bare loop:  ${bareTexts.toFixed(0)} texts/s = ${bareDocs.toFixed(0)} docs/s from bare fetch loops of the same requests (${((bareDocs / ceiling) * 100).toFixed(0)}% of the ceiling); ` +
          `Basalt reached ${((measured / bareDocs) * 100).toFixed(0)}% of that`
      )
    }
    return {
      processes: count,
      docsPerSecond,
      chunksPerSecond: chunks / seconds,
      basaltCpu: basaltCpuPerDoc,
      databaseCpu: databaseCpuPerDoc,
      idleCpu: idle === undefined ? undefined : idle.basalt + idle.database
    }
  } catch (error) {
    if (teardown.isInterrupted()) throw new RunFailed("interrupted", 2)
    const message = describe(error)
    throw new RunFailed(
      `${message}\n${logTails()}`,
      error instanceof RunFailed ? error.exitCode : /failed|not accepted/.test(message) ? 1 : 2
    )
  } finally {
    await undoAll()
  }
}

/** The sweep's summary: each count against the first (1 in BENCH_PROCESSES=1,2,3). */
const printComparison = (results: ReadonlyArray<RunResult>) => {
  const first = results[0]!
  const ms = (value: number | undefined) => (value === undefined ? "–" : value.toFixed(2))
  const total = (result: RunResult) =>
    result.basaltCpu !== undefined && result.databaseCpu !== undefined ? result.basaltCpu + result.databaseCpu : undefined
  const ratio = (value: number | undefined, against: number | undefined) =>
    value === undefined || against === undefined ? "–" : `${(value / against).toFixed(2)}×`
  console.log("")
  console.log(
    `bench:ingest: ${settings.docs} documents per run, a fresh database each; ratios against ${first.processes} process${first.processes === 1 ? "" : "es"}`
  )
  console.log("")
  console.log(
    "| processes | docs/s | chunks/s | docs/s ratio | Basalt CPU ms/doc | Postgres CPU ms/doc | CPU ms/doc | CPU/doc ratio | Basalt share | Postgres share | idle CPU ms/s |"
  )
  console.log("|---|---|---|---|---|---|---|---|---|---|---|")
  for (const result of results) {
    const whole = total(result)
    console.log(
      `| ${result.processes} | ${result.docsPerSecond.toFixed(0)} | ${result.chunksPerSecond.toFixed(0)} | ${ratio(result.docsPerSecond, first.docsPerSecond)} | ` +
        `${ms(result.basaltCpu)} | ${ms(result.databaseCpu)} | ${ms(whole)} | ${ratio(whole, total(first))} | ` +
        `${whole === undefined ? "–" : share(result.basaltCpu!, whole)} | ${whole === undefined ? "–" : share(result.databaseCpu!, whole)} | ` +
        `${result.idleCpu === undefined ? "–" : result.idleCpu.toFixed(1)} |`
    )
  }
}

const main = async () => {
  const documents = Array.from({ length: settings.docs }, (_, n) => makeDocument(n))
  const bytes = documents.reduce((sum, d) => sum + d.content.length, 0)
  const results: Array<RunResult> = []
  try {
    for (const processes of processCounts ?? [undefined]) {
      if (teardown.isInterrupted()) break
      if (results.length > 0) console.log("")
      results.push(await run(documents, bytes, processes))
    }
  } catch (error) {
    if (teardown.isInterrupted()) return
    // A run that failed while setting up (the database, the provider) has not cleaned up yet.
    await undoAll()
    // The counts measured before the one that failed.
    if (results.length > 1) printComparison(results)
    process.stderr.write(`bench:ingest: ${describe(error)}\n`)
    process.exit(error instanceof RunFailed ? error.exitCode : 2)
  }
  if (teardown.isInterrupted()) return
  if (results.length > 1) printComparison(results)
  process.exit(0)
}

await main()
