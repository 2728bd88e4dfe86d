/**
 * What Basalt's HTTP stack costs, against what it competes with, measured in one run:
 *
 * - bare node:http answering /health (bench/BareServer.ts): the machine's ceiling;
 * - the minimal Effect 4.1 server of Basalt's shape (bench/EffectFloorServer.ts): the framework's floor;
 * - Basalt (src/main.ts) on PostgreSQL with the per-principal rate limit on, with 1 worker and, through
 *   node:cluster, 2 workers (bench/BasaltWorkers.ts);
 * - the FastAPI peer (../shared/peers/fastapi: uvicorn, uvloop, httptools, asyncpg) with 1 and 2
 *   workers, started when its Python and packages are present (BENCH_PEER_PYTHON, default python3).
 *
 * Every server runs in its own process(es) on 127.0.0.1 for the whole run. A native load generator
 * (wrk, from Debian's `wrk` package) loads one target at a time from its own process; without wrk,
 * autocannon's command line in a separate process. Targets are interleaved: each round measures every
 * target once, in turn, so a slow minute of the shared machine falls on all of them alike. Per target:
 * requests per second, p50 and p99 latency and the CPU time the server's processes (the process and
 * its workers, from /proc) spent per request; medians over the rounds, and the ratios.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm run bench:http
 *   BENCH_ROUNDS=5 BENCH_DURATION=20 npm run bench:http
 *
 * Settings (environment):
 *   DATABASE_URL       a PostgreSQL server (any database; the bench creates and drops its own). Unset:
 *                      Basalt on PGlite, 1 worker only, and no FastAPI peer (it needs Postgres).
 *   BENCH_CONNECTIONS  concurrent connections (50)
 *   BENCH_DURATION     seconds of each measurement (10)
 *   BENCH_ROUNDS       rounds over all targets (3)
 *   BENCH_WARMUP       seconds of load each target gets once before the first round (3)
 *   BENCH_WORKERS      worker counts measured for Basalt and the peer (1,2)
 *   BENCH_LOAD         wrk or autocannon (wrk when it is on PATH)
 *   BENCH_LOG_LEVEL    Basalt's LOG_LEVEL (info: one access line per request, like uvicorn's access log)
 *   BENCH_RATE_LIMIT_PRINCIPAL  Basalt's per-principal limit (default: on, out of reach, so its cost is
 *                      measured; `off` measures without it)
 *   BENCH_PEER_PYTHON  the Python with the peer's packages (python3; e.g. a venv's bin/python)
 *   BENCH_PEER_CACHE_SECONDS  the peer's CALLER_CACHE_SECONDS (0: it verifies and queries per request;
 *                      2: Basalt's CallerCache)
 *
 * Exits 1 if a measurement saw errors or non-2xx responses or a server did not stop cleanly,
 * 2 if the servers could not be started or the run overran its time limit.
 */
import { execFile, spawnSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { availableParallelism, cpus, freemem, loadavg, release, tmpdir, totalmem } from "node:os"
import { delimiter, join } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { credentialsOn } from "./Credentials.ts"
import { postgresStatements } from "./Postgres.ts"
import { freePort, logTail, type ServerProcess, startServerProcess, stopServerProcess, waitUntilAnswering } from "./ServerProcess.ts"

const run = promisify(execFile)

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

const onPath = (program: string) => (process.env["PATH"] ?? "").split(delimiter).some((dir) => dir !== "" && existsSync(join(dir, program)))

const repoRoot = fileURLToPath(new URL("..", import.meta.url))
const peerDir = fileURLToPath(new URL("../../shared/peers/fastapi/", import.meta.url))
const databaseUrl = process.env["DATABASE_URL"]?.trim() || undefined

const settings = {
  connections: positiveNumber("BENCH_CONNECTIONS", 50, true),
  durationSeconds: positiveNumber("BENCH_DURATION", 10, true),
  rounds: positiveNumber("BENCH_ROUNDS", 3, true),
  warmupSeconds: positiveNumber("BENCH_WARMUP", 3, true),
  workers: (process.env["BENCH_WORKERS"] ?? "1,2")
    .split(",")
    .map((text) => Number(text.trim()))
    .filter((n) => Number.isInteger(n) && n > 0)
    .filter((n) => n === 1 || databaseUrl !== undefined),
  load: (process.env["BENCH_LOAD"]?.trim() || (onPath("wrk") ? "wrk" : "autocannon")) as "wrk" | "autocannon",
  basaltLogLevel: process.env["BENCH_LOG_LEVEL"]?.trim() || "info",
  rateLimitPrincipal: process.env["BENCH_RATE_LIMIT_PRINCIPAL"] ?? "1000000000/1s",
  peerPython: process.env["BENCH_PEER_PYTHON"]?.trim() || "python3",
  peerCacheSeconds: process.env["BENCH_PEER_CACHE_SECONDS"]?.trim() || "0"
}
if (settings.load !== "wrk" && settings.load !== "autocannon") {
  process.stderr.write(`bench: BENCH_LOAD must be wrk or autocannon, got "${settings.load}"\n`)
  process.exit(2)
}

const startupTimeoutMs = 120_000
// Basalt drains for up to BASALT_SHUTDOWN_GRACE (10 s by default) before it exits.
const stopGraceMs = 20_000

type Route = "health" | "me"
type Credential = "jwt" | "apiKey" | "floor" | "peer"

interface Target {
  readonly label: string
  /** Which server answers: the key of `servers` below. */
  readonly server: string
  readonly route: Route
  readonly credential?: Credential
}

interface Sample {
  readonly requestsPerSecond: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly cpuUsPerRequest: number | undefined
  readonly requests: number
  readonly failures: number
}

const paths: Record<Route, string> = { health: "/health", me: "/api/v1/users/me" }

// ---------------------------------------------------------------------------------------------
// Load generation: one process per measurement, its figures read back as JSON.

const workDir = mkdtempSync(join(tmpdir(), "basalt-bench-http-"))
const wrkScript = join(workDir, "report.lua")
writeFileSync(
  wrkScript,
  `done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format('\\n{"requests":%d,"durationUs":%d,"p50Us":%d,"p99Us":%d,"errors":%d,"non2xx":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), errors, summary.errors.status))
end
`
)

interface LoadResult {
  readonly requests: number
  readonly requestsPerSecond: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly failures: number
}

const loadWithWrk = async (url: string, seconds: number, headers: Record<string, string>): Promise<LoadResult> => {
  const args = ["-t1", `-c${settings.connections}`, `-d${seconds}s`, "--latency", "-s", wrkScript, url]
  for (const [name, value] of Object.entries(headers)) args.unshift("-H", `${name}: ${value}`)
  const { stdout } = await run("wrk", args, { maxBuffer: 1 << 20 })
  const line = stdout
    .trim()
    .split("\n")
    .findLast((text) => text.startsWith("{"))
  if (line === undefined) throw new Error(`wrk printed no report:\n${stdout}`)
  const report = JSON.parse(line) as Record<string, number>
  return {
    requests: report["requests"]!,
    requestsPerSecond: report["requests"]! / (report["durationUs"]! / 1e6),
    p50Ms: report["p50Us"]! / 1000,
    p99Ms: report["p99Us"]! / 1000,
    failures: report["errors"]! + report["non2xx"]!
  }
}

const loadWithAutocannon = async (url: string, seconds: number, headers: Record<string, string>): Promise<LoadResult> => {
  const args = [join(repoRoot, "node_modules/autocannon/autocannon.js"), "-c", String(settings.connections), "-d", String(seconds), "-j"]
  for (const [name, value] of Object.entries(headers)) args.push("-H", `${name}=${value}`)
  args.push(url)
  const { stdout } = await run(process.execPath, args, { maxBuffer: 16 << 20 })
  const report = JSON.parse(stdout) as {
    requests: { total: number; average: number }
    latency: { p50: number; p99: number }
    errors: number
    non2xx: number
  }
  return {
    requests: report.requests.total,
    requestsPerSecond: report.requests.average,
    p50Ms: report.latency.p50,
    p99Ms: report.latency.p99,
    failures: report.errors + report.non2xx
  }
}

const load = settings.load === "wrk" ? loadWithWrk : loadWithAutocannon

// ---------------------------------------------------------------------------------------------
// The servers.

const running: Array<ServerProcess> = []
const databases: Array<string> = []

const dropDatabases = async () => {
  if (databaseUrl === undefined) return
  for (const name of databases.splice(0)) {
    await postgresStatements(databaseUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined)
  }
}

const freshDatabase = async (purpose: string): Promise<string> => {
  const name = `basalt_bench_http_${purpose}_${process.pid}`
  await postgresStatements(databaseUrl!, `CREATE DATABASE ${name}`)
  databases.push(name)
  const url = new URL(databaseUrl!)
  url.pathname = `/${name}`
  return url.toString()
}

/** For the paths that cannot wait for a graceful stop: a signal, or the time limit. */
const abandon = (reason: string, exitCode: number): void => {
  process.stderr.write(`bench: ${reason}; killing the servers\n`)
  for (const server of running) server.kill("SIGKILL")
  void dropDatabases().finally(() => {
    rmSync(workDir, { recursive: true, force: true, maxRetries: 3 })
    process.exit(exitCode)
  })
}

const start = async (
  name: string,
  logName: string,
  env: Record<string, string>,
  program: { readonly script: string } | { readonly command: { readonly file: string; readonly args: ReadonlyArray<string> } },
  cwd = repoRoot
) => {
  const port = await freePort()
  const server = startServerProcess({
    name,
    ...program,
    cwd,
    port,
    env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? tmpdir(), HOST: "127.0.0.1", PORT: String(port), ...env },
    logFile: join(workDir, logName)
  })
  running.push(server)
  return server
}

/** Why the peer cannot run here, or undefined when its Python has every package. */
const peerMissing = (): string | undefined => {
  if (databaseUrl === undefined) return "DATABASE_URL is not set (the peer reads PostgreSQL)"
  if (!existsSync(join(peerDir, "app.py"))) return `no peer at ${peerDir}`
  const probe = spawnSync(settings.peerPython, ["-c", "import fastapi, uvicorn, uvloop, httptools, jwt, asyncpg"], {
    encoding: "utf8"
  })
  if (probe.error !== undefined) return `${settings.peerPython} cannot be run (${probe.error.message})`
  if (probe.status !== 0) {
    const missing = /No module named '([^']+)'/.exec(probe.stderr)?.[1] ?? "a package"
    return `${settings.peerPython} lacks ${missing}: set BENCH_PEER_PYTHON to a Python with the packages of ${peerDir}requirements.txt (its README has the venv recipe)`
  }
  return undefined
}

// ---------------------------------------------------------------------------------------------
// Figures.

const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

interface Summary {
  readonly target: Target
  readonly requestsPerSecond: number
  readonly requestsPerSecondRange: readonly [number, number]
  readonly p50Ms: number
  readonly p99Ms: number
  readonly cpuUsPerRequest: number | undefined
  readonly failures: number
}

const summarize = (target: Target, samples: ReadonlyArray<Sample>): Summary => {
  const rates = samples.map((sample) => sample.requestsPerSecond)
  const cpu = samples.flatMap((sample) => (sample.cpuUsPerRequest === undefined ? [] : [sample.cpuUsPerRequest]))
  return {
    target,
    requestsPerSecond: median(rates),
    requestsPerSecondRange: [Math.min(...rates), Math.max(...rates)],
    p50Ms: median(samples.map((sample) => sample.p50Ms)),
    p99Ms: median(samples.map((sample) => sample.p99Ms)),
    cpuUsPerRequest: cpu.length === samples.length ? median(cpu) : undefined,
    failures: samples.reduce((sum, sample) => sum + sample.failures, 0)
  }
}

const ratio = (value: number | undefined, base: number | undefined): string =>
  value !== undefined && base !== undefined && base > 0 ? `${(value / base).toFixed(2)}×` : "n/a"

const columns = [
  "target",
  "req/s",
  "req/s range",
  "p50 ms",
  "p99 ms",
  "CPU µs/req",
  "req/s vs peer",
  "p99 vs peer",
  "CPU/req vs peer"
] as const

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

const describeMachine = (loadGenerator: string, peer: string, loadBefore: ReadonlyArray<number>): ReadonlyArray<string> => {
  const cores = cpus()
  const gib = (bytes: number) => (bytes / 1024 ** 3).toFixed(1)
  return [
    `cpu:        ${cores.length} logical cores (${availableParallelism()} available), ${cores[0]?.model.trim() ?? "unknown model"}`,
    `memory:     ${gib(totalmem())} GiB total, ${gib(freemem())} GiB free`,
    `os:         ${process.platform} ${release()} ${process.arch}, load average before the run ${loadBefore.map((n) => n.toFixed(2)).join(" ")}`,
    `node:       ${process.version} (every Node server and the bench)`,
    `load:       ${loadGenerator}, ${settings.connections} connections, ${settings.rounds} rounds of ${settings.durationSeconds} s per target, interleaved, after ${settings.warmupSeconds} s of warm-up each`,
    `Basalt:     LOG_LEVEL=${settings.basaltLogLevel}, ${databaseUrl === undefined ? "PGlite" : "PostgreSQL"}, BASALT_RATE_LIMIT_PRINCIPAL=${settings.rateLimitPrincipal}, workers ${settings.workers.join(" and ")}`,
    `peer:       ${peer}`
  ]
}

// ---------------------------------------------------------------------------------------------

const targetsPerRound = 3 + 5 * settings.workers.length
const timeLimitMs =
  3 * startupTimeoutMs +
  targetsPerRound * (settings.warmupSeconds + settings.rounds * (settings.durationSeconds + 5)) * 1_000 +
  2 * stopGraceMs +
  30_000
const watchdog = setTimeout(() => abandon(`still running after ${Math.round(timeLimitMs / 1_000)} s`, 2), timeLimitMs)
watchdog.unref()
// Without these the servers would outlive an interrupted or killed run.
process.once("SIGINT", () => abandon("interrupted", 130))
process.once("SIGTERM", () => abandon("terminated", 143))

const main = async (): Promise<number> => {
  const loadBefore = loadavg()
  const loadGenerator =
    settings.load === "wrk"
      ? `wrk (${(spawnSync("wrk", ["--version"], { encoding: "utf8" }).stdout || "").split("\n")[0]?.split(" Copyright")[0]?.trim()}, 1 thread, its own process)`
      : "autocannon (its command line, in its own process: wrk is not on PATH; `apt-get install wrk` gives the native one)"
  const missing = peerMissing()
  const jwtSecret = randomBytes(32).toString("hex")
  const floorToken = randomBytes(16).toString("hex")

  const servers: Record<string, ServerProcess> = {}
  servers["bare"] = await start("bare node:http", "bare.log", {}, { script: "bench/BareServer.ts" })
  servers["floor"] = await start(
    "minimal Effect 4.1 server",
    "floor.log",
    { FLOOR_TOKEN: floorToken },
    {
      script: "bench/EffectFloorServer.ts"
    }
  )
  for (const workers of settings.workers) {
    const env: Record<string, string> = {
      BASALT_DATA_DIR: join(workDir, `data-${workers}`),
      LOG_LEVEL: settings.basaltLogLevel,
      BASALT_JWT_SECRET: jwtSecret,
      // Longer than the run: the token is made once, before the first round.
      BASALT_ACCESS_TOKEN_TTL: "6 hours",
      // On, so that its cost is measured, but out of reach.
      BASALT_RATE_LIMIT_PRINCIPAL: settings.rateLimitPrincipal,
      ...(databaseUrl === undefined ? {} : { DATABASE_URL: await freshDatabase(`basalt${workers}`) })
    }
    servers[`basalt${workers}`] =
      workers === 1
        ? await start("Basalt, 1 worker", "basalt1.log", env, { script: "src/main.ts" })
        : await start(
            `Basalt, ${workers} workers`,
            `basalt${workers}.log`,
            { ...env, BENCH_WORKERS: String(workers) },
            {
              script: "bench/BasaltWorkers.ts"
            }
          )
  }
  let peerToken = ""
  if (missing === undefined) {
    const peerDatabase = await freshDatabase("peer")
    const peerEnv = {
      DATABASE_URL: peerDatabase,
      JWT_SECRET: jwtSecret,
      CALLER_CACHE_SECONDS: settings.peerCacheSeconds,
      PYTHONDONTWRITEBYTECODE: "1"
    }
    const seeded = await run(settings.peerPython, [join(peerDir, "seed.py"), "--token-ttl", String(6 * 3600)], {
      env: { ...process.env, ...peerEnv }
    })
    peerToken = seeded.stdout.trim().split("\n").at(-1) ?? ""
    for (const workers of settings.workers) {
      const port = await freePort()
      const server = startServerProcess({
        name: `FastAPI peer, ${workers} worker${workers === 1 ? "" : "s"}`,
        command: {
          file: settings.peerPython,
          args: [
            "-m",
            "uvicorn",
            "app:app",
            "--host",
            "127.0.0.1",
            "--port",
            String(port),
            "--workers",
            String(workers),
            "--loop",
            "uvloop",
            "--http",
            "httptools"
          ]
        },
        cwd: peerDir,
        port,
        env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? tmpdir(), ...peerEnv },
        logFile: join(workDir, `peer${workers}.log`)
      })
      running.push(server)
      servers[`peer${workers}`] = server
    }
  }
  const peerLine =
    missing === undefined
      ? `FastAPI peer (${peerDir}), uvicorn + uvloop + httptools, CALLER_CACHE_SECONDS=${settings.peerCacheSeconds}, workers ${settings.workers.join(" and ")}, ${settings.peerPython}`
      : `FastAPI peer not measured: ${missing}`

  let exitCode = 0
  try {
    // Basalt answers /health while it waits for its database; /ready says it serves the API.
    await Promise.all(
      Object.entries(servers).map(([key, server]) =>
        waitUntilAnswering(server, key.startsWith("basalt") ? "/ready" : "/health", startupTimeoutMs)
      )
    )
    const credentials: Record<string, { jwt: string; apiKey: string }> = {}
    for (const workers of settings.workers) credentials[`basalt${workers}`] = await credentialsOn(servers[`basalt${workers}`]!.baseUrl)

    const targets: Array<Target> = [
      { label: "bare node:http /health", server: "bare", route: "health" },
      { label: "minimal Effect 4.1 /health", server: "floor", route: "health" },
      { label: "minimal Effect 4.1 /users/me (bearer)", server: "floor", route: "me", credential: "floor" }
    ]
    for (const workers of settings.workers) {
      const suffix = workers === 1 ? "1 worker" : `${workers} workers`
      targets.push(
        { label: `Basalt ${suffix} /health`, server: `basalt${workers}`, route: "health" },
        { label: `Basalt ${suffix} /users/me (JWT)`, server: `basalt${workers}`, route: "me", credential: "jwt" },
        { label: `Basalt ${suffix} /users/me (API key)`, server: `basalt${workers}`, route: "me", credential: "apiKey" }
      )
      if (servers[`peer${workers}`] !== undefined) {
        targets.push(
          { label: `FastAPI ${suffix} /health`, server: `peer${workers}`, route: "health" },
          { label: `FastAPI ${suffix} /users/me (JWT)`, server: `peer${workers}`, route: "me", credential: "peer" }
        )
      }
    }

    const headersOf = (target: Target): Record<string, string> => {
      switch (target.credential) {
        case undefined:
          return {}
        case "floor":
          return { authorization: `Bearer ${floorToken}` }
        case "peer":
          return { authorization: `Bearer ${peerToken}` }
        default:
          return { authorization: `Bearer ${credentials[target.server]![target.credential]}` }
      }
    }
    const urlOf = (target: Target) => servers[target.server]!.baseUrl + paths[target.route]

    console.log(
      [
        "HTTP benchmark: bare node:http, the minimal Effect 4.1 server, Basalt and its FastAPI peer",
        "",
        ...describeMachine(loadGenerator, peerLine, loadBefore),
        ""
      ].join("\n")
    )
    for (const target of targets) {
      process.stdout.write(`warm-up ${target.label}: ${settings.warmupSeconds} s\n`)
      await load(urlOf(target), settings.warmupSeconds, headersOf(target))
    }

    const samples = new Map<Target, Array<Sample>>(targets.map((target) => [target, []]))
    for (let round = 1; round <= settings.rounds; round++) {
      // Each round starts one target further on, so no target is always measured right after the same one.
      const order = targets.map((_, i) => targets[(i + round - 1) % targets.length]!)
      for (const target of order) {
        const server = servers[target.server]!
        const cpuBefore = server.cpuTimeMs()
        const result = await load(urlOf(target), settings.durationSeconds, headersOf(target))
        const cpuAfter = server.cpuTimeMs()
        const sample: Sample = {
          ...result,
          cpuUsPerRequest:
            cpuBefore === undefined || cpuAfter === undefined || result.requests === 0
              ? undefined
              : ((cpuAfter - cpuBefore) * 1_000) / result.requests
        }
        samples.get(target)!.push(sample)
        if (sample.failures > 0) exitCode = 1
        console.log(
          `round ${round}/${settings.rounds} ${target.label}: ${sample.requestsPerSecond.toFixed(0)} req/s, p50 ${sample.p50Ms.toFixed(2)} ms, ` +
            `p99 ${sample.p99Ms.toFixed(2)} ms, ${sample.cpuUsPerRequest?.toFixed(0) ?? "n/a"} µs CPU/req` +
            (sample.failures > 0 ? `, ${sample.failures} errors or non-2xx` : "")
        )
      }
    }
    const loadAfter = loadavg()

    const summaries = targets.map((target) => summarize(target, samples.get(target)!))
    const find = (server: string, route: Route, credential?: Credential) =>
      summaries.find((s) => s.target.server === server && s.target.route === route && s.target.credential === credential)
    /** The peer's figure for the same work: its /health, or its JWT route for either of Basalt's credentials. */
    const peerOf = (summary: Summary): Summary | undefined => {
      const workers = /^basalt(\d+)$/.exec(summary.target.server)?.[1]
      if (workers === undefined) return undefined
      return summary.target.route === "health" ? find(`peer${workers}`, "health") : find(`peer${workers}`, "me", "peer")
    }
    const rows = summaries.map((s) => {
      const peer = peerOf(s)
      return [
        s.target.label,
        s.requestsPerSecond.toFixed(0),
        `${s.requestsPerSecondRange[0].toFixed(0)}–${s.requestsPerSecondRange[1].toFixed(0)}`,
        s.p50Ms.toFixed(2),
        s.p99Ms.toFixed(2),
        s.cpuUsPerRequest?.toFixed(0) ?? "n/a",
        peer === undefined ? "" : ratio(s.requestsPerSecond, peer.requestsPerSecond),
        peer === undefined ? "" : ratio(s.p99Ms, peer.p99Ms),
        peer === undefined ? "" : ratio(s.cpuUsPerRequest, peer.cpuUsPerRequest)
      ]
    })
    console.log(`\n${plainTable(rows)}\n`)
    console.log(
      `Medians over ${settings.rounds} rounds (req/s range: lowest and highest round). Latency is ${settings.load}'s. CPU is the user + system\n` +
        "time of the server's processes (with their workers) during the measurement over the requests it completed.\n" +
        '"vs peer" compares with the FastAPI peer with as many workers on the same route (its JWT route for Basalt\'s API key).'
    )
    console.log(`load average after the run: ${loadAfter.map((n) => n.toFixed(2)).join(" ")}`)

    const goals: Array<string> = []
    const verdict = (met: boolean | undefined) => (met === undefined ? "not measured" : met ? "met" : "NOT met")
    for (const workers of settings.workers) {
      const needed = workers === 1 ? 2 : 1.3
      for (const [route, credential] of [
        ["health", undefined],
        ["me", "jwt"],
        ["me", "apiKey"]
      ] as const) {
        const basalt = find(`basalt${workers}`, route, credential)
        const peer = basalt === undefined ? undefined : peerOf(basalt)
        if (basalt === undefined) continue
        const rate = peer === undefined ? undefined : basalt.requestsPerSecond / peer.requestsPerSecond
        goals.push(
          `${basalt.target.label}: at least ${needed}× the peer's req/s: ${verdict(rate === undefined ? undefined : rate >= needed)}` +
            (rate === undefined ? "" : ` (${rate.toFixed(2)}×)`) +
            (workers === 1
              ? `; p99 no longer than the peer's: ${verdict(peer === undefined ? undefined : basalt.p99Ms <= peer.p99Ms)}` +
                (peer === undefined ? "" : ` (${basalt.p99Ms.toFixed(2)} against ${peer.p99Ms.toFixed(2)} ms)`)
              : "")
        )
      }
    }
    const basaltHealth = find("basalt1", "health")
    const floorHealth = find("floor", "health")
    const cpuRatio =
      basaltHealth?.cpuUsPerRequest !== undefined && floorHealth?.cpuUsPerRequest !== undefined
        ? basaltHealth.cpuUsPerRequest / floorHealth.cpuUsPerRequest
        : undefined
    goals.push(
      `Basalt /health CPU per request at most 1.5× the minimal Effect server's: ${verdict(cpuRatio === undefined ? undefined : cpuRatio <= 1.5)}` +
        (cpuRatio === undefined
          ? ""
          : ` (${cpuRatio.toFixed(2)}×: ${basaltHealth!.cpuUsPerRequest!.toFixed(0)} against ${floorHealth!.cpuUsPerRequest!.toFixed(0)} µs)`)
    )
    console.log(`\nGoals (issue 11):\n${goals.map((goal) => `- ${goal}`).join("\n")}`)
    for (const s of summaries.filter((s) => s.failures > 0))
      console.log(`WARNING: ${s.target.label} had ${s.failures} errors or non-2xx responses`)

    const command = `${databaseUrl === undefined ? "" : "DATABASE_URL=postgres://… "}${
      settings.peerPython === "python3" ? "" : `BENCH_PEER_PYTHON=${settings.peerPython} `
    }npm run bench:http`
    console.log(
      `\nMarkdown, for the README:\n\n    ${command}\n\n${describeMachine(loadGenerator, peerLine, loadBefore)
        .map((line) => `    ${line}`)
        .join("\n")}\n` +
        `    load average after the run ${loadAfter.map((n) => n.toFixed(2)).join(" ")}\n\n${markdownTable(rows)}\n\n${goals.map((goal) => `- ${goal}`).join("\n")}\n`
    )
  } finally {
    const stops = await Promise.all(
      Object.entries(servers).map(async ([key, server]) => [key, server, await stopServerProcess(server, stopGraceMs)] as const)
    )
    for (const [key, server, stop] of stops) {
      // Basalt must drain and exit 0; the others only have to stop.
      if (key.startsWith("basalt") && stop.code !== 0) {
        exitCode = 1
        const how = stop.forced ? `ignored SIGTERM for ${stopGraceMs / 1_000} s and was killed` : "stopped on SIGTERM"
        console.log(
          `WARNING: ${server.name} ${how} with exit code ${stop.code} (signal ${stop.signal}); its last log lines:\n${logTail(server)}`
        )
      } else if (stop.forced) {
        console.log(`WARNING: ${server.name} ignored SIGTERM and was killed`)
      }
    }
    if (Object.keys(servers).some((key) => key.startsWith("basalt") && stops.find(([k]) => k === key)?.[2].code === 0)) {
      console.log("Basalt stopped on SIGTERM with exit code 0.")
    }
    await dropDatabases()
  }
  return exitCode
}

main().then(
  (exitCode) => {
    rmSync(workDir, { recursive: true, force: true, maxRetries: 3 })
    clearTimeout(watchdog)
    process.exitCode = exitCode
  },
  async (error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`)
    for (const server of running) server.kill("SIGKILL")
    await dropDatabases()
    rmSync(workDir, { recursive: true, force: true, maxRetries: 3 })
    clearTimeout(watchdog)
    process.exitCode = 2
  }
)
