/**
 * Rate limits: per client address on the sign-in routes, per user or API key on the protected
 * ones; 429 with Retry-After, RateLimit and RateLimit-Policy; X-Forwarded-For believed only from
 * trusted proxies; exact across several processes on one database; buckets cleaned up. Every
 * response goes through the contract check of the shared helpers.
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Exit, Layer, ManagedRuntime, Redacted, Result, Scope } from "effect"
import { SignJWT } from "jose"
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { servePglite } from "../layers/PgliteLive.ts"
import { type Cidr, formatIp, parseIp, parseTrustedProxies, resolveClientIp } from "../src/http/ClientIp.ts"
import { addressBucket } from "../src/ratelimit/RateLimiter.ts"
import { decide, parseRateLimit } from "../src/ratelimit/RateLimitPolicy.ts"
import { RateLimitRepo } from "../src/ratelimit/RateLimitRepo.ts"
import { freshPostgresDatabase, postgresQuery, receive, startServer, type TestResponse, type TestServer } from "./support/server.ts"

const secret = "rate-limit-secret-of-at-least-32-chars"

const json = (body: unknown, headers: Record<string, string> = {}): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json", ...headers },
  body: JSON.stringify(body)
})
const bearer = (token: string, headers: Record<string, string> = {}): RequestInit => ({
  headers: { authorization: `Bearer ${token}`, ...headers }
})
const from = (address: string) => ({ "x-forwarded-for": address })

let addresses = 0
/** A client address no other test uses (198.18.0.0/15 is set aside for tests). */
const newAddress = () => {
  addresses++
  return `198.18.${Math.floor(addresses / 250)}.${(addresses % 250) + 1}`
}

const wrongLogin = (address?: string) =>
  json({ email: "nobody@example.com", password: "not the password" }, address === undefined ? {} : from(address))

/** `"auth";r=3;t=6` → its parts. */
const rateLimitOf = (response: TestResponse) => {
  const match = /^"([a-z]+)";r=(\d+);t=(\d+)$/.exec(response.headers.get("ratelimit") ?? "")
  return match === null ? undefined : { policy: match[1], remaining: Number(match[2]), nextSeconds: Number(match[3]) }
}

const statusCounts = (responses: ReadonlyArray<TestResponse>) => {
  const counts: Record<number, number> = {}
  for (const { status } of responses) counts[status] = (counts[status] ?? 0) + 1
  return counts
}

const expectRateLimited = (response: TestResponse, policy: string) => {
  expect(response.status).toBe(429)
  expect(response.json()).toMatchObject({ error: "rate_limited", message: expect.stringMatching(/try again in \d+ s/) })
  const retryAfter = Number(response.headers.get("retry-after"))
  expect(Number.isInteger(retryAfter) && retryAfter >= 1).toBe(true)
  expect(rateLimitOf(response)).toEqual({ policy, remaining: 0, nextSeconds: retryAfter })
  return retryAfter
}

describe("the client address", () => {
  const trusted = (text: string): ReadonlyArray<Cidr> => {
    const parsed = parseTrustedProxies(text)
    if (parsed._tag === "Failure") throw new Error(parsed.failure)
    return parsed.success
  }
  const client = (peer: string | undefined, forwardedFor: string | undefined, proxies: string) => {
    const ip = resolveClientIp(peer, forwardedFor, trusted(proxies))
    return ip === undefined ? undefined : formatIp(ip)
  }

  it("is the socket's peer when the peer is not a trusted proxy, whatever X-Forwarded-For says", () => {
    expect(client("203.0.113.7", "198.51.100.1", "")).toBe("203.0.113.7")
    expect(client("203.0.113.7", "198.51.100.1", "10.0.0.0/8, 192.0.2.1")).toBe("203.0.113.7")
    expect(client("203.0.113.7", undefined, "203.0.113.7")).toBe("203.0.113.7")
  })

  it("behind trusted proxies, is the rightmost address that is not a trusted proxy", () => {
    expect(client("10.0.0.2", "203.0.113.7", "10.0.0.0/8")).toBe("203.0.113.7")
    // What the client wrote itself is left of what the proxies appended, and is not believed.
    expect(client("10.0.0.2", "198.51.100.1, 203.0.113.7, 10.0.0.5", "10.0.0.0/8")).toBe("203.0.113.7")
    // A request from the proxies themselves: the farthest of them.
    expect(client("10.0.0.2", "10.0.0.9, 10.0.0.5", "10.0.0.0/8")).toBe("10.0.0.9")
    expect(client("10.0.0.2", "", "10.0.0.0/8")).toBe("10.0.0.2")
    // Entries with ports, as some proxies write them.
    expect(client("10.0.0.2", "203.0.113.7:4711", "10.0.0.0/8")).toBe("203.0.113.7")
    expect(client("10.0.0.2", "[2001:db8::7]:443", "10.0.0.0/8")).toBe("2001:db8::7")
  })

  it("handles IPv6 ranges and IPv4-mapped IPv6 addresses", () => {
    expect(client("2001:db8::1", "2001:db8:ffff::1, 2a00:1450:4001::7, 2001:db8::5", "2001:db8::/32")).toBe("2a00:1450:4001::7")
    // Node reports IPv4 peers of a dual-stack socket as ::ffff:a.b.c.d.
    expect(client("::ffff:127.0.0.1", "203.0.113.7", "127.0.0.1")).toBe("203.0.113.7")
    expect(client("::ffff:10.1.2.3", "203.0.113.7", "::ffff:10.0.0.0/104")).toBe("203.0.113.7")
    expect(client("127.0.0.1", "::ffff:203.0.113.7", "127.0.0.1")).toBe("203.0.113.7")
    expect(client("::1", "203.0.113.7", "::1")).toBe("203.0.113.7")
    expect(client("fe80::1%eth0", undefined, "")).toBe("fe80::1")
  })

  it.each([
    ["not an address", "not-an-ip"],
    ["an octet over 255", "999.0.0.1"],
    ["too many octets", "1.2.3.4.5"],
    ["a bad IPv6 group", "2001:db8::g"],
    ["two ::", "1::2::3"],
    ["markup", "<script>alert(1)</script>"],
    ["the word unknown", "unknown"],
    ["a huge value", "x".repeat(20_000)]
  ])("stops at garbage (%s): the client is the last trusted proxy", (_, garbage) => {
    expect(client("10.0.0.2", garbage, "10.0.0.0/8")).toBe("10.0.0.2")
    expect(client("10.0.0.2", `203.0.113.7, ${garbage}, 10.0.0.3`, "10.0.0.0/8")).toBe("10.0.0.3")
  })

  it("follows at most 16 proxies, however long the header", () => {
    const hops = Array.from({ length: 2000 }, (_, i) => `10.0.${Math.floor(i / 250)}.${(i % 250) + 1}`)
    expect(client("10.0.0.2", hops.join(", "), "10.0.0.0/8")).toBe(hops[hops.length - 16])
  })

  it("is written canonically, and an IPv6 client is counted by its /64", () => {
    expect(formatIp(parseIp("2001:DB8:0:0:0:0:0:1")!)).toBe("2001:db8::1")
    expect(formatIp(parseIp("0:0:0:0:0:0:0:0")!)).toBe("::")
    expect(formatIp(parseIp("2001:db8:0:0:1:0:0:1")!)).toBe("2001:db8::1:0:0:1")
    expect(addressBucket(parseIp("2001:db8:1:2:3:4:5:6"))).toBe("ip:2001:db8:1:2::/64")
    expect(addressBucket(parseIp("203.0.113.7"))).toBe("ip:203.0.113.7")
    expect(addressBucket(undefined)).toBe("ip:unknown")
  })

  it.each(["10.0.0.0/33", "::1/129", "10.0.0.0/8/1", "example.com", "10.0.0.0/-1", "::ffff:10.0.0.0/8"])(
    "refuses the trusted proxy %s",
    (entry) => {
      expect(parseTrustedProxies(`127.0.0.1, ${entry}`)._tag).toBe("Failure")
    }
  )
})

describe("the token bucket's arithmetic", () => {
  const policy = { quota: 10, windowSeconds: 60 }

  it("counts whole tokens left and the seconds to the next one, 0 when full", () => {
    expect(decide(policy, { granted: true, tokens: 9 })).toEqual({ granted: true, remaining: 9, nextTokenSeconds: 6, retryAfterSeconds: 1 })
    expect(decide(policy, { granted: true, tokens: 10 })).toMatchObject({ remaining: 10, nextTokenSeconds: 0 })
    expect(decide(policy, { granted: false, tokens: 0.5 })).toMatchObject({ remaining: 0, nextTokenSeconds: 3, retryAfterSeconds: 3 })
  })

  it.each([Number.NaN, Number.POSITIVE_INFINITY, -5, 1e300, 0.9999999999])("keeps the headers sane for tokens = %s", (tokens) => {
    const decision = decide(policy, { granted: false, tokens })
    expect(Number.isInteger(decision.remaining) && decision.remaining >= 0 && decision.remaining <= 10).toBe(true)
    expect(Number.isInteger(decision.nextTokenSeconds) && decision.nextTokenSeconds >= 0).toBe(true)
    expect(Number.isInteger(decision.retryAfterSeconds) && decision.retryAfterSeconds >= 1).toBe(true)
  })

  it.each([
    ["10/1m", { quota: 10, windowSeconds: 60 }],
    ["600/1h", { quota: 600, windowSeconds: 3600 }],
    ["3/2s", { quota: 3, windowSeconds: 2 }],
    [" 5 / m ", { quota: 5, windowSeconds: 60 }],
    ["off", undefined],
    ["OFF", undefined]
  ])("reads %j", (text, limit) => {
    expect(Result.getOrThrow(parseRateLimit(text))).toEqual(limit)
  })
})

describe("rate limits over HTTP", () => {
  let server: TestServer
  let users = 0
  let admin: { token: string; address: string }

  /** A new account, signed in from an address of its own; returns its access token. */
  const signIn = async () => {
    const credentials = { email: `user${++users}@example.com`, password: "a long enough password" }
    const registered = await server.request("/api/v1/auth/register", json({ ...credentials, display_name: "U" }, from(newAddress())))
    expect(registered.status).toBe(201)
    return signInAgain(credentials)
  }
  const signInAgain = async (credentials: { email: string; password: string }) => {
    const login = await server.request("/api/v1/auth/login", json(credentials, from(newAddress())))
    expect(login.status).toBe(200)
    return { ...credentials, token: login.json().access_token as string, id: login.json().user.id as string }
  }
  const me = (token: string) => server.request("/api/v1/users/me", bearer(token))

  beforeAll(async () => {
    server = await startServer(
      {
        BASALT_JWT_SECRET: secret,
        BASALT_ALLOW_SIGNUP: "true",
        BASALT_RATE_LIMIT_AUTH: "5/1d",
        BASALT_RATE_LIMIT_PRINCIPAL: "4/1d",
        // The test is the proxy: each request says which client it is for.
        BASALT_TRUSTED_PROXIES: "127.0.0.1, ::1"
      },
      { emptyDatabase: true }
    )
    // The first account is the admin; those signIn makes later are basic.
    const address = newAddress()
    const credentials = { email: "admin@example.com", password: "a long enough password" }
    expect((await server.request("/api/v1/auth/register", json({ ...credentials, display_name: "A" }, from(address)))).status).toBe(201)
    const login = await server.request("/api/v1/auth/login", json(credentials, from(address)))
    admin = { token: login.json().access_token, address }
  })
  afterAll(() => server.stop())

  it("admits exactly the limit of sign-in attempts from one address, then answers 429 on every sign-in route", async () => {
    const address = newAddress()
    const attempts = await Promise.all(Array.from({ length: 9 }, () => server.request("/api/v1/auth/login", wrongLogin(address))))
    expect(statusCounts(attempts)).toEqual({ 401: 5, 429: 4 })
    const admitted = attempts.filter((r) => r.status === 401)
    // Each admitted answer, a refusal of the password included, says how many are left.
    expect(admitted.map((r) => rateLimitOf(r)?.remaining).sort()).toEqual([0, 1, 2, 3, 4])
    for (const response of admitted) {
      expect(response.headers.get("ratelimit-policy")).toBe('"auth";q=5;w=86400')
      expect(rateLimitOf(response)?.policy).toBe("auth")
    }
    for (const refused of attempts.filter((r) => r.status === 429)) {
      expectRateLimited(refused, "auth")
      expect(refused.headers.get("ratelimit-policy")).toBe('"auth";q=5;w=86400')
    }

    // One bucket for the four sign-in routes.
    const form = {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", ...from(address) },
      body: new URLSearchParams({ grant_type: "password", username: "a@example.com", password: "x" }).toString()
    }
    expectRateLimited(await server.request("/api/v1/auth/token", form), "auth")
    expectRateLimited(await server.request("/api/v1/auth/refresh", json({ refresh_token: "bsr_x" }, from(address))), "auth")
    expectRateLimited(
      await server.request(
        "/api/v1/auth/register",
        json({ email: "z@example.com", password: "long enough pw", display_name: "Z" }, from(address))
      ),
      "auth"
    )
    // Even a malformed body is counted, before it is read.
    expectRateLimited(
      await server.request("/api/v1/auth/login", {
        method: "POST",
        headers: { "content-type": "application/json", ...from(address) },
        body: "{"
      }),
      "auth"
    )
    // Another client is not affected.
    const other = await server.request("/api/v1/auth/login", wrongLogin(newAddress()))
    expect(other.status).toBe(401)
    expect(rateLimitOf(other)).toEqual({ policy: "auth", remaining: 4, nextSeconds: expect.any(Number) })
  })

  it("believes X-Forwarded-For from a trusted proxy, but a client cannot escape by prepending addresses", async () => {
    const address = newAddress()
    for (let i = 0; i < 5; i++) expect((await server.request("/api/v1/auth/login", wrongLogin(address))).status).toBe(401)
    expectRateLimited(await server.request("/api/v1/auth/login", wrongLogin(`203.0.113.99, ${address}`)), "auth")
    expectRateLimited(await server.request("/api/v1/auth/login", wrongLogin(`${address}, 127.0.0.1`)), "auth")
    expectRateLimited(await server.request("/api/v1/auth/login", wrongLogin(`::ffff:${address}`)), "auth")
    expect((await server.request("/api/v1/auth/login", wrongLogin(newAddress()))).status).toBe(401)
  })

  it("counts an IPv6 client by its /64", async () => {
    for (let i = 1; i <= 5; i++) {
      expect((await server.request("/api/v1/auth/login", wrongLogin(`2001:db8:a:b::${i}`))).status).toBe(401)
    }
    expectRateLimited(await server.request("/api/v1/auth/login", wrongLogin("2001:db8:a:b:ffff:ffff:ffff:ffff")), "auth")
    expect((await server.request("/api/v1/auth/login", wrongLogin("2001:db8:a:c::1"))).status).toBe(401)
  })

  it("answers garbage or oversized X-Forwarded-For as coming from the proxy itself, never with a 500", async () => {
    const garbage = ["not-an-ip", "999.0.0.1", "1.2.3.4.5", ", ,", "<script>", "x".repeat(8000), "unknown", "::g"]
    const responses = []
    for (const value of garbage) responses.push(await server.request("/api/v1/auth/login", wrongLogin(value)))
    // All of them are the proxy's (127.0.0.1) own bucket of 5.
    expect(statusCounts(responses)).toEqual({ 401: 5, 429: 3 })
  })

  it("limits each user, whichever session calls, and leaves other users alone; successes carry the count", async () => {
    const user = await signIn()
    const answers = []
    for (let i = 0; i < 4; i++) answers.push(await me(user.token))
    expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 200])
    expect(answers.map((r) => rateLimitOf(r)?.remaining)).toEqual([3, 2, 1, 0])
    for (const response of answers) {
      expect(response.headers.get("ratelimit-policy")).toBe('"principal";q=4;w=86400')
      expect(rateLimitOf(response)?.nextSeconds).toBeGreaterThan(0)
    }
    expectRateLimited(await me(user.token), "principal")
    const otherSession = await signInAgain({ email: user.email, password: user.password })
    expectRateLimited(await me(otherSession.token), "principal")

    const someoneElse = await signIn()
    const theirs = await me(someoneElse.token)
    expect(theirs.status).toBe(200)
    expect(rateLimitOf(theirs)).toMatchObject({ policy: "principal", remaining: 3 })
  })

  it("gives each API key a bucket of its own, apart from its owner's", async () => {
    const owner = await signIn()
    const created = await server.request("/api/v1/api-keys", {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${owner.token}` },
      body: JSON.stringify({ name: "sync" })
    })
    expect(created.status).toBe(201)
    expect(rateLimitOf(created)).toMatchObject({ policy: "principal", remaining: 3 })
    const key = created.json().secret as string
    const byKey = []
    for (let i = 0; i < 4; i++) byKey.push(await me(key))
    expect(byKey.map((r) => [r.status, rateLimitOf(r)?.remaining])).toEqual([
      [200, 3],
      [200, 2],
      [200, 1],
      [200, 0]
    ])
    expectRateLimited(await me(key), "principal")
    // The owner's own bucket only lost the request that created the key.
    expect(rateLimitOf(await me(owner.token))).toMatchObject({ remaining: 2 })
  })

  it("takes nothing from anyone's bucket for a request whose caller is not identified", async () => {
    const user = await signIn()
    const forged = await new SignJWT({ sid: crypto.randomUUID() })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject(user.id)
      .setIssuer("basalt")
      .setAudience("basalt")
      .setExpirationTime("5m")
      .sign(new TextEncoder().encode("x".repeat(40)))
    const unidentified: Array<RequestInit> = [{}, bearer("nonsense"), bearer("bsk_unknown"), bearer(forged)]
    for (let round = 0; round < 3; round++) {
      for (const init of unidentified) {
        const response = await server.request("/api/v1/users/me", init)
        expect(response.status).toBe(401)
        expect(response.headers.get("ratelimit")).toBe(null)
      }
    }
    expect(rateLimitOf(await me(user.token))).toMatchObject({ remaining: 3 })
  })

  it("counts an identified caller refused by the admin check", async () => {
    const user = await signIn()
    const refused = await server.request("/api/v1/admin/users", bearer(user.token))
    expect(refused.status).toBe(403)
    expect(rateLimitOf(refused)).toMatchObject({ policy: "principal", remaining: 3 })
    expect(rateLimitOf(await me(user.token))).toMatchObject({ remaining: 2 })
  })

  it("records the client behind the trusted proxy in the audit log", async () => {
    const events = await server.request("/api/v1/admin/audit?action=sign_in_succeeded&limit=100", bearer(admin.token))
    expect(events.status).toBe(200)
    const first = events.json().items.at(-1)
    expect(first.client_ip).toBe(admin.address)
  })
})

describe("rate limits, from a peer that is not a trusted proxy", () => {
  let server: TestServer
  beforeAll(async () => {
    server = await startServer({ BASALT_RATE_LIMIT_AUTH: "3/1d" }, { emptyDatabase: true })
  })
  afterAll(() => server.stop())

  it("ignore X-Forwarded-For: new addresses in it do not escape the limit", async () => {
    const responses = []
    for (let i = 0; i < 6; i++) responses.push(await server.request("/api/v1/auth/login", wrongLogin(newAddress())))
    expect(statusCounts(responses)).toEqual({ 401: 3, 429: 3 })
  })
})

describe("rate limits with a short window", () => {
  let server: TestServer
  beforeAll(async () => {
    server = await startServer({ BASALT_RATE_LIMIT_AUTH: "3/2s", BASALT_TRUSTED_PROXIES: "127.0.0.1" }, { emptyDatabase: true })
  })
  afterAll(() => server.stop())

  it("admit again once the bucket has refilled, as Retry-After says", async () => {
    const address = newAddress()
    // In parallel: the limit is checked before the password, so the burst outpaces the refill.
    const burst = await Promise.all(Array.from({ length: 10 }, () => server.request("/api/v1/auth/login", wrongLogin(address))))
    for (const response of burst) expect([401, 429]).toContain(response.status)
    const refused = burst.find((response) => response.status === 429)
    expect(refused).toBeDefined()
    const retryAfter = expectRateLimited(refused!, "auth")
    expect(refused!.headers.get("ratelimit-policy")).toBe('"auth";q=3;w=2')
    await new Promise((resolve) => setTimeout(resolve, retryAfter * 1000))
    expect((await server.request("/api/v1/auth/login", wrongLogin(address))).status).toBe(401)
  })
})

/**
 * A database several servers can share: a fresh Postgres database on CI's Postgres pass, and on
 * the PGlite pass an embedded PGlite served on a loopback port, which other processes reach the
 * way they reach Postgres.
 */
const sharedDatabase = async () => {
  if (process.env.DATABASE_URL) {
    const database = await freshPostgresDatabase()
    return { url: database.url, close: database.drop }
  }
  const dir = mkdtempSync(join(tmpdir(), "basalt-shared-pglite-"))
  const scope = Effect.runSync(Scope.make())
  const { port } = await Effect.runPromise(Scope.provide(servePglite(dir), scope))
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    close: async () => {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      rmSync(dir, { recursive: true, force: true })
    }
  }
}

/** `npm start` as a child process; resolves once it says where it listens. */
const startChildServer = (env: Record<string, string>) => {
  const dataDir = mkdtempSync(join(tmpdir(), "basalt-child-"))
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
    cwd: new URL("..", import.meta.url).pathname,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? tmpdir(),
      PORT: "0",
      HOST: "127.0.0.1",
      BASALT_DATA_DIR: dataDir,
      LOG_LEVEL: "info",
      ...env
    },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  const url = new Promise<string>((resolve, reject) => {
    const bound = setTimeout(() => reject(new Error(`the child server did not start:\n${output}`)), 90_000)
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk
      const match = /Basalt listening on http:\/\/[^:]+:(\d+)/.exec(output)
      if (match !== null) {
        clearTimeout(bound)
        resolve(`http://127.0.0.1:${match[1]}`)
      }
    })
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk
    })
    child.once("exit", (code) => {
      clearTimeout(bound)
      reject(new Error(`the child server exited with ${code}:\n${output}`))
    })
  })
  return {
    url,
    request: async (path: string, init?: RequestInit) => receive(init?.method ?? "GET", path, await fetch(`${await url}${path}`, init)),
    stop: async () => {
      child.kill("SIGTERM")
      await exited
      rmSync(dataDir, { recursive: true, force: true })
    }
  }
}

describe("rate limits across processes", () => {
  it.each([3])(
    "admit exactly the limit of parallel requests sent to %i server processes on one database",
    { timeout: 240_000 },
    async (processes) => {
      const database = await sharedDatabase()
      const env = {
        DATABASE_URL: database.url,
        BASALT_JWT_SECRET: secret,
        BASALT_ALLOW_SIGNUP: "true",
        BASALT_RATE_LIMIT_AUTH: "20/1d",
        BASALT_RATE_LIMIT_PRINCIPAL: "25/1d",
        BASALT_TRUSTED_PROXIES: "127.0.0.1"
      }
      // The in-process server first: it applies the migrations; then the child processes together.
      const inProcess = await startServer(env)
      const children = Array.from({ length: processes - 1 }, () => startChildServer(env))
      try {
        await Promise.all(children.map((child) => child.url))
        const servers = [inProcess, ...children]

        const address = newAddress()
        const logins = await Promise.all(
          Array.from({ length: 60 }, (_, i) => servers[i % servers.length]!.request("/api/v1/auth/login", wrongLogin(address)))
        )
        expect(statusCounts(logins)).toEqual({ 401: 20, 429: 40 })

        const credentials = { email: "shared@example.com", password: "a long enough password" }
        expect(
          (await inProcess.request("/api/v1/auth/register", json({ ...credentials, display_name: "S" }, from(newAddress())))).status
        ).toBe(201)
        const token = (await children[0]!.request("/api/v1/auth/login", json(credentials, from(newAddress())))).json()
          .access_token as string
        const reads = await Promise.all(
          Array.from({ length: 60 }, (_, i) => servers[i % servers.length]!.request("/api/v1/users/me", bearer(token)))
        )
        expect(statusCounts(reads)).toEqual({ 200: 25, 429: 35 })
        expect(
          reads
            .filter((r) => r.status === 200)
            .map((r) => rateLimitOf(r)?.remaining)
            .sort((a, b) => a! - b!)
        ).toEqual(Array.from({ length: 25 }, (_, i) => i))
      } finally {
        await Promise.all(children.map((child) => child.stop()))
        await inProcess.stop()
        await database.close()
      }
    }
  )
})

describe("rate-limit buckets in the database", () => {
  let database: Awaited<ReturnType<typeof sharedDatabase>>
  let server: TestServer
  let repo: ManagedRuntime.ManagedRuntime<RateLimitRepo, unknown>

  beforeAll(async () => {
    database = await sharedDatabase()
    server = await startServer({
      DATABASE_URL: database.url,
      // Buckets that stay short of full for an hour: the server's own cleanup leaves them be.
      BASALT_RATE_LIMIT_AUTH: "2/2h",
      BASALT_TRUSTED_PROXIES: "127.0.0.1"
    })
    repo = ManagedRuntime.make(
      RateLimitRepo.layer.pipe(Layer.provide(PgClient.layer({ url: Redacted.make(database.url), maxConnections: 8 })))
    )
  })
  afterAll(async () => {
    await repo.dispose()
    await server.stop()
    await database.close()
  })

  const countRows = async (pattern: string) =>
    Number((await postgresQuery(database.url, "SELECT count(*) AS n FROM rate_limit_buckets WHERE key LIKE $1", [pattern]))[0]!.n)

  it("grants exactly the quota to concurrent first requests on a new bucket", async () => {
    const key = `test:${crypto.randomUUID()}`
    const states = await repo.runPromise(
      Effect.flatMap(RateLimitRepo, (buckets) =>
        Effect.all(
          Array.from({ length: 40 }, () => buckets.take(key, 7, 7 / 86400)),
          { concurrency: "unbounded" }
        )
      )
    )
    expect(states.filter((state) => state.granted)).toHaveLength(7)
    for (const state of states) expect(state.tokens >= 0 && state.tokens <= 7).toBe(true)
  })

  it("grants batches exactly what the bucket holds, however they are split", async () => {
    const key = `test:${crypto.randomUUID()}`
    const batches = [5, 1, 8, 3, 2, 6, 1, 4]
    const states = await repo.runPromise(
      Effect.flatMap(RateLimitRepo, (buckets) =>
        Effect.all(
          batches.map((count) => buckets.takeMany(key, count, 11, 11 / 86400)),
          { concurrency: "unbounded" }
        )
      )
    )
    expect(states.reduce((sum, state) => sum + state.granted, 0)).toBe(11)
    states.forEach((state, i) => {
      expect(state.granted).toBeLessThanOrEqual(batches[i]!)
    })
  })

  it("keeps one row per client address, and deletes the rows of the buckets that have refilled", async () => {
    const clients = Array.from({ length: 1000 }, () => newAddress())
    const answers: Array<number> = []
    const queue = [...clients]
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        for (let address = queue.pop(); address !== undefined; address = queue.pop()) {
          answers.push((await server.request("/api/v1/auth/refresh", json({ refresh_token: "bsr_none" }, from(address)))).status)
        }
      })
    )
    expect(answers.filter((status) => status === 401)).toHaveLength(clients.length)
    expect(await countRows("auth:ip:198.18.%")).toBe(clients.length)

    // Nothing is deleted before its bucket is full again.
    expect(await repo.runPromise(Effect.flatMap(RateLimitRepo, (buckets) => buckets.deleteFull))).toBe(0)
    expect(await countRows("auth:ip:198.18.%")).toBe(clients.length)

    // An hour passes for these buckets (each took 1 of 2 tokens, refilled at 1 an hour)...
    await postgresQuery(
      database.url,
      `
      UPDATE rate_limit_buckets
      SET updated_at = updated_at - interval '61 minutes', full_at = full_at - interval '61 minutes'
      WHERE key LIKE 'auth:ip:198.18.%'`
    )
    // ...but not for this one.
    const live = `test:${crypto.randomUUID()}`
    await repo.runPromise(Effect.flatMap(RateLimitRepo, (buckets) => buckets.take(live, 2, 2 / 3600)))
    const deleted = await repo.runPromise(Effect.flatMap(RateLimitRepo, (buckets) => buckets.deleteFull))
    expect(deleted).toBeGreaterThanOrEqual(clients.length)
    expect(await countRows("auth:ip:198.18.%")).toBe(0)
    expect(await countRows(live)).toBe(1)
  })

  it("clears a backlog larger than one cleanup statement deletes", async () => {
    await postgresQuery(
      database.url,
      `
      INSERT INTO rate_limit_buckets (key, tokens, granted, updated_at, full_at)
      SELECT 'test:backlog:' || n, 1, 1, now() - interval '1 hour', now() - interval '1 minute'
      FROM generate_series(1, 12000) AS n`
    )
    const deleted = await repo.runPromise(Effect.flatMap(RateLimitRepo, (buckets) => buckets.deleteFull))
    expect(deleted).toBeGreaterThanOrEqual(12000)
    expect(await countRows("test:backlog:%")).toBe(0)
  })
})
