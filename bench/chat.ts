/**
 * Streaming chat under concurrency: BENCH_STREAMS (100, then 1,000) chats, one question each in a
 * session of its own, against a fresh Basalt started as a child process and configured with the
 * fake OpenAI-compatible provider of the tests (tests/support/fakeChatServer.ts) at a fixed token
 * rate. Each answer's text/event-stream is parsed (bench/ChatStreams.ts).
 *
 * Two arrival modes (BENCH_ARRIVAL), each on a Basalt and a database of its own so that neither
 * inherits the other's state, burst first:
 *   burst  all N chats start in the same instant: the thundering herd, N × a chat's CPU queued on
 *          one event loop, so time to first token grows with N whatever a single chat costs.
 *   ramp   one chat every BENCH_RAMP_MS, each held open after its first tokens, so that the open
 *          streams grow to N: what one user sees while the server holds that many. Its "at N open"
 *          figure is over the chats requested while at least N/2 streams were already open. The
 *          default interval, 100 ms, is above what a chat costs up to its hold ("CPU ms/stream to
 *          hold", printed per run: 22-34 ms in Basalt plus under 20 in the Postgres server, or 57-71
 *          ms on PGlite, the database in Basalt's process), so that arrivals alone keep the server
 *          below saturation; and at 100 streams, 200 and 400 ms gave the same added time to first
 *          token as 100 ms (p50 37-45 ms on either database), so the figure is one chat's latency,
 *          not a queue. A longer interval would only lengthen the run: 1,000 chats take 100 s.
 *
 * The provider runs in this process behind a small relay that gives it a fixed time to first token
 * (the fake itself starts at once) and records, per request, when it arrived and when its first
 * token left: the provider's own delay, as Basalt sees it. The relay holds every answer after
 * BENCH_HOLD_AFTER tokens until all N are held and every client has its first token (or
 * BENCH_HOLD_TIMEOUT_S has passed since the last chat started), so that all N streams are open at
 * once; Basalt's resident memory (VmRSS from /proc) is read then, against its idle figure before the
 * streams. Time to first token is over before the hold.
 *
 * The provider and the clients share this process: over a run they took 8-25% of a core and the
 * event loop's p99 delay (printed; it includes the monitor's 10 ms resolution) was 15-60 ms in a
 * burst and 15-30 ms in a ramp, which bounds what they add to a client's time to first token at the
 * tail: nothing to figures of seconds, but up to ~10-20 ms of a ramp's p95. Basalt's CPU time per
 * stream (/proc) is printed beside them, and on a local Postgres the server's CPU for the bench's
 * database.
 *
 * Reported per mode and N: server-side added time to first token at p50/p95 = the client's time to
 * the first `token` event − the provider's own delay for that request − retrieval (POST
 * /api/v1/search with the same question, timed separately on the same Basalt: the median of its
 * X-Process-Time is subtracted from every stream; retrieval cannot be told apart inside one chat
 * request from outside), over all chats and over those at N/2 open or more. Also the time from the
 * client's request to the provider's (retrieval and Basalt's setup), and from the provider's first
 * token to the client's (the relay through Basalt).
 *
 *   npm run bench:chat                                       # PGlite, 100 then 1,000 streams, burst then ramp
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm run bench:chat
 *   BENCH_PROCESSES=2 BENCH_STREAMS=100 DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm run bench:chat
 *   BENCH_ARRIVAL=ramp BENCH_RAMP_MS=50 BENCH_STREAMS=100 npm run bench:chat
 *
 * Settings (environment):
 *   BENCH_STREAMS           chats (and open streams) per run, several run in turn (100,1000)
 *   BENCH_ARRIVAL           burst, ramp or both in turn (burst,ramp)
 *   BENCH_RAMP_MS           ramp: the interval between two chats' starts (100)
 *   BENCH_TOKENS            tokens per answer (50)
 *   BENCH_TOKEN_MS          the provider's pause between two tokens (20)
 *   BENCH_PROVIDER_TTFT_MS  the provider's time to its first token (100)
 *   BENCH_HOLD_AFTER        tokens sent before an answer is held (5)
 *   BENCH_HOLD_TIMEOUT_S    the longest hold once every chat has started (60)
 *   BENCH_DOCS              documents indexed for retrieval (20)
 *   BENCH_SEARCHES          POST /api/v1/search calls timed for retrieval (50)
 *   BENCH_LOG_LEVEL         Basalt's LOG_LEVEL (warn)
 *   DATABASE_URL            a Postgres server: the bench creates a database of its own on it per mode and drops it after
 *   BENCH_PROCESSES         2: two Basalt processes on that one database; each stream starts on the
 *                           first, is cut after BENCH_CUT_AFTER events (3) and resumed on the second
 *                           with GET …/messages/{id}/stream and Last-Event-ID; every event must arrive
 *                           exactly once (ids contiguous, none repeated) and the final one last
 *
 * Exits 1 if a goal's hard condition failed (a stream lost or ended in `error`, an HTTP failure, a
 * resume violation), 2 if Basalt could not be started. On SIGINT, SIGTERM or SIGHUP it stops Basalt
 * and drops the database before exiting.
 */
import { randomBytes } from "node:crypto"
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { createServer, request as httpRequest, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { availableParallelism, loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import { monitorEventLoopDelay } from "node:perf_hooks"
import { setTimeout as sleep } from "node:timers/promises"
import { fileURLToPath } from "node:url"
import { defaultAnswerTokens, fakeChatModel, startFakeChatServer } from "../tests/support/fakeChatServer.ts"
import { type Arrival, mb, ms, percentile, printGoals, printTable, type RunResult } from "./ChatReport.ts"
import { question, resumeViolation, runStream, type StreamOutcome } from "./ChatStreams.ts"
import { credentialsOn } from "./Credentials.ts"
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

const databaseUrl = process.env["DATABASE_URL"]?.trim() || undefined
const streamCounts = (process.env["BENCH_STREAMS"]?.trim() || "100,1000").split(",").map((text) => Number(text.trim()))
if (streamCounts.some((n) => !Number.isInteger(n) || n < 1)) {
  process.stderr.write(
    `bench: BENCH_STREAMS must be whole numbers greater than 0 separated by commas, got "${process.env["BENCH_STREAMS"]}"\n`
  )
  process.exit(2)
}
const arrivals = (process.env["BENCH_ARRIVAL"]?.trim() || "burst,ramp").split(",").map((text) => text.trim())
if (arrivals.some((arrival) => arrival !== "burst" && arrival !== "ramp") || new Set(arrivals).size !== arrivals.length) {
  process.stderr.write(`bench: BENCH_ARRIVAL must be burst, ramp or both separated by a comma, got "${process.env["BENCH_ARRIVAL"]}"\n`)
  process.exit(2)
}
const settings = {
  arrivals: arrivals as ReadonlyArray<Arrival>,
  rampMs: positiveInt("BENCH_RAMP_MS", 100),
  tokens: positiveInt("BENCH_TOKENS", 50),
  tokenMs: positiveInt("BENCH_TOKEN_MS", 20),
  providerTtftMs: positiveInt("BENCH_PROVIDER_TTFT_MS", 100),
  holdAfter: positiveInt("BENCH_HOLD_AFTER", 5),
  holdTimeoutMs: positiveInt("BENCH_HOLD_TIMEOUT_S", 60) * 1_000,
  docs: positiveInt("BENCH_DOCS", 20),
  searches: positiveInt("BENCH_SEARCHES", 50),
  processes: positiveInt("BENCH_PROCESSES", 1),
  cutAfter: positiveInt("BENCH_CUT_AFTER", 3),
  logLevel: process.env["BENCH_LOG_LEVEL"]?.trim() || "warn"
}
if (settings.processes > 2) {
  process.stderr.write("bench: BENCH_PROCESSES must be 1 or 2\n")
  process.exit(2)
}
if (settings.processes === 2 && databaseUrl === undefined) {
  process.stderr.write("bench: BENCH_PROCESSES=2 needs DATABASE_URL (a Postgres server: PGlite serves a single process)\n")
  process.exit(2)
}
if (settings.providerTtftMs < settings.tokenMs) {
  process.stderr.write(
    "bench: BENCH_PROVIDER_TTFT_MS must be at least BENCH_TOKEN_MS (the fake sends its first token one interval after it starts)\n"
  )
  process.exit(2)
}

const repoRoot = fileURLToPath(new URL("..", import.meta.url))
const startupTimeoutMs = 120_000
const stopGraceMs = 20_000
const streamTimeoutMs = 5 * 60_000
/** How long the ramp of N chats takes to start them all: the first stream is held for that long and more. */
const rampSpanMs = (arrival: Arrival, count: number) => (arrival === "ramp" ? count * settings.rampMs : 0)

// --- Cleanup ---------------------------------------------------------------------------------

const describe = (error: unknown) => (error instanceof Error ? error.message : String(error))

const teardown = makeTeardown("bench:chat")
const { liveServers, liveDirectories, undoAll } = teardown

// --- The provider: the tests' fake behind a relay that times it -----------------------------

interface ProviderRequest {
  readonly receivedAt: number
  firstTokenAt: number | undefined
}

interface Provider {
  readonly baseUrl: string
  /** By the question's number; rewrite or other requests without one are counted apart. */
  readonly requests: Map<number, ProviderRequest>
  readonly unmatched: () => number
  /** Answers held after `holdAfter` tokens: `held` counts them, `release` lets them all go on. */
  readonly held: () => number
  readonly release: () => void
  readonly arm: () => void
  readonly close: () => Promise<void>
}

const answerTokens = Array.from({ length: settings.tokens }, (_, i) => defaultAnswerTokens[i % defaultAnswerTokens.length]!)
const questionNumber = /bench question (\d+)/

const startProvider = async (): Promise<Provider> => {
  const fake = await startFakeChatServer()
  const upstream = new URL(fake.baseUrl)
  const requests = new Map<number, ProviderRequest>()
  let unmatched = 0
  let held = 0
  let gate: { promise: Promise<void>; open: () => void } | undefined
  const arm = () => {
    let open!: () => void
    gate = { promise: new Promise((resolve) => (open = resolve)), open }
    held = 0
  }
  const relay: Server = createServer((incoming, outgoing) => {
    const receivedAt = performance.now()
    const parts: Array<Buffer> = []
    incoming.on("data", (part: Buffer) => parts.push(part))
    incoming.on("end", async () => {
      const body = Buffer.concat(parts)
      const text = body.toString("utf8")
      const numbered = questionNumber.exec(text)
      const record: ProviderRequest = { receivedAt, firstTokenAt: undefined }
      if (numbered === null) unmatched++
      else requests.set(Number(numbered[1]), record)
      const streaming = text.includes('"stream":true')
      if (streaming) {
        fake.queue({ kind: "stream", tokens: answerTokens, intervalMs: settings.tokenMs })
        // The fake sends its first token one interval after the request reaches it.
        await sleep(settings.providerTtftMs - settings.tokenMs)
      }
      const forward = httpRequest(
        { host: upstream.hostname, port: upstream.port, path: incoming.url, method: incoming.method, headers: incoming.headers },
        (answer) => {
          outgoing.writeHead(answer.statusCode ?? 502, answer.headers)
          let tokens = 0
          const myGate = gate
          answer.on("data", (chunk: Buffer) => {
            const count = chunk.toString("utf8").split('"delta":{"content":').length - 1
            if (count > 0 && record.firstTokenAt === undefined) record.firstTokenAt = performance.now()
            outgoing.write(chunk)
            tokens += count
            if (myGate !== undefined && count > 0 && tokens === settings.holdAfter) {
              answer.pause()
              held++
              void myGate.promise.then(() => answer.resume())
            }
          })
          answer.on("end", () => outgoing.end())
          answer.on("error", () => outgoing.destroy())
        }
      )
      forward.on("error", () => outgoing.destroy())
      outgoing.on("close", () => forward.destroy())
      forward.end(body)
    })
  })
  await new Promise<void>((resolve) => relay.listen(0, "127.0.0.1", resolve))
  const { port } = relay.address() as AddressInfo
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    unmatched: () => unmatched,
    held: () => held,
    arm,
    release: () => {
      gate?.open()
      gate = undefined
    },
    close: async () => {
      gate?.open()
      await new Promise<void>((resolve) => {
        relay.closeAllConnections()
        relay.close(() => resolve())
      })
      await fake.close()
    }
  }
}

// --- Basalt ----------------------------------------------------------------------------------

/** The pid of the child listening on `port`: the process this bench spawned with PORT=<port>. */
const pidOf = (port: number): number | undefined => {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8")
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) !== process.pid) continue
      if (readFileSync(`/proc/${entry}/environ`, "utf8").split("\0").includes(`PORT=${port}`)) return Number(entry)
    } catch {
      // Gone, or not ours.
    }
  }
  return undefined
}

/** VmRSS in bytes; NaN once the process has gone. */
const rssOf = (pid: number): number => {
  try {
    const line = readFileSync(`/proc/${pid}/status`, "utf8")
      .split("\n")
      .find((text) => text.startsWith("VmRSS:"))
    return Number(/(\d+)/.exec(line ?? "")?.[1] ?? Number.NaN) * 1024
  } catch {
    return Number.NaN
  }
}

/** The median of five readings of the resident memory of `pid`, `gapMs` apart. */
const medianRss = async (pid: number, gapMs: number) => {
  const readings: Array<number> = []
  for (let i = 0; i < 5; i++) {
    readings.push(rssOf(pid))
    await sleep(gapMs)
  }
  return percentile(readings, 0.5)!
}

/** Keeps a server's log outside the work directory (removed at the end), to explain a failure. */
const keepLog = (server: ServerProcess): string => {
  const kept = join(tmpdir(), `basalt-bench-chat-${process.pid}-${server.name.replace(/\W+/g, "-")}.log`)
  copyFileSync(server.logFile, kept)
  return kept
}

/** Runs `step` once however often it is called: at the end of a mode and again by the teardown. */
const once = (step: () => Promise<void>) => {
  let done: Promise<void> | undefined
  return () => (done ??= step())
}

interface Basalt {
  readonly server: ServerProcess
  readonly pid: number
  readonly stop: () => Promise<void>
}

const startBasalt = async (name: string, env: Record<string, string>, logDir: string): Promise<Basalt> => {
  const port = await freePort()
  const server = startServerProcess({
    name,
    script: "src/main.ts",
    cwd: repoRoot,
    port,
    env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? tmpdir(), HOST: "127.0.0.1", PORT: String(port), ...env },
    logFile: join(logDir, `${name.replace(/\W+/g, "-")}.log`)
  })
  liveServers.add(server)
  const stop = once(async () => {
    const stopped = await stopServerProcess(server, stopGraceMs)
    liveServers.delete(server)
    if (stopped.code !== 0)
      console.log(`WARNING: ${name} stopped with code ${stopped.code} (signal ${stopped.signal}, forced ${stopped.forced})`)
  })
  teardown.undo(stop)
  await waitUntilAnswering(server, "/ready", startupTimeoutMs)
  const pid = pidOf(port)
  if (pid === undefined) throw new Error(`could not find the pid of ${name}`)
  return { server, pid, stop }
}

// --- Documents -------------------------------------------------------------------------------

const topics = ["signing keys", "vacation days", "expense reports", "backup retention", "incident response"]
const documentOf = (n: number) => {
  const topic = topics[n % topics.length]!
  return {
    title: `Policy on ${topic} ${n}`,
    source: "api",
    external_id: `bench-chat-${n}`,
    content:
      `# ${topic}\n\nThe ${topic} policy applies to every team. Signing keys are rotated every 90 days by the security team; ` +
      `old keys stop working after a day. Revision ${n} of the ${topic} rules says requests go through the service desk ` +
      `and are answered within two working days.\n\n## Exceptions\n\nExceptions to the ${topic} policy need written approval.`
  }
}

// --- A deployment per arrival mode -----------------------------------------------------------

/** A fresh database and Basalt (two with BENCH_PROCESSES=2), signed in, documents indexed, retrieval timed. */
interface Deployment {
  readonly first: Basalt
  readonly second: Basalt | undefined
  readonly jwt: string
  readonly retrievalP50: number
  /** The local Postgres server's CPU time for this database so far (ms); undefined on PGlite. */
  readonly postgresCpuMs: () => Promise<number | undefined>
  /** Stops Basalt and drops the database. */
  readonly close: () => Promise<void>
}

const startDeployment = async (arrival: Arrival, provider: Provider, workDir: string): Promise<Deployment> => {
  let databaseEnv: Record<string, string> = { BASALT_DATA_DIR: join(workDir, `data-${arrival}`) }
  let dropDatabase = async () => {}
  let postgresCpuMs = async (): Promise<number | undefined> => undefined
  if (databaseUrl !== undefined) {
    const name = `basalt_bench_chat_${process.pid}_${arrival}`
    await postgresStatements(databaseUrl, `CREATE DATABASE ${name}`)
    dropDatabase = once(async () => {
      await postgresStatements(databaseUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    })
    teardown.undo(dropDatabase)
    postgresCpuMs = () => serverCpu(databaseUrl, name)
    const url = new URL(databaseUrl)
    url.pathname = `/${name}`
    databaseEnv = { DATABASE_URL: url.toString() }
  }
  // Held answers are silent for up to the ramp and the hold: longer than both, so Basalt does not give up on them.
  const longestHoldS = Math.ceil((settings.holdTimeoutMs + rampSpanMs(arrival, Math.max(...streamCounts))) / 1_000) + 60
  const env: Record<string, string> = {
    ...databaseEnv,
    LOG_LEVEL: settings.logLevel,
    BASALT_JWT_SECRET: randomBytes(32).toString("hex"),
    BASALT_ACCESS_TOKEN_TTL: "6 hours",
    BASALT_RATE_LIMIT_PRINCIPAL: "off",
    BASALT_CHAT_URL: provider.baseUrl,
    BASALT_CHAT_MODELS: fakeChatModel,
    BASALT_CHAT_IDLE_TIMEOUT: `${longestHoldS} seconds`
  }
  const first = await startBasalt(`Basalt A (${arrival})`, env, workDir)
  const second = settings.processes === 2 ? await startBasalt(`Basalt B (${arrival})`, env, workDir) : undefined
  const base = first.server.baseUrl
  const { jwt } = await credentialsOn(base)

  // Documents for retrieval, indexed before anything is timed.
  const documents = Array.from({ length: settings.docs }, (_, i) => documentOf(i))
  for (let i = 0; i < documents.length; i += 100) {
    await request(base, "/api/v1/documents/batch", { method: "POST", body: { documents: documents.slice(i, i + 100) }, token: jwt })
  }
  const indexDeadline = performance.now() + 120_000
  for (;;) {
    const byStatus = (await request(base, "/api/v1/documents/progress", { token: jwt })).body["by_status"] as Record<string, number>
    if ((byStatus["indexed"] ?? 0) >= settings.docs) break
    if ((byStatus["failed"] ?? 0) > 0) throw new Error(`documents failed to index: ${JSON.stringify(byStatus)}`)
    if (performance.now() > indexDeadline) throw new Error(`documents not indexed after 120 s: ${JSON.stringify(byStatus)}`)
    await sleep(250)
  }

  // Retrieval, timed apart: the same question through POST /api/v1/search, its server-side time.
  const searchTimes: Array<number> = []
  for (let i = 0; i < settings.searches; i++) {
    const { headers } = await request(base, "/api/v1/search", { method: "POST", body: { query: question(i) }, token: jwt })
    searchTimes.push(Number(headers.get("x-process-time")))
  }
  const retrievalP50 = percentile(searchTimes, 0.5)!
  console.log(
    `${arrival}: a fresh Basalt${second === undefined ? "" : " pair"} and database; retrieval: POST /api/v1/search X-Process-Time ` +
      `p50 ${ms(retrievalP50)} ms, p95 ${ms(percentile(searchTimes, 0.95))} ms`
  )
  return {
    first,
    second,
    jwt,
    retrievalP50,
    postgresCpuMs,
    close: async () => {
      await second?.stop()
      await first.stop()
      await dropDatabase()
    }
  }
}

// --- One run: N chats, burst or ramp ---------------------------------------------------------

interface Run {
  readonly result: RunResult
  /** Hard conditions failed (lost, error events, HTTP failures, resume violations, a Basalt exited). */
  readonly failures: number
}

/** Undefined when the bench was interrupted (its cleanup stopped Basalt under the streams). */
const runStreams = async (
  arrival: Arrival,
  count: number,
  deployment: Deployment,
  provider: Provider,
  questionBase: number
): Promise<Run | undefined> => {
  const { first, second, jwt } = deployment
  const base = first.server.baseUrl
  let failures = 0
  const sessions: Array<string> = []
  for (let i = 0; i < count; i++) {
    sessions.push((await request(base, "/api/v1/chat/sessions", { method: "POST", body: { title: `bench ${i}` }, token: jwt })).body["id"])
  }
  // Idle: the median of a few readings a second apart, the sessions made.
  await sleep(1_000)
  const idleRss = await medianRss(first.pid, 200)

  provider.arm()
  const open = new Set<number>()
  let peakRss = idleRss
  const sampler = setInterval(() => {
    const rss = rssOf(first.pid)
    if (rss > peakRss) peakRss = rss
  }, 100)
  const loopDelay = monitorEventLoopDelay({ resolution: 10 })
  loopDelay.enable()
  let firstTokensSeen = 0
  const postgresCpuBefore = await deployment.postgresCpuMs()
  const started = performance.now()
  const cpuBefore = process.cpuUsage()
  const basaltCpuBefore = first.server.cpuTimeMs()
  const numbers = Array.from({ length: count }, (_, i) => questionBase + i)
  const running: Array<Promise<StreamOutcome>> = []
  for (const [i, n] of numbers.entries()) {
    // A burst starts every chat in this one turn of the event loop; a ramp starts chat i at i × the interval.
    if (arrival === "ramp") await sleep(Math.max(0, started + i * settings.rampMs - performance.now()))
    if (teardown.isInterrupted()) break
    running.push(
      runStream({
        n,
        first: base,
        second: second?.server.baseUrl,
        cutAfter: settings.cutAfter,
        sessionId: sessions[i]!,
        token: jwt,
        open,
        timeoutMs: streamTimeoutMs + rampSpanMs(arrival, count),
        onFirstToken: () => firstTokensSeen++
      })
    )
  }

  // All held at the provider and each past its first token at the client (or the hold's limit):
  // read memory with every stream open, then let them finish.
  const holdDeadline = performance.now() + settings.holdTimeoutMs
  while ((provider.held() < count || firstTokensSeen < count) && performance.now() < holdDeadline && !teardown.isInterrupted())
    await sleep(100)
  await sleep(500)
  const heldRss = await medianRss(first.pid, 100)
  const openAtSample = open.size
  const heldCount = provider.held()
  // What the chats cost up to their hold: in a ramp, the load that arrivals alone put on Basalt.
  const basaltCpuAtHold = first.server.cpuTimeMs()
  provider.release()
  const outcomes = await Promise.all(running)
  if (teardown.isInterrupted()) return undefined
  const totalMs = performance.now() - started
  const cpu = process.cpuUsage(cpuBefore)
  const basaltCpuAfter = first.server.cpuTimeMs()
  const postgresCpuAfter = await deployment.postgresCpuMs()
  clearInterval(sampler)
  loopDelay.disable()

  const added: Array<number> = []
  const addedAtHalfOpen: Array<number> = []
  const clientTtft: Array<number> = []
  const providerTtft: Array<number> = []
  const beforeProvider: Array<number> = []
  const relay: Array<number> = []
  for (const [i, outcome] of outcomes.entries()) {
    const seen = provider.requests.get(numbers[i]!)
    if (outcome.firstTokenAt === undefined || seen?.firstTokenAt === undefined) continue
    const client = outcome.firstTokenAt - outcome.requestedAt
    const own = seen.firstTokenAt - seen.receivedAt
    clientTtft.push(client)
    providerTtft.push(own)
    beforeProvider.push(seen.receivedAt - outcome.requestedAt)
    relay.push(outcome.firstTokenAt - seen.firstTokenAt)
    added.push(client - own - deployment.retrievalP50)
    if (outcome.openAtStart >= count / 2) addedAtHalfOpen.push(client - own - deployment.retrievalP50)
  }
  const lost = outcomes.filter((o) => o.status === 200 && o.final === undefined)
  const errorEvents = outcomes.filter((o) => o.final === "error")
  const httpFailures = outcomes.filter((o) => o.status !== 200)
  const violations = second === undefined ? undefined : outcomes.filter((o) => resumeViolation(o) !== undefined)
  const label = `${arrival}, ${count} streams`
  for (const [kind, list] of [
    ["lost (no final event)", lost],
    ["ended in an error event", errorEvents],
    ["failed before streaming", httpFailures],
    ["resume violations", violations ?? []]
  ] as const) {
    if (list.length === 0) continue
    failures++
    const kinds = new Map<string, number>()
    for (const o of list) {
      const key = (kind === "resume violations" ? (resumeViolation(o) ?? "") : (o.errorText ?? "(no error text)")).slice(0, 200)
      kinds.set(key, (kinds.get(key) ?? 0) + 1)
    }
    console.log(`${label}: ${list.length} ${kind}:`)
    for (const [text, times] of kinds) console.log(`  ${times}× ${text}`)
  }
  if (heldCount < count || openAtSample < count)
    console.log(
      `${label}: the hold timed out with ${heldCount} held at the provider and ${openAtSample} open at the client; memory is over those open`
    )
  const result: RunResult = {
    arrival,
    rampMs: arrival === "ramp" ? settings.rampMs : undefined,
    streams: count,
    retrievalP50: deployment.retrievalP50,
    addedP50: percentile(added, 0.5),
    addedP95: percentile(added, 0.95),
    atHalfOpenP50: percentile(addedAtHalfOpen, 0.5),
    atHalfOpenP95: percentile(addedAtHalfOpen, 0.95),
    atHalfOpenCount: addedAtHalfOpen.length,
    clientTtftP50: percentile(clientTtft, 0.5),
    providerTtftP50: percentile(providerTtft, 0.5),
    beforeProviderP50: percentile(beforeProvider, 0.5),
    relayP50: percentile(relay, 0.5),
    relayP95: percentile(relay, 0.95),
    idleRss,
    heldRss,
    openAtSample,
    peakRss,
    lost: lost.length,
    errorEvents: errorEvents.length,
    httpFailures: httpFailures.length,
    violations: violations?.length,
    totalMs,
    loopDelayP99: loopDelay.percentile(99) / 1e6,
    benchCpuShare: (cpu.user + cpu.system) / 1_000 / totalMs,
    basaltCpuMsPerStream:
      basaltCpuBefore === undefined || basaltCpuAfter === undefined ? undefined : (basaltCpuAfter - basaltCpuBefore) / count,
    basaltCpuMsPerStreamToHold:
      basaltCpuBefore === undefined || basaltCpuAtHold === undefined ? undefined : (basaltCpuAtHold - basaltCpuBefore) / count,
    postgresCpuMsPerStream:
      postgresCpuBefore === undefined || postgresCpuAfter === undefined ? undefined : (postgresCpuAfter - postgresCpuBefore) / count,
    unmatched: provider.unmatched()
  }
  console.log(
    `${label}: added TTFT p50 ${ms(result.addedP50)} ms, p95 ${ms(result.addedP95)} ms` +
      (result.atHalfOpenCount === 0 ? "" : ` (at ≥ ${count / 2} open: p50 ${ms(result.atHalfOpenP50)}, p95 ${ms(result.atHalfOpenP95)})`) +
      `; ${mb(heldRss - idleRss)} MB over ${openAtSample} open; ${lost.length} lost; ${(totalMs / 1_000).toFixed(1)} s; ` +
      `Basalt A CPU ${ms(result.basaltCpuMsPerStreamToHold)} ms/stream to the hold, ${ms(result.basaltCpuMsPerStream)} in all; load average ${loadavg()[0]!.toFixed(2)}`
  )
  for (const basalt of [first, second]) {
    if (basalt === undefined) continue
    const exited = basalt.server.hasExited() ? await basalt.server.exited : undefined
    if (exited === undefined && lost.length + errorEvents.length + httpFailures.length === 0) continue
    if (exited !== undefined) {
      failures++
      console.log(`${label}: ${basalt.server.name} EXITED during the run (code ${exited.code}, signal ${exited.signal})`)
    }
    console.log(`${basalt.server.name}'s last log lines (whole log kept in ${keepLog(basalt.server)}):\n${logTail(basalt.server, 30)}`)
  }
  return { result, failures }
}

const main = async (): Promise<number> => {
  const workDir = mkdtempSync(join(tmpdir(), "basalt-bench-chat-"))
  liveDirectories.add(workDir)
  teardown.undo(() => {
    rmSync(workDir, { recursive: true, force: true, maxRetries: 3 })
    liveDirectories.delete(workDir)
  })
  const provider = await startProvider()
  teardown.undo(() => provider.close())

  console.log(
    [
      "Chat streaming benchmark",
      "",
      `cpu:        ${availableParallelism()} cores, load average ${loadavg()
        .map((n) => n.toFixed(2))
        .join(" ")} before the run`,
      `Basalt:     ${databaseUrl === undefined ? "PGlite (in Basalt's process: its memory counts)" : "PostgreSQL"}, ${settings.processes} process${settings.processes === 1 ? "" : "es"}, LOG_LEVEL=${settings.logLevel}, rate limit off`,
      `provider:   the tests' fake in this process behind a timing relay: first token after ${settings.providerTtftMs} ms, then ${settings.tokens} tokens every ${settings.tokenMs} ms; held after ${settings.holdAfter} tokens until all streams are open`,
      `arrival:    ${settings.arrivals.map((arrival) => (arrival === "ramp" ? `ramp (a chat every ${settings.rampMs} ms)` : "burst (all at once)")).join(", then ")}; each on a fresh Basalt and database`,
      `documents:  ${settings.docs} indexed`,
      settings.processes === 2 ? `resume:     each stream cut after ${settings.cutAfter} events on A, resumed on B with Last-Event-ID` : "",
      ""
    ]
      .filter((line, i, lines) => line !== "" || lines[i - 1] !== "")
      .join("\n")
  )

  const results: Array<RunResult> = []
  let failures = 0
  // Question numbers stay distinct over the whole invocation: the relay ties its requests to them.
  let questionBase = 0
  let exited = false
  for (const arrival of settings.arrivals) {
    const deployment = await startDeployment(arrival, provider, workDir)
    for (const count of streamCounts) {
      const run = await runStreams(arrival, count, deployment, provider, questionBase)
      if (run === undefined) return 130
      questionBase += count
      results.push(run.result)
      failures += run.failures
      exited = deployment.first.server.hasExited() || deployment.second?.server.hasExited() === true
      if (exited) break
    }
    await deployment.close()
    if (exited) break
  }

  printTable(results, settings.processes === 2, databaseUrl !== undefined)
  printGoals(results, settings.processes === 2)
  return failures > 0 ? 1 : 0
}

main().then(
  async (code) => {
    await undoAll()
    process.exit(code)
  },
  async (error: unknown) => {
    process.stderr.write(`bench:chat: ${describe(error)}\n`)
    await undoAll()
    process.exit(2)
  }
)
