/**
 * What Basalt's HTTP stack costs: GET /health and GET /ready on a fresh Basalt, against a bare
 * node:http server answering the same /health body and the smallest server on the same Effect
 * platform stack (the framework's floor), all started as child processes on
 * 127.0.0.1 and loaded in turn by autocannon from this process (a warm-up run, then the
 * measured run). Besides throughput and latency it reports the CPU time the server spent per
 * request (Linux): on a shared or small machine, where the load generator competes with the
 * server for cores, that figure moves far less from run to run than req/s does.
 *
 *   npm run bench:http
 *   BENCH_CONNECTIONS=100 BENCH_DURATION=20 npm run bench:http
 *
 * Settings (environment):
 *   BENCH_CONNECTIONS  concurrent connections (50)
 *   BENCH_DURATION     seconds each measured run lasts (10)
 *   BENCH_WARMUP       seconds each warm-up run lasts (3)
 *   BENCH_LOG_LEVEL    Basalt's LOG_LEVEL (info, Basalt's default; `warn` drops the access log)
 *   BENCH_RATE_LIMIT_PRINCIPAL  Basalt's per-principal limit (default: on, out of reach, so its
 *                      cost is measured; `off` measures /users/me without it)
 *
 * GET /api/v1/users/me is measured with an access token and with an API key of an account the
 * script creates on the fresh Basalt first (issue: at least half of /health's throughput).
 *
 * Exits 1 if a run saw errors or non-2xx responses or Basalt did not exit 0 on SIGTERM,
 * 2 if the servers could not be started or the run overran its time limit.
 */
import autocannon, { type Result } from "autocannon"
import { mkdtempSync, rmSync } from "node:fs"
import { availableParallelism, cpus, freemem, loadavg, release, tmpdir, totalmem } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import {
  freePort,
  logTail,
  type ServerProcess,
  startServerProcess,
  stopServerProcess,
  waitUntilAnswering
} from "./ServerProcess.ts"

const positiveNumber = (name: string, fallback: number, integer: boolean): number => {
  const text = process.env[name]
  if (text === undefined || text.trim() === "") return fallback
  const value = Number(text)
  if (!(value > 0) || (integer && !Number.isInteger(value))) {
    process.stderr.write(`bench: ${name} must be a ${integer ? "whole " : ""}number greater than 0, got "${text}"\n`)
    process.exit(2)
  }
  return value
}

const settings = {
  connections: positiveNumber("BENCH_CONNECTIONS", 50, true),
  durationSeconds: positiveNumber("BENCH_DURATION", 10, false),
  warmupSeconds: positiveNumber("BENCH_WARMUP", 3, false),
  basaltLogLevel: process.env["BENCH_LOG_LEVEL"]?.trim() || "info"
}

const repoRoot = fileURLToPath(new URL("..", import.meta.url))
const startupTimeoutMs = 90_000
// Basalt drains for up to BASALT_SHUTDOWN_GRACE (10 s by default) before it exits.
const stopGraceMs = 20_000

interface Target {
  readonly label: string
  readonly server: "bare" | "effect" | "basalt"
  readonly path: string
  /** Which credential to send, made on the fresh Basalt before measuring. */
  readonly credential?: "jwt" | "apiKey"
}

const baseline: Target = { label: "bare node:http /health", server: "bare", path: "/health" }
const targets: ReadonlyArray<Target> = [
  baseline,
  { label: "minimal Effect platform server /health", server: "effect", path: "/health" },
  { label: "Basalt GET /health", server: "basalt", path: "/health" },
  { label: "Basalt GET /ready", server: "basalt", path: "/ready" },
  { label: "Basalt GET /api/v1/users/me (JWT)", server: "basalt", path: "/api/v1/users/me", credential: "jwt" },
  { label: "Basalt GET /api/v1/users/me (API key)", server: "basalt", path: "/api/v1/users/me", credential: "apiKey" }
]

interface Measurement {
  readonly target: Target
  readonly requestsPerSecond: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly serverCpuUsPerRequest: number | undefined
  readonly failures: number
  readonly statusCodes: string
}

const measurementOf = (target: Target, result: Result, serverCpuMs: number | undefined): Measurement => ({
  target,
  requestsPerSecond: result.requests.mean,
  p50Ms: result.latency.p50,
  p99Ms: result.latency.p99,
  serverCpuUsPerRequest: serverCpuMs === undefined || result.requests.total === 0
    ? undefined
    : (serverCpuMs * 1_000) / result.requests.total,
  failures: result.errors + result.non2xx,
  statusCodes: Object.entries(result.statusCodeStats).map(([code, { count }]) => `${code}×${count}`).join(" ")
})

// The whole run's time limit: server start-up, every warm-up and measured run, and shutdown.
const timeLimitMs = 2 * startupTimeoutMs +
  targets.length * (settings.warmupSeconds + settings.durationSeconds + 15) * 1_000 +
  stopGraceMs + 10_000

const dataDir = mkdtempSync(join(tmpdir(), "basalt-bench-"))
const running: Array<ServerProcess> = []

/** For the paths that cannot wait for a graceful stop: a signal, or the time limit. */
const abandon = (reason: string, exitCode: number): never => {
  process.stderr.write(`bench: ${reason}; killing the servers\n`)
  for (const server of running) server.kill("SIGKILL")
  rmSync(dataDir, { recursive: true, force: true, maxRetries: 3 })
  process.exit(exitCode)
}

const watchdog = setTimeout(() => abandon(`still running after ${timeLimitMs / 1_000} s`, 2), timeLimitMs)
watchdog.unref()
// Without these the servers would outlive an interrupted or killed run.
process.once("SIGINT", () => abandon("interrupted", 130))
process.once("SIGTERM", () => abandon("terminated", 143))

/** Read once, so the console and Markdown copies agree. */
const describeMachine = (): ReadonlyArray<string> => {
  const cores = cpus()
  const gib = (bytes: number) => (bytes / 1024 ** 3).toFixed(1)
  return [
    `cpu:        ${cores.length} logical cores (${availableParallelism()} available), ${cores[0]?.model.trim() ?? "unknown model"}`,
    `memory:     ${gib(totalmem())} GiB total, ${gib(freemem())} GiB free`,
    `os:         ${process.platform} ${release()} ${process.arch}, load average ${loadavg().map((n) => n.toFixed(2)).join(" ")}`,
    `node:       ${process.version}`,
    `load:       autocannon, ${settings.connections} connections, no pipelining, ` +
    `${settings.warmupSeconds} s warm-up + ${settings.durationSeconds} s measured per row, ` +
    `in this process (it shares the cores with the server under load)`,
    `Basalt:     LOG_LEVEL=${settings.basaltLogLevel}, PGlite in a fresh temp dir`
  ]
}

const load = (url: string, seconds: number, headers: Record<string, string> = {}) =>
  autocannon({ url, connections: settings.connections, duration: seconds, pipelining: 1, headers })

/** The first account of the fresh Basalt (an admin), signed in, and an API key of it. */
const credentialsOn = async (baseUrl: string): Promise<Record<"jwt" | "apiKey", string>> => {
  const post = async (path: string, body: unknown, token?: string) => {
    const response = await fetch(baseUrl + path, {
      method: "POST",
      headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body)
    })
    if (!response.ok) throw new Error(`POST ${path} answered ${response.status}: ${await response.text()}`)
    return response.json() as Promise<Record<string, any>>
  }
  const account = { email: "bench@example.com", password: "bench password long" }
  await post("/api/v1/auth/register", { ...account, display_name: "Bench" })
  const { access_token } = await post("/api/v1/auth/login", account)
  const { secret } = await post("/api/v1/api-keys", { name: "bench" }, access_token)
  return { jwt: access_token, apiKey: secret }
}

const ratio = (value: number | undefined, base: number | undefined): string =>
  value !== undefined && base !== undefined && base > 0 ? `${(value / base).toFixed(2)}×` : "n/a"

const columns = [
  "target",
  "req/s (mean)",
  "p50 ms",
  "p99 ms",
  "server CPU µs/req",
  "req/s vs bare",
  "p50 vs bare",
  "p99 vs bare",
  "CPU/req vs bare"
] as const

const rowsOf = (measurements: ReadonlyArray<Measurement>, bare: Measurement): ReadonlyArray<ReadonlyArray<string>> =>
  measurements.map((m) => [
    m.target.label,
    m.requestsPerSecond.toFixed(0),
    m.p50Ms.toFixed(0),
    m.p99Ms.toFixed(0),
    m.serverCpuUsPerRequest?.toFixed(0) ?? "n/a",
    ratio(m.requestsPerSecond, bare.requestsPerSecond),
    ratio(m.p50Ms, bare.p50Ms),
    ratio(m.p99Ms, bare.p99Ms),
    ratio(m.serverCpuUsPerRequest, bare.serverCpuUsPerRequest)
  ])

const plainTable = (rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const all = [columns, ...rows]
  const widths = columns.map((_, i) => Math.max(...all.map((row) => row[i]?.length ?? 0)))
  const line = (row: ReadonlyArray<string>) =>
    row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join("  ")
  return [line(columns), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n")
}

const markdownTable = (rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const line = (row: ReadonlyArray<string>) => `| ${row.join(" | ")} |`
  return [line(columns), `| --- |${" ---: |".repeat(columns.length - 1)}`, ...rows.map(line)].join("\n")
}

const main = async (): Promise<number> => {
  /** Starts one server on a free loopback port, with only the environment it is given. */
  const start = async (name: string, script: string, logName: string, env: Record<string, string> = {}) => {
    const port = await freePort()
    const server = startServerProcess({
      name,
      script,
      cwd: repoRoot,
      port,
      env: { PATH: process.env["PATH"] ?? "", HOST: "127.0.0.1", PORT: String(port), ...env },
      logFile: join(dataDir, logName)
    })
    running.push(server)
    return server
  }
  const bare = await start("bare node:http server", "bench/BareServer.ts", "bare.log")
  const effect = await start("minimal Effect platform server", "bench/EffectFloorServer.ts", "effect.log")
  const basalt = await start("Basalt", "src/main.ts", "basalt.log", {
    BASALT_DATA_DIR: join(dataDir, "data"),
    LOG_LEVEL: settings.basaltLogLevel,
    // On, so that its cost (a database statement per request) is measured, but out of reach.
    BASALT_RATE_LIMIT_PRINCIPAL: process.env["BENCH_RATE_LIMIT_PRINCIPAL"] ?? "1000000000/1s"
  })

  let exitCode = 0
  try {
    await Promise.all([bare, effect, basalt].map((server) => waitUntilAnswering(server, "/health", startupTimeoutMs)))
    const machine = describeMachine()
    console.log(["HTTP benchmark: Basalt vs bare node:http", "", ...machine, ""].join("\n"))

    const measurements: Array<Measurement> = []
    const credentials = await credentialsOn(basalt.baseUrl)
    for (const target of targets) {
      const server = { bare, effect, basalt }[target.server]
      const url = server.baseUrl + target.path
      const headers: Record<string, string> = target.credential === undefined
        ? {}
        : { authorization: `Bearer ${credentials[target.credential]}` }
      process.stdout.write(`${target.label}: warm-up ${settings.warmupSeconds} s, measuring ${settings.durationSeconds} s... `)
      await load(url, settings.warmupSeconds, headers)
      const cpuBefore = server.cpuTimeMs()
      const result = await load(url, settings.durationSeconds, headers)
      const cpuAfter = server.cpuTimeMs()
      const serverCpuMs = cpuBefore === undefined || cpuAfter === undefined ? undefined : cpuAfter - cpuBefore
      const measurement = measurementOf(target, result, serverCpuMs)
      measurements.push(measurement)
      console.log(`${measurement.requestsPerSecond.toFixed(0)} req/s [${measurement.statusCodes || "no responses"}]`)
      if (measurement.failures > 0) exitCode = 1
    }

    const bareMeasurement = measurements.find((m) => m.target === baseline)!
    const rows = rowsOf(measurements, bareMeasurement)
    console.log(`\n${plainTable(rows)}\n`)
    console.log(
      "Latency is autocannon's, in whole milliseconds. Server CPU is the server process's user + system time\n" +
        "during the measured run over the requests it completed. \"vs bare\" is Basalt's figure over the bare server's."
    )
    for (const m of measurements.filter((m) => m.failures > 0)) {
      console.log(`WARNING: ${m.target.label} had ${m.failures} errors or non-2xx responses (${m.statusCodes})`)
    }
    const health = measurements.find((m) => m.target.server === "basalt" && m.target.path === "/health")!
    const healthRatio = health.requestsPerSecond / bareMeasurement.requestsPerSecond
    const floor = measurements.find((m) => m.target.server === "effect")!
    console.log(
      `Goal: Basalt /health at least 0.60× bare throughput: ${healthRatio >= 0.6 ? "met" : "NOT met"} (${healthRatio.toFixed(2)}×); ` +
        `the minimal Effect platform server reaches ${(floor.requestsPerSecond / bareMeasurement.requestsPerSecond).toFixed(2)}×, ` +
        `Basalt ${(health.requestsPerSecond / floor.requestsPerSecond).toFixed(2)}× of that`
    )
    for (const me of measurements.filter((m) => m.target.credential !== undefined)) {
      const ratio = me.requestsPerSecond / health.requestsPerSecond
      const p99 = me.p99Ms
      console.log(
        `Goal: ${me.target.label} at least 0.50× Basalt /health throughput and p99 under 10 ms: ` +
          `throughput ${ratio >= 0.5 ? "met" : "NOT met"} (${ratio.toFixed(2)}×), p99 ${p99 < 10 ? "met" : "NOT met"} (${p99} ms; ` +
          `/health's own p99 is ${health.p99Ms} ms, and ${settings.connections} connections at ${Math.round(health.requestsPerSecond)} req/s ` +
          `queue ${(settings.connections / health.requestsPerSecond * 1000).toFixed(1)} ms on average by Little's law)`
      )
    }
    console.log(`\nMarkdown, for the README:\n\n${machine.map((line) => `    ${line}`).join("\n")}\n\n${markdownTable(rows)}\n`)
  } finally {
    const [bareStop, , basaltStop] = await Promise.all([bare, effect, basalt].map((server) => stopServerProcess(server, stopGraceMs)))
    if (bareStop!.forced) console.log("WARNING: the bare server ignored SIGTERM and was killed")
    if (basaltStop!.code === 0) {
      console.log("Basalt stopped on SIGTERM with exit code 0.")
    } else {
      exitCode = 1
      const how = basaltStop!.forced ? `ignored SIGTERM for ${stopGraceMs / 1_000} s and was killed` : "stopped on SIGTERM"
      console.log(`WARNING: Basalt ${how} with exit code ${basaltStop!.code} (signal ${basaltStop!.signal}); its last log lines:\n${logTail(basalt)}`)
    }
  }
  return exitCode
}

main().then(
  (exitCode) => {
    rmSync(dataDir, { recursive: true, force: true, maxRetries: 3 })
    clearTimeout(watchdog)
    process.exitCode = exitCode
  },
  (error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`)
    rmSync(dataDir, { recursive: true, force: true, maxRetries: 3 })
    clearTimeout(watchdog)
    process.exitCode = 2
  }
)
