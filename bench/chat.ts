/**
 * Streaming chat under concurrency: BENCH_STREAMS (100, then 1,000) chats at once, one question
 * each in a session of its own, against a fresh Basalt started as a child process and configured
 * with the fake OpenAI-compatible provider of the tests (tests/support/fakeChatServer.ts) at a
 * fixed token rate. Each answer's text/event-stream is parsed (eventsource-parser).
 *
 * The provider runs in this process behind a small relay that gives it a fixed time to first token
 * (the fake itself starts at once) and records, per request, when it arrived and when its first
 * token left: the provider's own delay, as Basalt sees it. The relay holds every answer after
 * BENCH_HOLD_AFTER tokens until all N are held and every client has its first token (or
 * BENCH_HOLD_TIMEOUT_S has passed), so that all N streams are open at once; Basalt's resident memory
 * (VmRSS from /proc) is read then, against its idle figure before the streams. Time to first token
 * is over before the hold.
 *
 * The provider and the clients share this process: over a run they took 5-15% of a core and the
 * event loop's p99 delay was 20-70 ms (both printed), which bounds what they add to a client's
 * time to first token; moving the provider to a process of its own would not change figures of
 * seconds. Basalt's CPU time per stream (/proc) is printed beside them.
 *
 * Reported per N: server-side added time to first token at p50/p95 = the client's time to the
 * first `token` event − the provider's own delay for that request − retrieval (POST
 * /api/v1/search with the same question, timed separately in the same run: the median of its
 * X-Process-Time is subtracted from every stream; retrieval cannot be told apart inside one chat
 * request from outside). Also the time from the client's request to the provider's (retrieval and
 * Basalt's setup), and from the provider's first token to the client's (the relay through Basalt).
 *
 *   npm run bench:chat                                       # PGlite, 100 then 1,000 streams
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm run bench:chat
 *   BENCH_PROCESSES=2 BENCH_STREAMS=100 DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm run bench:chat
 *
 * Settings (environment):
 *   BENCH_STREAMS           concurrent chats, several run in turn (100,1000)
 *   BENCH_TOKENS            tokens per answer (50)
 *   BENCH_TOKEN_MS          the provider's pause between two tokens (20)
 *   BENCH_PROVIDER_TTFT_MS  the provider's time to its first token (100)
 *   BENCH_HOLD_AFTER        tokens sent before an answer is held (5)
 *   BENCH_HOLD_TIMEOUT_S    the longest hold (60)
 *   BENCH_DOCS              documents indexed for retrieval (20)
 *   BENCH_SEARCHES          POST /api/v1/search calls timed for retrieval (50)
 *   BENCH_LOG_LEVEL         Basalt's LOG_LEVEL (warn)
 *   DATABASE_URL            a Postgres server: the bench creates a database of its own on it and drops it after
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
import { createParser } from "eventsource-parser"
import { defaultAnswerTokens, fakeChatModel, startFakeChatServer } from "../tests/support/fakeChatServer.ts"
import { credentialsOn } from "./Credentials.ts"
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
const settings = {
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

/** Keeps a server's log outside the work directory (removed at the end), to explain a failure. */
const keepLog = (server: ServerProcess): string => {
  const kept = join(tmpdir(), `basalt-bench-chat-${process.pid}-${server.name.replace(/\W+/g, "-")}.log`)
  copyFileSync(server.logFile, kept)
  return kept
}

interface Basalt {
  readonly server: ServerProcess
  readonly pid: number
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
  teardown.undo(async () => {
    const stop = await stopServerProcess(server, stopGraceMs)
    liveServers.delete(server)
    if (stop.code !== 0) console.log(`WARNING: ${name} stopped with code ${stop.code} (signal ${stop.signal}, forced ${stop.forced})`)
  })
  await waitUntilAnswering(server, "/ready", startupTimeoutMs)
  const pid = pidOf(port)
  if (pid === undefined) throw new Error(`could not find the pid of ${name}`)
  return { server, pid }
}

// --- Documents and questions -----------------------------------------------------------------

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
const question = (n: number) => `How often are signing keys rotated, and when do old keys stop working? (bench question ${n})`

// --- Streams ---------------------------------------------------------------------------------

interface StreamOutcome {
  status: number | undefined
  requestedAt: number
  headersAt: number | undefined
  startAt: number | undefined
  firstTokenAt: number | undefined
  final: "message_end" | "error" | undefined
  errorText: string | undefined
  messageId: string | undefined
  ids: Array<number>
  firstEvent: string | undefined
  resumed: boolean
}

/** Streams of the current run whose first token has reached the client. */
let firstTokensSeen = 0

/** Reads an event stream to its end, or until `stopAfter` events (then cuts it). */
const readEvents = async (
  response: Response,
  outcome: StreamOutcome,
  stopAfter: number | undefined,
  abort: AbortController
): Promise<"ended" | "cut"> => {
  let seen = 0
  let cut = false
  const parser = createParser({
    onEvent: (event) => {
      if (cut) return
      seen++
      outcome.firstEvent ??= event.event
      if (event.id !== undefined) outcome.ids.push(Number(event.id))
      if (event.event === "message_start") {
        outcome.startAt ??= performance.now()
        outcome.messageId = (JSON.parse(event.data) as { message_id: string }).message_id
      } else if (event.event === "token" && outcome.firstTokenAt === undefined) {
        outcome.firstTokenAt = performance.now()
        firstTokensSeen++
      } else if (event.event === "message_end" || event.event === "error") {
        outcome.final = event.event
        if (event.event === "error") outcome.errorText = event.data
      }
      if (stopAfter !== undefined && seen >= stopAfter && outcome.final === undefined) cut = true
    }
  })
  const decoder = new TextDecoder()
  const reader = response.body!.getReader()
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      parser.feed(decoder.decode(value, { stream: true }))
      if (cut) {
        abort.abort()
        return "cut"
      }
    }
  } catch (error) {
    if (cut) return "cut"
    outcome.errorText ??= `reading: ${describe(error)}`
  }
  return "ended"
}

const runStream = async (
  n: number,
  first: string,
  second: string | undefined,
  sessionId: string,
  token: string,
  open: Set<number>
): Promise<StreamOutcome> => {
  const outcome: StreamOutcome = {
    status: undefined,
    requestedAt: performance.now(),
    headersAt: undefined,
    startAt: undefined,
    firstTokenAt: undefined,
    final: undefined,
    errorText: undefined,
    messageId: undefined,
    ids: [],
    firstEvent: undefined,
    resumed: false
  }
  const abort = new AbortController()
  const timeout = setTimeout(() => abort.abort(), streamTimeoutMs)
  try {
    const response = await fetch(`${first}/api/v1/chat/sessions/${sessionId}/messages`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}`, accept: "text/event-stream" },
      body: JSON.stringify({ message: question(n) }),
      signal: abort.signal
    })
    outcome.status = response.status
    outcome.headersAt = performance.now()
    if (response.status !== 200) {
      outcome.errorText = `POST answered ${response.status}: ${(await response.text()).slice(0, 300)}`
      return outcome
    }
    open.add(n)
    const ended = await readEvents(response, outcome, second === undefined ? undefined : settings.cutAfter, abort)
    if (ended === "cut" && second !== undefined && outcome.messageId !== undefined) {
      outcome.resumed = true
      const resumeAbort = new AbortController()
      const resumeTimeout = setTimeout(() => resumeAbort.abort(), streamTimeoutMs)
      try {
        const resumed = await fetch(`${second}/api/v1/chat/sessions/${sessionId}/messages/${outcome.messageId}/stream`, {
          headers: { authorization: `Bearer ${token}`, accept: "text/event-stream", "last-event-id": String(outcome.ids.at(-1)) },
          signal: resumeAbort.signal
        })
        if (resumed.status !== 200) {
          outcome.errorText = `resume answered ${resumed.status}: ${(await resumed.text()).slice(0, 300)}`
          return outcome
        }
        await readEvents(resumed, outcome, undefined, resumeAbort)
      } finally {
        clearTimeout(resumeTimeout)
      }
    }
  } catch (error) {
    outcome.errorText ??= describe(error)
  } finally {
    clearTimeout(timeout)
    open.delete(n)
  }
  return outcome
}

/** Whether the ids arrived once each, contiguous, ending with the final event. */
const resumeViolation = (outcome: StreamOutcome): string | undefined => {
  if (outcome.final === undefined) return "no final event"
  if (outcome.firstEvent !== "message_start") return `the first event was ${outcome.firstEvent}`
  if (!outcome.resumed) return "not cut and resumed"
  for (let i = 1; i < outcome.ids.length; i++) {
    if (outcome.ids[i] !== outcome.ids[i - 1]! + 1) return `ids ${outcome.ids[i - 1]} then ${outcome.ids[i]}`
  }
  return undefined
}

// --- Figures ---------------------------------------------------------------------------------

const percentile = (values: ReadonlyArray<number>, p: number): number | undefined => {
  if (values.length === 0) return undefined
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]
}
const ms = (value: number | undefined) => (value === undefined ? "n/a" : value.toFixed(1))
const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1)

interface RunResult {
  readonly streams: number
  readonly addedP50: number | undefined
  readonly addedP95: number | undefined
  readonly clientTtftP50: number | undefined
  readonly providerTtftP50: number | undefined
  readonly beforeProviderP50: number | undefined
  readonly relayP50: number | undefined
  readonly relayP95: number | undefined
  readonly idleRss: number
  readonly heldRss: number
  readonly openAtSample: number
  readonly peakRss: number
  readonly lost: number
  readonly errorEvents: number
  readonly httpFailures: number
  readonly violations: number | undefined
  readonly totalMs: number
  readonly loopDelayP99: number
  /** This process's CPU time over the run's wall time: the client, the relay and the fake provider together. */
  readonly benchCpuShare: number
  /** Basalt A's CPU time (from /proc) per stream. */
  readonly basaltCpuMsPerStream: number | undefined
  readonly unmatched: number
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

  let databaseEnv: Record<string, string> = { BASALT_DATA_DIR: join(workDir, "data") }
  if (databaseUrl !== undefined) {
    const name = `basalt_bench_chat_${process.pid}`
    await postgresStatements(databaseUrl, `CREATE DATABASE ${name}`)
    teardown.undo(async () => {
      await postgresStatements(databaseUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    })
    const url = new URL(databaseUrl)
    url.pathname = `/${name}`
    databaseEnv = { DATABASE_URL: url.toString() }
  }
  const env: Record<string, string> = {
    ...databaseEnv,
    LOG_LEVEL: settings.logLevel,
    BASALT_JWT_SECRET: randomBytes(32).toString("hex"),
    BASALT_ACCESS_TOKEN_TTL: "6 hours",
    BASALT_RATE_LIMIT_PRINCIPAL: "off",
    BASALT_CHAT_URL: provider.baseUrl,
    BASALT_CHAT_MODELS: fakeChatModel,
    // Held answers are silent for up to the hold: longer than it, so Basalt does not give up on them.
    BASALT_CHAT_IDLE_TIMEOUT: `${Math.ceil(settings.holdTimeoutMs / 1_000) + 60} seconds`
  }
  const first = await startBasalt("Basalt A", env, workDir)
  const second = settings.processes === 2 ? await startBasalt("Basalt B", env, workDir) : undefined
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

  console.log(
    [
      "Chat streaming benchmark",
      "",
      `cpu:        ${availableParallelism()} cores, load average ${loadavg()
        .map((n) => n.toFixed(2))
        .join(" ")} before the run`,
      `Basalt:     ${databaseUrl === undefined ? "PGlite (in Basalt's process: its memory counts)" : "PostgreSQL"}, ${settings.processes} process${settings.processes === 1 ? "" : "es"}, LOG_LEVEL=${settings.logLevel}, rate limit off`,
      `provider:   the tests' fake in this process behind a timing relay: first token after ${settings.providerTtftMs} ms, then ${settings.tokens} tokens every ${settings.tokenMs} ms; held after ${settings.holdAfter} tokens until all streams are open`,
      `documents:  ${settings.docs} indexed`,
      settings.processes === 2 ? `resume:     each stream cut after ${settings.cutAfter} events on A, resumed on B with Last-Event-ID` : "",
      ""
    ]
      .filter((line, i, lines) => line !== "" || lines[i - 1] !== "")
      .join("\n")
  )

  // Retrieval, timed apart: the same question through POST /api/v1/search, its server-side time.
  const searchTimes: Array<number> = []
  for (let i = 0; i < settings.searches; i++) {
    const { headers } = await request(base, "/api/v1/search", { method: "POST", body: { query: question(i) }, token: jwt })
    searchTimes.push(Number(headers.get("x-process-time")))
  }
  const retrievalP50 = percentile(searchTimes, 0.5)!
  console.log(`retrieval: POST /api/v1/search X-Process-Time p50 ${ms(retrievalP50)} ms, p95 ${ms(percentile(searchTimes, 0.95))} ms`)

  const results: Array<RunResult> = []
  let failures = 0
  let questionBase = 0
  for (const count of streamCounts) {
    const sessions: Array<string> = []
    for (let i = 0; i < count; i++) {
      sessions.push(
        (await request(base, "/api/v1/chat/sessions", { method: "POST", body: { title: `bench ${i}` }, token: jwt })).body["id"]
      )
    }
    // Idle: the median of a few readings a second apart, the sessions made.
    await sleep(1_000)
    const idleReadings: Array<number> = []
    for (let i = 0; i < 5; i++) {
      idleReadings.push(rssOf(first.pid))
      await sleep(200)
    }
    const idleRss = percentile(idleReadings, 0.5)!

    provider.arm()
    const open = new Set<number>()
    let peakRss = idleRss
    const sampler = setInterval(() => {
      const rss = rssOf(first.pid)
      if (rss > peakRss) peakRss = rss
    }, 100)
    const loopDelay = monitorEventLoopDelay({ resolution: 10 })
    loopDelay.enable()
    firstTokensSeen = 0
    const started = performance.now()
    const cpuBefore = process.cpuUsage()
    const basaltCpuBefore = first.server.cpuTimeMs()
    const numbers = Array.from({ length: count }, (_, i) => questionBase + i)
    const running = numbers.map((n, i) => runStream(n, base, second?.server.baseUrl, sessions[i]!, jwt, open))

    // All held at the provider and each past its first token at the client (or the hold's limit):
    // read memory with every stream open, then let them finish.
    const holdDeadline = performance.now() + settings.holdTimeoutMs
    while ((provider.held() < count || firstTokensSeen < count) && performance.now() < holdDeadline) await sleep(100)
    await sleep(500)
    const heldReadings: Array<number> = []
    for (let i = 0; i < 5; i++) {
      heldReadings.push(rssOf(first.pid))
      await sleep(100)
    }
    const heldRss = percentile(heldReadings, 0.5)!
    const openAtSample = open.size
    const heldCount = provider.held()
    provider.release()
    const outcomes = await Promise.all(running)
    // Interrupted: the cleanup has stopped Basalt under the streams, which says nothing about it.
    if (teardown.isInterrupted()) return 130
    const totalMs = performance.now() - started
    const cpu = process.cpuUsage(cpuBefore)
    const basaltCpuAfter = first.server.cpuTimeMs()
    clearInterval(sampler)
    loopDelay.disable()
    questionBase += count

    const added: Array<number> = []
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
      added.push(client - own - retrievalP50)
    }
    const lost = outcomes.filter((o) => o.status === 200 && o.final === undefined)
    const errorEvents = outcomes.filter((o) => o.final === "error")
    const httpFailures = outcomes.filter((o) => o.status !== 200)
    const violations = second === undefined ? undefined : outcomes.filter((o) => resumeViolation(o) !== undefined)
    for (const [label, list] of [
      ["lost (no final event)", lost],
      ["ended in an error event", errorEvents],
      ["failed before streaming", httpFailures],
      ["resume violations", violations ?? []]
    ] as const) {
      if (list.length === 0) continue
      failures++
      const kinds = new Map<string, number>()
      for (const o of list) {
        const key = (label === "resume violations" ? (resumeViolation(o) ?? "") : (o.errorText ?? "(no error text)")).slice(0, 200)
        kinds.set(key, (kinds.get(key) ?? 0) + 1)
      }
      console.log(`${count} streams: ${list.length} ${label}:`)
      for (const [text, times] of kinds) console.log(`  ${times}× ${text}`)
    }
    if (heldCount < count || openAtSample < count)
      console.log(
        `${count} streams: the hold timed out with ${heldCount} held at the provider and ${openAtSample} open at the client; memory is over those open`
      )
    const result: RunResult = {
      streams: count,
      addedP50: percentile(added, 0.5),
      addedP95: percentile(added, 0.95),
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
      unmatched: provider.unmatched()
    }
    results.push(result)
    console.log(
      `${count} streams: added TTFT p50 ${ms(result.addedP50)} ms, p95 ${ms(result.addedP95)} ms; ${mb(heldRss - idleRss)} MB over ${openAtSample} open; ` +
        `${lost.length} lost; ${(totalMs / 1_000).toFixed(1)} s`
    )
    for (const basalt of [first, second]) {
      if (basalt === undefined) continue
      const exited = basalt.server.hasExited() ? await basalt.server.exited : undefined
      if (exited === undefined && lost.length + errorEvents.length + httpFailures.length === 0) continue
      if (exited !== undefined) {
        failures++
        console.log(`${count} streams: ${basalt.server.name} EXITED during the run (code ${exited.code}, signal ${exited.signal})`)
      }
      console.log(`${basalt.server.name}'s last log lines (whole log kept in ${keepLog(basalt.server)}):\n${logTail(basalt.server, 30)}`)
    }
    if (first.server.hasExited() || second?.server.hasExited() === true) break
  }

  const header = [
    "streams",
    "added TTFT p50 ms",
    "added TTFT p95 ms",
    "client TTFT p50 ms",
    "provider TTFT p50 ms",
    "request→provider p50 ms",
    "provider→client p50 / p95 ms",
    "RSS idle MB",
    "RSS open MB",
    "open at reading",
    "KB per stream",
    "RSS peak MB",
    "lost",
    "error events",
    "HTTP failures",
    ...(second === undefined ? [] : ["resume violations"]),
    "total s",
    "Basalt A CPU ms/stream",
    "bench loop delay p99 ms",
    "bench CPU %"
  ]
  const rows = results.map((r) => [
    String(r.streams),
    ms(r.addedP50),
    ms(r.addedP95),
    ms(r.clientTtftP50),
    ms(r.providerTtftP50),
    ms(r.beforeProviderP50),
    `${ms(r.relayP50)} / ${ms(r.relayP95)}`,
    mb(r.idleRss),
    mb(r.heldRss),
    String(r.openAtSample),
    r.openAtSample === 0 ? "n/a" : ((r.heldRss - r.idleRss) / r.openAtSample / 1024).toFixed(1),
    mb(r.peakRss),
    String(r.lost),
    String(r.errorEvents),
    String(r.httpFailures),
    ...(r.violations === undefined ? [] : [String(r.violations)]),
    (r.totalMs / 1_000).toFixed(1),
    ms(r.basaltCpuMsPerStream),
    r.loopDelayP99.toFixed(1),
    (r.benchCpuShare * 100).toFixed(0)
  ])
  const line = (cells: ReadonlyArray<string>) => `| ${cells.join(" | ")} |`
  console.log(
    `\n${[line(header), line(header.map((_, i) => (i === 0 ? "---" : "---:"))), ...rows.map(line)].join("\n")}\n\n` +
      `Added TTFT = the client's time to its first token event − the provider's own time to its first token (per request, from\n` +
      `the relay) − retrieval's p50 (${ms(retrievalP50)} ms, POST /api/v1/search's X-Process-Time, timed apart). RSS is Basalt A's VmRSS,\n` +
      `idle before the streams and with them held open; KB per stream = (open − idle) / open.` +
      (results.some((r) => r.unmatched > 0) ? ` Provider requests not tied to a question: ${results.at(-1)!.unmatched}.` : "")
  )

  const at100 = results.find((r) => r.streams === 100)
  const at1000 = results.find((r) => r.streams === 1000)
  const verdict = (met: boolean | undefined) => (met === undefined ? "not measured" : met ? "met" : "NOT met")
  const lostTotal = results.reduce((sum, r) => sum + r.lost + r.errorEvents + r.httpFailures, 0)
  const violationTotal = second === undefined ? undefined : results.reduce((sum, r) => sum + (r.violations ?? 0), 0)
  console.log(
    `\nGoals (issue 14): added TTFT p95 < 30 ms at 100: ${verdict(at100?.addedP95 === undefined ? undefined : at100.addedP95 < 30)}` +
      (at100?.addedP95 === undefined ? "" : ` (${ms(at100.addedP95)})`) +
      `; 1,000 open streams add under 300 MB RSS: ${verdict(at1000 === undefined ? undefined : at1000.heldRss - at1000.idleRss < 300 * 1024 * 1024 && at1000.openAtSample === 1000)}` +
      (at1000 === undefined
        ? ""
        : ` (${mb(at1000.heldRss - at1000.idleRss)} MB over idle, ${mb(at1000.heldRss)} MB in all, ${at1000.openAtSample} open)`) +
      `; no stream lost: ${verdict(lostTotal === 0)} (${lostTotal})` +
      `; resume exactly once: ${verdict(violationTotal === undefined ? undefined : violationTotal === 0)}` +
      (violationTotal === undefined ? "" : ` (${violationTotal} violations)`)
  )
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
