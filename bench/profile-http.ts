/**
 * Where the CPU of a request goes: Basalt under wrk with V8's CPU profiler on, one fresh process
 * per route, the samples taken while the load ran attributed to what Basalt does per request
 * (request id, access log, metrics, in-flight tracking, compression check, server span, rate
 * limiter, caller cache, authentication) and to what it runs on (Effect's runtime, its HTTP
 * platform and HttpApi, Schema, the SQL client, Node's HTTP, GC).
 *
 * A sample is charged to the nearest frame on its stack, below the fiber's run loop, that belongs
 * to one of Basalt's parts, so work a part calls into (a Metric update, a log line's JSON) counts
 * for that part; otherwise to what its leaf frame runs on. Work the fiber runtime does on an
 * effect a part returned counts as the runtime, so the parts' figures are a floor.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm run bench:profile
 *
 * Settings: DATABASE_URL (a database of its own is created and dropped; unset: PGlite),
 * BENCH_DURATION (seconds of load per route, 10), BENCH_CONNECTIONS (50), BENCH_LOG_LEVEL (info),
 * BENCH_RATE_LIMIT_PRINCIPAL (on, out of reach; `off` leaves it off). Needs wrk on PATH.
 */
import { execFile } from "node:child_process"
import { randomBytes } from "node:crypto"
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { credentialsOn } from "./Credentials.ts"
import { postgresStatements } from "./Postgres.ts"
import { freePort, startServerProcess, stopServerProcess, waitUntilAnswering } from "./ServerProcess.ts"

const run = promisify(execFile)
const repoRoot = fileURLToPath(new URL("..", import.meta.url))
const databaseUrl = process.env["DATABASE_URL"]?.trim() || undefined
const seconds = Number(process.env["BENCH_DURATION"] ?? 10)
const connections = Number(process.env["BENCH_CONNECTIONS"] ?? 50)
const logLevel = process.env["BENCH_LOG_LEVEL"]?.trim() || "info"
const rateLimit = process.env["BENCH_RATE_LIMIT_PRINCIPAL"] ?? "1000000000/1s"

interface ProfileNode {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string }
  readonly children?: ReadonlyArray<number>
}
interface CpuProfile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly startTime: number
  readonly endTime: number
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

/** The parts a sample can be charged to, nearest frame first; the first rule that matches names it. */
const parts: ReadonlyArray<readonly [string, (url: string, fn: string) => boolean]> = [
  ["request id", (url) => url.includes("/src/http/RequestId.")],
  ["access log (JSON logger)", (url) => url.includes("/src/telemetry/JsonLogger.")],
  ["metrics", (url) => url.includes("/src/telemetry/HttpMetrics.") || /\/effect\/dist\/(internal\/)?metric/i.test(url)],
  ["in-flight tracking", (url) => url.includes("/src/http/ServerLifecycle.")],
  ["compression check", (url) => url.includes("/src/http/Compression.")],
  ["route table (metrics' route)", (url) => url.includes("/src/http/RouteTable.")],
  ["server middleware (timing, headers)", (url) => url.includes("/src/http/ServerMiddleware.")],
  ["error renderer", (url) => url.includes("/src/http/ErrorResponse.")],
  ["rate limiter", (url) => url.includes("/src/ratelimit/")],
  ["caller cache", (url) => url.includes("/src/accounts/CallerCache.")],
  ["authentication (JWT, API key)", (url) => url.includes("/src/accounts/") || url.includes("/node_modules/jose/")],
  ["handlers and repositories", (url) => url.includes("/src/")],
  ["server span (tracer)", (url) => /\/effect\/dist\/.*(Tracer|tracer)/.test(url) || /HttpMiddleware/.test(url)],
  ["logger runtime", (url) => /\/effect\/dist\/.*Logger/i.test(url)],
  [
    "SQL client",
    (url) => url.includes("/@effect/sql-pg/") || url.includes("/effect/dist/unstable/sql/") || /\/effect\/dist\/sql\//.test(url)
  ],
  ["HttpApi and Schema", (url) => /\/effect\/dist\/.*(http-api|HttpApi|[Ss]chema)/.test(url)],
  ["Effect HTTP platform", (url) => url.includes("/@effect/platform-node/") || /\/effect\/dist\/.*\/http\//.test(url)],
  ["Effect runtime", (url) => url.includes("/effect/dist/")],
  ["garbage collector", (_, fn) => fn === "(garbage collector)"],
  ["Node's HTTP and runtime", (url, fn) => url.startsWith("node:") || fn === "(program)" || url === ""]
]

// Parts that name what Basalt does; the rest name what it runs on and only ever describe the leaf.
const general = new Set([
  "SQL client",
  "HttpApi and Schema",
  "Effect HTTP platform",
  "Effect runtime",
  "garbage collector",
  "Node's HTTP and runtime"
])

const isRunLoop = (frame: ProfileNode["callFrame"]) =>
  frame.functionName === "runLoop" && frame.url.includes("/effect/dist/internal/effect.")

const partOf = (profile: CpuProfile) => {
  const parent = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const ruleFor = (id: number) => {
    const frame = byId.get(id)!.callFrame
    return frame.functionName === "(idle)" ? "idle" : parts.find(([, matches]) => matches(frame.url, frame.functionName))?.[0]
  }
  const cache = new Map<number, string>()
  return (leaf: number): string => {
    let found = cache.get(leaf)
    if (found !== undefined) return found
    for (let at: number | undefined = leaf; at !== undefined && found === undefined; at = parent.get(at)) {
      // A fiber's run loop: what lies above it only drove the fiber (a callback resuming it).
      if (isRunLoop(byId.get(at)!.callFrame)) break
      const part = ruleFor(at)
      if (part !== undefined && !general.has(part)) found = part
    }
    found ??= ruleFor(leaf) ?? "other"
    cache.set(leaf, found)
    return found
  }
}

/** Microseconds of samples per part within [from, to] (profile clock, µs). */
const attribute = (profile: CpuProfile, from: number, to: number): Map<string, number> => {
  const charge = partOf(profile)
  const totals = new Map<string, number>()
  let time = profile.startTime
  for (let i = 0; i < profile.samples.length; i++) {
    time += profile.timeDeltas[i]!
    if (time < from || time > to) continue
    const part = charge(profile.samples[i]!)
    totals.set(part, (totals.get(part) ?? 0) + (profile.timeDeltas[i + 1] ?? 0))
  }
  totals.delete("idle")
  return totals
}

const wrk = async (url: string, header: string | undefined): Promise<number> => {
  const args = ["-t1", `-c${connections}`, `-d${seconds}s`, ...(header ? ["-H", header] : []), url]
  const { stdout } = await run("wrk", args, { maxBuffer: 1 << 20 })
  const requests = /(\d+) requests in/.exec(stdout)
  if (requests === null || /Non-2xx/.test(stdout)) throw new Error(`wrk: ${stdout}`)
  return Number(requests[1])
}

const routes = [
  { name: "/health", path: "/health", credential: undefined },
  { name: "/users/me (JWT)", path: "/api/v1/users/me", credential: "jwt" },
  { name: "/users/me (API key)", path: "/api/v1/users/me", credential: "apiKey" }
] as const

const main = async () => {
  console.log(`CPU profile of Basalt per route: ${seconds} s of wrk at ${connections} connections each, LOG_LEVEL=${logLevel}`)
  console.log(
    `database: ${databaseUrl === undefined ? "PGlite" : "PostgreSQL"}; load average ${loadavg()
      .map((n) => n.toFixed(2))
      .join(" ")}`
  )
  const results: Array<{ route: string; requests: number; parts: Map<string, number> }> = []
  for (const route of routes) {
    const workDir = mkdtempSync(join(tmpdir(), "basalt-profile-"))
    const database = databaseUrl === undefined ? undefined : `basalt_profile_${process.pid}`
    if (database !== undefined) await postgresStatements(databaseUrl!, `CREATE DATABASE ${database}`)
    const port = await freePort()
    const server = startServerProcess({
      name: "Basalt",
      cwd: repoRoot,
      port,
      nodeArgs: ["--cpu-prof", `--cpu-prof-dir=${workDir}`, "--cpu-prof-interval=200"],
      env: {
        PATH: process.env["PATH"] ?? "",
        HOME: process.env["HOME"] ?? tmpdir(),
        HOST: "127.0.0.1",
        PORT: String(port),
        LOG_LEVEL: logLevel,
        BASALT_JWT_SECRET: randomBytes(32).toString("hex"),
        ...(rateLimit === "off" ? {} : { BASALT_RATE_LIMIT_PRINCIPAL: rateLimit }),
        ...(database === undefined
          ? { BASALT_DATA_DIR: join(workDir, "data") }
          : { DATABASE_URL: Object.assign(new URL(databaseUrl!), { pathname: `/${database}` }).toString() })
      },
      logFile: join(workDir, "server.log")
    })
    try {
      await waitUntilAnswering(server, "/ready", 120_000)
      const credentials = await credentialsOn(server.baseUrl)
      const header = route.credential === undefined ? undefined : `Authorization: Bearer ${credentials[route.credential]}`
      await wrk(server.baseUrl + route.path, header).catch(() => 0) // warm-up, not profiled below
      const loadStart = performance.now()
      const requests = await wrk(server.baseUrl + route.path, header)
      const loadEnd = performance.now()
      await stopServerProcess(server, 30_000)
      const stoppedAfterMs = performance.now() - loadEnd
      const file = readdirSync(workDir).find((name) => name.endsWith(".cpuprofile"))
      if (file === undefined) throw new Error("the server wrote no CPU profile")
      const profile = JSON.parse(readFileSync(join(workDir, file), "utf8")) as CpuProfile
      // The profile's clock is not ours: place the load window back from the profile's end.
      const to = profile.endTime - stoppedAfterMs * 1000
      const from = to - (loadEnd - loadStart) * 1000
      results.push({ route: route.name, requests, parts: attribute(profile, from, to) })
      console.log(`${route.name}: ${requests} requests profiled`)
    } finally {
      server.kill("SIGKILL")
      if (database !== undefined) await postgresStatements(databaseUrl!, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`)
      rmSync(workDir, { recursive: true, force: true, maxRetries: 3 })
    }
  }
  const names = [...new Set(results.flatMap((result) => [...result.parts.keys()]))].sort(
    (a, b) => (results[0]!.parts.get(b) ?? 0) - (results[0]!.parts.get(a) ?? 0)
  )
  console.log(`\n| part | ${results.map((r) => `${r.route} µs/req | share`).join(" | ")} |`)
  console.log(`| --- | ${results.map(() => "---: | ---:").join(" | ")} |`)
  const cell = (result: (typeof results)[number], name: string) => {
    const total = [...result.parts.values()].reduce((a, b) => a + b, 0)
    const us = result.parts.get(name) ?? 0
    return `${(us / result.requests).toFixed(1)} | ${((100 * us) / total).toFixed(1)}%`
  }
  for (const name of names) console.log(`| ${name} | ${results.map((result) => cell(result, name)).join(" | ")} |`)
  const totals = results.map((result) => `${([...result.parts.values()].reduce((a, b) => a + b, 0) / result.requests).toFixed(1)} | 100%`)
  console.log(`| total (profiled CPU) | ${totals.join(" | ")} |`)
}

await main()
