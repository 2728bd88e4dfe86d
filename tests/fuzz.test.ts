/**
 * Property-based fuzzing generated from openapi.yaml (issue 12): for every operation, requests that
 * keep to the contract and requests that break it (wrong types, boundary sizes, missing and extra
 * fields, control characters, U+0000, lone surrogates, deep and wide JSON, malformed JSON and
 * multipart, wrong content types), with and without credentials, ids that exist and ids that do
 * not, undeclared methods and paths, and malformed HTTP. Every answer must come within the time
 * bound, be no 5xx, be valid against the contract, accept what the contract accepts and refuse
 * what it refuses (see tests/support/fuzz*.ts).
 *
 * The seed is fixed (FUZZ_SEED overrides it), so CI sends the same requests every run. A failure
 * prints a curl line and `FUZZ_SEED=… FUZZ_ONLY=<n>`, which sends only that request again.
 * `npm run fuzz` sends 50,000 (FUZZ_REQUESTS).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { judge } from "./support/fuzzOracle.ts"
import { operations } from "./support/fuzzRequests.ts"
import { coverageLine, reproduction, runFuzz, summaryLine, World } from "./support/fuzzRun.ts"
import { startServer, type TestServer } from "./support/server.ts"

const seed = Number(process.env.FUZZ_SEED ?? 1212)
const requests = Number(process.env.FUZZ_REQUESTS ?? 5000)
const concurrency = Number(process.env.FUZZ_CONCURRENCY ?? 8)
const only = process.env.FUZZ_ONLY ? new Set(process.env.FUZZ_ONLY.split(",").map(Number)) : undefined
const requestTimeoutMs = 10_000
// About 20 ms a request on a quiet 2-core machine; the bound leaves room for a busy one.
const overallTimeoutMs = Number(process.env.FUZZ_TIME_LIMIT_SECONDS ?? Math.max(300, requests * 0.06)) * 1000
const jwtSecret = "fuzz: a signing key of at least thirty-two characters"
const bodyLimit = 1024 * 1024
const backend = process.env.DATABASE_URL ? "postgres" : "pglite"

describe("the fuzz oracle", () => {
  const deep = (depth: number) => `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`
  const judged = (method: string, target: string, body?: string) =>
    judge(
      { variant: "example", detail: "example", method, target, headers: {}, credential: "none" },
      {
        method,
        target,
        headers: body === undefined ? {} : { "content-type": "application/json" },
        body: body === undefined ? undefined : Buffer.from(body)
      },
      { bodyLimit, pgvector: true }
    )
  const document = (extra: string) => `{"title":"t","content":"c","source":"api"${extra}}`

  it.each([
    ["a login", "POST", "/api/v1/auth/login", '{"email":"a@example.com","password":"x"}', "valid"],
    ["U+0000 in a string (rule 1)", "POST", "/api/v1/auth/login", '{"email":"a\\u0000b","password":"x"}', "invalid"],
    ["a lone surrogate (rule 1)", "POST", "/api/v1/auth/login", '{"email":"\\ud800","password":"x"}', "invalid"],
    ["another control character, text like any other", "POST", "/api/v1/auth/login", '{"email":"a\\u0001b","password":"x"}', "valid"],
    ["an unknown field", "POST", "/api/v1/auth/login", '{"email":"a","password":"x","extra":1}', "invalid"],
    ["malformed JSON", "POST", "/api/v1/auth/login", '{"email":', "invalid"],
    ["metadata 32 deep", "POST", "/api/v1/documents", document(`,"metadata":${deep(32)}`), "valid"],
    ["metadata 1,000 deep (rule 2)", "POST", "/api/v1/documents", document(`,"metadata":${deep(1000)}`), "invalid"],
    ["metadata 33 deep (x-max-depth)", "POST", "/api/v1/documents", document(`,"metadata":${deep(33)}`), "invalid"],
    [
      "a __proto__ key in metadata (kept, as the contract says)",
      "POST",
      "/api/v1/documents",
      document(',"metadata":{"__proto__":1}'),
      "valid"
    ],
    ["a limit", "GET", "/api/v1/documents?limit=10", undefined, "valid"],
    ["a limit in hexadecimal", "GET", "/api/v1/documents?limit=0x10", undefined, "invalid"],
    ["percent-escapes that are not UTF-8 (rule 1)", "GET", "/api/v1/documents?cursor=%C0%AF", undefined, "invalid"],
    ["February 30th", "GET", "/api/v1/documents?updated_after=2020-02-30T00:00:00Z", undefined, "invalid"],
    ["a date-time with a space for its T", "GET", "/api/v1/documents?updated_after=2020-01-01%2000:00:00Z", undefined, "invalid"],
    ["an unknown query parameter", "GET", "/api/v1/documents?emial=x", undefined, "invalid"],
    ["a limit with leading zeros (decimal digits)", "GET", "/api/v1/documents?limit=010", undefined, "valid"],
    ["a method the path does not declare", "DELETE", "/health", undefined, "invalid"]
  ])("judges %s", (_, method, target, body, verdict) => {
    expect(judged(method, target, body).verdict).toBe(verdict)
  })

  it("judges each item of a batch on its own", () => {
    const { verdict, multiStatus } = judged("POST", "/api/v1/documents/batch", `{"documents":[${document("")},{"title":1}]}`)
    expect(verdict).toBe("invalid")
    expect(multiStatus?.whole.verdict).toBe("valid")
    expect(multiStatus?.items.map((item) => item.verdict)).toEqual(["valid", "invalid"])
  })
})

describe("fuzzing generated from openapi.yaml", () => {
  let server: TestServer
  let world: World

  beforeAll(async () => {
    server = await startServer(
      {
        BASALT_ALLOW_SIGNUP: "true",
        BASALT_JWT_SECRET: jwtSecret,
        BASALT_BODY_LIMIT: String(bodyLimit),
        // Small, so that uploads over it by far cost little.
        BASALT_UPLOAD_LIMIT: "64kb",
        // The failures are reported below, with a reproduction each; the server's log of them is noise here.
        LOG_LEVEL: process.env.FUZZ_LOG_LEVEL ?? "fatal"
      },
      { emptyDatabase: true }
    )
    world = await World.create(server, jwtSecret)
  })
  afterAll(() => server?.stop())

  it(
    `answers ${requests} generated requests in time, with no 5xx, as the contract says`,
    async () => {
      const report = await runFuzz(world, { seed, requests, concurrency, requestTimeoutMs, overallTimeoutMs, only, bodyLimit })
      console.log(summaryLine(report, backend))
      console.log(coverageLine(report))
      const groups = report.failures.grouped
      for (const { key, count, examples } of groups) {
        console.log(`FUZZ FAILURE ${count}× ${key}: ${examples[0]!.message}`)
        for (const failure of examples) console.log(`  ${reproduction(failure, seed)}`)
      }
      expect(report.sent).toBe(only?.size ?? requests)
      // Every operation of the contract was reached (a generator that stops producing one fails here).
      if (only === undefined) expect(operations.map((op) => op.id).filter((id) => !report.operations.has(id))).toEqual([])
      expect(groups.map(({ key, count }) => `${count}× ${key}`)).toEqual([])
    },
    overallTimeoutMs + 120_000
  )
})
