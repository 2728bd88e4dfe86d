/**
 * Runs generated requests (fuzzRequests.ts) against a real server and checks every answer: an
 * answer at all, within the time bound; no 5xx; valid against openapi.yaml (contract.ts); a request
 * the contract refuses is not accepted and one it accepts is not refused (fuzzOracle.ts); no
 * secret echoed; an error body short and free of internals. The accounts it acts as are put back
 * between rounds, since the fuzz itself logs them out, revokes their keys and demotes them.
 */
import fc from "fast-check"
import { SignJWT } from "jose"
import { connect } from "node:net"
import { ContractViolation, type ReceivedResponse, templateOf, validateComponentResponse, validateResponse } from "./contract.ts"
import { type Circumstances, type Judged, type Judgment, judge } from "./fuzzOracle.ts"
import { type Credential, type Expansion, fuzzRequest, operations, type PlannedRequest } from "./fuzzRequests.ts"
import { secretCanary } from "./fuzzSchema.ts"
import type { TestServer } from "./server.ts"

export interface FuzzOptions {
  readonly seed: number
  readonly requests: number
  readonly concurrency: number
  /** For one request: its answer, headers and body. */
  readonly requestTimeoutMs: number
  /** For the whole run. */
  readonly overallTimeoutMs: number
  /** Only these request numbers (to reproduce a failure). */
  readonly only: ReadonlySet<number> | undefined
  readonly bodyLimit: number
}

// ---------------------------------------------------------------------------------------------
// The accounts and resources the requests act on

interface Account {
  readonly name: string
  readonly email: string
  readonly password: string
  readonly role: "admin" | "curator" | "basic"
  id: string
  token: string
}

const json = (method: string, body: unknown, token?: string): RequestInit => ({
  method,
  headers: { "content-type": "application/json", ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
  body: JSON.stringify(body)
})

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export class World {
  readonly pools = new Map<string, Array<string>>()
  apiKey = { id: "", secret: "" }
  cookie = { cookie: "", csrf: "" }
  revokedApiKey = ""
  forged: Record<"foreignJwt" | "expiredJwt" | "strangerJwt" | "oddClaimsJwt" | "algNoneJwt", Array<string>> = {
    foreignJwt: [],
    expiredJwt: [],
    strangerJwt: [],
    oddClaimsJwt: [],
    algNoneJwt: []
  }
  pgvector = false
  repairs = 0

  private constructor(
    readonly server: TestServer,
    readonly root: Account,
    readonly accounts: Record<"admin" | "curator" | "basic", Account>
  ) {}

  /** The first account (the admin that repairs the others, never used by a fuzzed request), three more, and some content. */
  static async create(server: TestServer, jwtSecret: string): Promise<World> {
    const account = (name: string, role: Account["role"]): Account => ({
      name,
      email: `${name}@example.com`,
      password: `${name} password long`,
      role,
      id: "",
      token: ""
    })
    const root = account("fuzz-root", "admin")
    const world = new World(server, root, {
      admin: account("fuzz-admin", "admin"),
      curator: account("fuzz-curator", "curator"),
      basic: account("fuzz-basic", "basic")
    })
    await world.register(root)
    // Its id was harvested before it was known: it must not be among the ids requests name.
    world.pools.delete("user")
    for (const someone of Object.values(world.accounts)) {
      await world.register(someone)
      await world.expect(200, `/api/v1/admin/users/${someone.id}`, json("PATCH", { role: someone.role }, root.token))
    }
    world.apiKey = await world.newApiKey()
    const revoked = await world.newApiKey()
    await world.expect(204, `/api/v1/api-keys/${revoked.id}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${world.accounts.basic.token}` }
    })
    world.revokedApiKey = revoked.secret
    world.cookie = await world.newCookie()
    await world.forgeTokens(jwtSecret)
    const { basic, curator, admin } = world.accounts
    const collection = await world.expect(201, "/api/v1/collections", json("POST", { name: "Fuzz shared" }, curator.token))
    await world.expect(200, `/api/v1/collections/${collection.id}/members/${basic.id}`, json("PUT", { role: "viewer" }, curator.token))
    await world.expect(201, "/api/v1/collections", json("POST", { name: "Fuzz basic's" }, basic.token))
    const documents: Array<[Account, Record<string, unknown>]> = [
      [basic, { title: "Onboarding", content: "Welcome to the team. Rotate the signing keys yearly.", source: "api", tags: ["hr"] }],
      [basic, { title: "Notes", content: "basalt granite river", source: "local", metadata: { team: "people" } }],
      [
        curator,
        {
          title: "Policy",
          content: "The search policy for everyone.",
          source: "web",
          visibility: "public",
          collection_ids: [collection.id]
        }
      ],
      [admin, { title: "Admin only", content: "Index rebuild procedure.", source: "api", external_id: "ADM-1" }]
    ]
    for (const [owner, document] of documents) await world.expect(202, "/api/v1/documents", json("POST", document, owner.token))
    const ready = await server.request("/ready")
    world.pgvector = ready.status === 200 && ready.json().database.pgvector === true
    return world
  }

  private async expect(status: number, path: string, init: RequestInit): Promise<any> {
    const response = await this.server.request(path, init)
    if (response.status !== status)
      throw new Error(`fuzz set-up: ${init.method ?? "GET"} ${path}: ${response.status} ${response.text.slice(0, 300)}`)
    const body = response.text === "" ? undefined : response.json()
    this.harvest(body)
    return body
  }

  private async register(someone: Account) {
    const user = await this.expect(
      201,
      "/api/v1/auth/register",
      json("POST", { email: someone.email, password: someone.password, display_name: someone.name })
    )
    someone.id = user.id
    await this.logIn(someone)
  }

  private async logIn(someone: Account) {
    const session = await this.expect(200, "/api/v1/auth/login", json("POST", { email: someone.email, password: someone.password }))
    someone.token = session.access_token
  }

  private async newApiKey() {
    const created = await this.expect(201, "/api/v1/api-keys", json("POST", { name: "fuzz" }, this.accounts.basic.token))
    return { id: created.key.id as string, secret: created.secret as string }
  }

  private async newCookie() {
    const { basic } = this.accounts
    const response = await this.server.request(
      "/api/v1/auth/login",
      json("POST", { email: basic.email, password: basic.password, session_cookie: true })
    )
    const session = response.headers.getSetCookie().find((cookie) => cookie.startsWith("basalt_session="))
    if (response.status !== 200 || session === undefined) throw new Error(`fuzz set-up: cookie login: ${response.status}`)
    return { cookie: session.split(";")[0]!, csrf: response.json().csrf_token as string }
  }

  /** Tokens that must not authenticate: signed with another key, expired, for nobody, with odd claims, unsigned. */
  private async forgeTokens(jwtSecret: string) {
    const sign = (claims: Record<string, unknown>, secret: string, expires: number | string = "10m") =>
      new SignJWT(claims)
        .setProtectedHeader({ alg: "HS256", typ: "JWT" })
        .setIssuedAt()
        .setIssuer("basalt")
        .setAudience("basalt")
        .setExpirationTime(expires)
        .sign(new TextEncoder().encode(secret))
    const { basic } = this.accounts
    const sid = "00000000-0000-4000-8000-000000000000"
    this.forged.foreignJwt = [await sign({ sub: basic.id, sid }, "another secret of at least thirty-two characters")]
    this.forged.expiredJwt = [await sign({ sub: basic.id, sid }, jwtSecret, Math.floor(Date.now() / 1000) - 60)]
    this.forged.strangerJwt = [await sign({ sub: "00000000-0000-4000-8000-00000000beef", sid }, jwtSecret)]
    this.forged.oddClaimsJwt = await Promise.all(
      [
        { sub: "not-a-uuid", sid: "not-a-uuid" },
        { sub: "a\u0000b", sid: "\ud800" },
        { sub: basic.id, sid: "x".repeat(5000) },
        { sub: basic.id, sid: 42 },
        { sub: "' OR 1=1 --", sid }
      ].map((claims) => sign(claims, jwtSecret))
    )
    const unsigned = (claims: object) =>
      `${Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url")}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.`
    this.forged.algNoneJwt = [unsigned({ sub: basic.id, sid, iss: "basalt", aud: "basalt", exp: Math.floor(Date.now() / 1000) + 600 })]
  }

  /** Ids and cursors of an answer, for later requests to name. */
  harvest(body: unknown) {
    const stack = [body]
    while (stack.length > 0) {
      const value = stack.pop()
      if (value === null || typeof value !== "object") continue
      const record = value as Record<string, unknown>
      const id = typeof record.id === "string" && uuidPattern.test(record.id) ? record.id : undefined
      if (id !== undefined) {
        if ("content_hash" in record) this.add("document", id)
        else if ("member_count" in record) this.add("collection", id)
        else if ("prefix" in record) this.add("apiKey", id)
        else if ("email" in record && "role" in record) this.add("user", id)
      }
      if (typeof record.user_id === "string" && uuidPattern.test(record.user_id)) this.add("user", record.user_id)
      if (typeof record.next_cursor === "string") this.add("cursor", record.next_cursor)
      for (const item of Object.values(record)) if (item !== null && typeof item === "object") stack.push(item)
    }
  }

  private add(pool: string, value: string) {
    // The first admin stays out of reach: it puts the others back.
    if (value === this.root.id) return
    const items = this.pools.get(pool) ?? []
    if (items.includes(value)) return
    items.push(value)
    if (items.length > 200) items.splice(0, items.length - 200)
    this.pools.set(pool, items)
  }

  /** `{{pool:n}}` filled with an existing id (or cursor); with none yet, one that exists nowhere. */
  fill(text: string) {
    return text.replace(/\{\{(\w+):(\d+)\}\}/g, (_, pool: string, n: string) => {
      const items = this.pools.get(pool) ?? []
      if (items.length === 0) return pool === "cursor" ? "" : "00000000-0000-4000-8000-00000000dead"
      return items[Number(n) % items.length]!
    })
  }

  credentialHeaders(credential: Credential, method: string, n: number): Record<string, string> {
    const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
    const pick = (tokens: ReadonlyArray<string>) => tokens[n % tokens.length]!
    switch (credential) {
      case "none":
        return {}
      case "basic":
      case "curator":
      case "admin":
        return bearer(this.accounts[credential].token)
      case "apiKey":
        return bearer(this.apiKey.secret)
      case "revokedApiKey":
        return bearer(this.revokedApiKey)
      case "cookie":
        return { cookie: this.cookie.cookie, ...(method === "GET" || method === "HEAD" ? {} : { "x-csrf-token": this.cookie.csrf }) }
      case "cookieWithoutCsrf":
        return { cookie: this.cookie.cookie }
      case "garbage":
        return {
          authorization: pick([
            "Bearer garbage",
            `Bearer bsk_${"A".repeat(43)}`,
            "Basic dXNlcjpwYXNz",
            "Bearer",
            "Bearer ",
            `Bearer ${"a".repeat(4000)}`,
            `bearer ${this.accounts.basic.token}x`,
            "Token x",
            "Bearer a.b.c",
            "Bearer ..",
            `Bearer ${Buffer.from("{}").toString("base64url")}.${Buffer.from("[]").toString("base64url")}.x`
          ])
        }
      default:
        return bearer(pick(this.forged[credential]))
    }
  }

  /** Puts the accounts back as they were: role, active, a valid session, a live key, a cookie. */
  async repair() {
    const me = (headers: Record<string, string>) => this.server.request("/api/v1/users/me", { headers })
    if ((await me({ authorization: `Bearer ${this.root.token}` })).status !== 200) await this.logIn(this.root)
    for (const someone of Object.values(this.accounts)) {
      const current = await this.server.request(
        `/api/v1/admin/users/${someone.id}`,
        json("PATCH", { role: someone.role, active: true }, this.root.token)
      )
      if (current.status !== 200) throw new Error(`fuzz repair: ${someone.name}: ${current.status} ${current.text.slice(0, 200)}`)
      if ((await me({ authorization: `Bearer ${someone.token}` })).status !== 200) {
        await this.logIn(someone)
        this.repairs++
      }
    }
    if ((await me({ authorization: `Bearer ${this.apiKey.secret}` })).status !== 200) {
      this.apiKey = await this.newApiKey()
      this.repairs++
    }
    if ((await me({ cookie: this.cookie.cookie })).status !== 200) {
      this.cookie = await this.newCookie()
      this.repairs++
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Sending

const expand = (text: string, expansion: Expansion | undefined, bodyLimit: number): string => {
  if (expansion === undefined) return text
  const { shape, size } = expansion
  if (shape === "pad-to-limit") return text + " ".repeat(Math.max(0, bodyLimit + size - Buffer.byteLength(text)))
  const made =
    shape === "deep-array"
      ? `${"[".repeat(size)}${"]".repeat(size)}`
      : shape === "deep-object"
        ? `${'{"a":'.repeat(size)}1${"}".repeat(size)}`
        : shape === "wide-array"
          ? `[${"0,".repeat(size - 1)}0]`
          : shape === "wide-object"
            ? `{${Array.from({ length: size }, (_, i) => `"k${i}":0`).join(",")}}`
            : JSON.stringify("é".repeat(size * 5))
  return text.replace(expansion.marker, () => made)
}

interface Sent {
  readonly method: string
  readonly target: string
  readonly headers: Record<string, string>
  readonly body: Uint8Array | undefined
}

interface Answer {
  readonly status: number
  readonly headers: Headers
  readonly text: string
  readonly ms: number
}

type Outcome = { readonly answer: Answer } | { readonly failure: "timeout" | "no answer"; readonly message: string; readonly ms: number }

const streamFor = async (response: Response, ms: number) => {
  // An event stream stays open: what comes in a moment is enough.
  if (response.body === null) return ""
  const reader = response.body.getReader()
  const decoder = new TextDecoder()
  let text = ""
  const until = Date.now() + ms
  while (Date.now() < until) {
    const next = await Promise.race([
      reader.read(),
      new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), Math.max(1, until - Date.now())))
    ])
    if (next === undefined || next.done) break
    text += decoder.decode(next.value, { stream: true })
  }
  await reader.cancel().catch(() => {})
  return text
}

const fetchOnce = async (url: string, sent: Sent, timeoutMs: number): Promise<Outcome> => {
  const started = performance.now()
  const signal = AbortSignal.timeout(timeoutMs)
  try {
    const response = await fetch(`${url}${sent.target}`, {
      method: sent.method,
      headers: sent.headers,
      redirect: "manual",
      signal,
      ...(sent.body === undefined ? {} : { body: sent.body })
    })
    const eventStream = response.headers.get("content-type")?.startsWith("text/event-stream") === true
    const text = eventStream ? await streamFor(response, 300) : await response.text()
    return { answer: { status: response.status, headers: response.headers, text, ms: performance.now() - started } }
  } catch (error) {
    const ms = performance.now() - started
    if (signal.aborted) return { failure: "timeout", message: `no complete answer within ${timeoutMs} ms`, ms }
    const cause = (error as { cause?: { code?: string; message?: string } }).cause
    // Without a cause the request was never sent (fetch refused it): a mistake of the generator.
    if (cause === undefined) throw error
    return {
      failure: "no answer",
      message: `${(error as Error).message}${cause ? `: ${cause.code ?? ""} ${cause.message ?? ""}` : ""}`,
      ms
    }
  }
}

/** Bytes on a connection of their own (Connection: close), and the answer parsed by hand. */
const rawOnce = (url: string, raw: string, timeoutMs: number): Promise<Outcome> =>
  new Promise((resolve) => {
    const started = performance.now()
    const { hostname, port } = new URL(url)
    const socket = connect(Number(port), hostname)
    const chunks: Array<Buffer> = []
    const timer = setTimeout(() => {
      socket.destroy()
      resolve({ failure: "timeout", message: `no answer within ${timeoutMs} ms`, ms: performance.now() - started })
    }, timeoutMs)
    socket.on("connect", () => socket.end(Buffer.from(raw, "latin1")))
    socket.on("data", (chunk) => chunks.push(chunk))
    socket.on("error", () => {})
    socket.on("close", () => {
      clearTimeout(timer)
      const ms = performance.now() - started
      const data = Buffer.concat(chunks).toString("latin1")
      const headEnd = data.indexOf("\r\n\r\n")
      const statusLine = /^HTTP\/1\.[01] (\d{3})/.exec(data)
      if (headEnd === -1 || statusLine === null)
        return resolve({ failure: "no answer", message: `connection closed with ${JSON.stringify(data.slice(0, 80))}`, ms })
      const headers = new Headers()
      for (const line of data.slice(0, headEnd).split("\r\n").slice(1)) {
        const colon = line.indexOf(":")
        if (colon > 0) headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim())
      }
      let body = data.slice(headEnd + 4)
      if (headers.get("transfer-encoding")?.includes("chunked")) {
        let decoded = ""
        for (let at = 0; ; ) {
          const lineEnd = body.indexOf("\r\n", at)
          const size = Number.parseInt(body.slice(at, lineEnd), 16)
          if (lineEnd === -1 || !(size > 0)) break
          decoded += body.slice(lineEnd + 2, lineEnd + 2 + size)
          at = lineEnd + 2 + size + 2
        }
        body = decoded
      }
      resolve({ answer: { status: Number(statusLine[1]), headers, text: Buffer.from(body, "latin1").toString("utf8"), ms } })
    })
  })

// ---------------------------------------------------------------------------------------------
// Checks and the report

export type Check =
  | "timeout"
  | "no answer"
  | "server error"
  | "contract"
  | "accepted what the contract refuses"
  | "refused what the contract accepts"
  | "secret echoed"
  | "error body too long"
  | "internals leaked"
  | "metadata changed"
  | "overall time bound"

export interface Failure {
  readonly check: Check
  readonly message: string
  readonly index: number
  readonly planned: PlannedRequest | undefined
  readonly sent: Sent | undefined
  readonly status: number | undefined
}

/** A message for a log line: repeats folded (`x…(5000×)`), at most 400 characters. */
const shortened = (message: string) =>
  message.replace(/((?:%[0-9A-F]{2}){1,4}|[^%])\1{15,}/g, (run, unit: string) => `${unit}…(${run.length / unit.length}×)`).slice(0, 400)

/** Error bodies are short: a message and one detail per field. */
const longestErrorBody = 16 * 1024
const internals: ReadonlyArray<readonly [string, RegExp]> = [
  ["stack trace", /\n\s+at [\w.<]/],
  ["schema internals", /readonly \w+:|Expected \{|ReadonlyArray<|Expected undefined|\bSchema\./],
  ["SQL", /syntax error at or near|violates \w+ constraint|relation "\w+"|\bSELECT\b[^"]*\bFROM\b|invalid input syntax for type/i],
  ["file system path", /\/(?:work|home|tmp|root)\/[\w.-]+\/|node_modules\//]
]
const grantErrors = new Set(["invalid_grant", "unsupported_grant_type"])

/** Whether two JSON values are equal, object keys in any order (without recursion). */
const sameJson = (a: unknown, b: unknown): boolean => {
  const stack: Array<[unknown, unknown]> = [[a, b]]
  while (stack.length > 0) {
    const [x, y] = stack.pop()!
    if (x === null || y === null || typeof x !== "object" || typeof y !== "object") {
      if (x !== y) return false
      continue
    }
    if (Array.isArray(x) !== Array.isArray(y)) return false
    const keys = Object.keys(x)
    if (keys.length !== Object.keys(y).length) return false
    for (const key of keys) {
      if (!Object.hasOwn(y, key)) return false
      stack.push([(x as Record<string, unknown>)[key], (y as Record<string, unknown>)[key]])
    }
  }
  return true
}

/** Metadata is "returned as given" (the contract): a document answered for a request's metadata carries the same. */
const metadataKept = (sent: Sent, answer: any, record: (check: Check, message: string) => void) => {
  let request: any
  try {
    request = JSON.parse(Buffer.from(sent.body ?? []).toString("utf8"))
  } catch {
    return
  }
  const pairs: Array<[unknown, unknown, string]> = []
  if (request?.metadata !== undefined && answer?.metadata !== undefined) pairs.push([request.metadata, answer.metadata, ""])
  if (Array.isArray(request?.documents) && Array.isArray(answer?.results)) {
    for (const result of answer.results) {
      const given = request.documents[result.index]?.metadata
      if (given !== undefined && result.document?.metadata !== undefined)
        pairs.push([given, result.document.metadata, `item ${result.index}: `])
    }
  }
  for (const [given, answered, where] of pairs) {
    if (!sameJson(given, answered)) {
      record("metadata changed", `${where}sent ${JSON.stringify(given).slice(0, 160)}, answered ${JSON.stringify(answered).slice(0, 160)}`)
    }
  }
}

/** Negative and positive data: what the contract refuses is not accepted, what it accepts is not refused. */
const verdictChecks = (
  judgment: Judgment,
  status: number,
  error: ApiErrorBody | undefined,
  where: string,
  record: (check: Check, message: string) => void
) => {
  if (judgment.verdict === "invalid" && status < 400)
    record("accepted what the contract refuses", `${where}${status} for: ${judgment.reasons.join("; ")}`)
  if (judgment.verdict === "valid" && [400, 413, 415, 422].includes(status) && !(status === 400 && grantErrors.has(error?.error ?? ""))) {
    record("refused what the contract accepts", `${where}${status} ${JSON.stringify({ message: error?.message, details: error?.details })}`)
  }
}

interface ApiErrorBody {
  readonly error?: string
  readonly message?: string
  readonly details?: unknown
}

const checkAnswer = (
  planned: PlannedRequest,
  sent: Sent,
  judged: Judged,
  answer: Answer,
  record: (check: Check, message: string) => void
) => {
  const { status, text } = answer
  if (status >= 500) record("server error", `${status} ${text.slice(0, 200)}`)
  try {
    const received: ReceivedResponse = { status, headers: answer.headers, text }
    if ((planned.transport === true && status >= 400) || status === 408 || status === 431) {
      // Refused by Node's parser, before any route (the contract: 400, 431 or 408): still the one error shape.
      validateComponentResponse("BadRequest", received)
    } else validateResponse(sent.method, sent.target, received)
  } catch (error) {
    if (!(error instanceof ContractViolation) && !(error instanceof SyntaxError)) throw error
    record("contract", error.message)
  }
  const parsed = (() => {
    try {
      return JSON.parse(text)
    } catch {
      return undefined
    }
  })()
  if (status === 207 && judged.multiStatus !== undefined) {
    // One result per item: each item is accepted or refused as the contract says of it alone.
    verdictChecks(judged.multiStatus.whole, status, undefined, "", record)
    const results: ReadonlyArray<{ index: number; status: number; error?: ApiErrorBody }> = parsed?.results ?? []
    judged.multiStatus.items.forEach((item, index) => {
      const result = results.find((candidate) => candidate.index === index)
      if (result === undefined) record("contract", `207 without a result for item ${index}`)
      else verdictChecks(item, result.status, result.error, `item ${index}: `, record)
    })
  } else verdictChecks(judged, status, parsed, "", record)
  if (status < 300 && parsed !== undefined) metadataKept(sent, parsed, record)
  if (text.includes(secretCanary))
    record(
      "secret echoed",
      `the answer contains a password sent: ${text.slice(Math.max(0, text.indexOf(secretCanary) - 80), text.indexOf(secretCanary) + 40)}`
    )
  if (status >= 400) {
    if (text.length > longestErrorBody) record("error body too long", `${text.length} characters: ${text.slice(0, 160)}`)
    for (const [what, pattern] of internals) {
      const match = pattern.exec(text)
      if (match !== null) record("internals leaked", `${what}: …${text.slice(Math.max(0, match.index - 60), match.index + 80)}…`)
    }
  }
}

const shellQuote = (value: string | Uint8Array, limit: number) => {
  const bytes = typeof value === "string" ? Buffer.from(value) : Buffer.from(value)
  let out = ""
  for (const byte of bytes.subarray(0, limit)) {
    out +=
      byte === 0x27
        ? "\\'"
        : byte === 0x5c
          ? "\\\\"
          : byte >= 0x20 && byte < 0x7f
            ? String.fromCharCode(byte)
            : `\\x${byte.toString(16).padStart(2, "0")}`
  }
  return `$'${out}'`
}

/** The credential headers of a reproduction, by name: the values differ from run to run. */
const credentialVariable: Record<Credential, ReadonlyArray<string>> = {
  none: [],
  basic: ["authorization: Bearer $BASIC_JWT"],
  curator: ["authorization: Bearer $CURATOR_JWT"],
  admin: ["authorization: Bearer $ADMIN_JWT"],
  apiKey: ["authorization: Bearer $API_KEY"],
  revokedApiKey: ["authorization: Bearer $REVOKED_API_KEY"],
  cookie: ["cookie: basalt_session=$SESSION", "x-csrf-token: $CSRF"],
  cookieWithoutCsrf: ["cookie: basalt_session=$SESSION"],
  garbage: ["authorization: <garbage>"],
  foreignJwt: ["authorization: Bearer <JWT signed with another key>"],
  expiredJwt: ["authorization: Bearer <expired JWT>"],
  strangerJwt: ["authorization: Bearer <JWT of an unknown user and session>"],
  oddClaimsJwt: ["authorization: Bearer <JWT with non-uuid sub/sid claims>"],
  algNoneJwt: ["authorization: Bearer <unsigned JWT, alg none>"]
}

/** A command line that sends the same request (credentials by name), and what the generator did. */
export const reproduction = (failure: Failure, seed: number): string => {
  const { planned, sent } = failure
  if (planned === undefined || sent === undefined) return failure.message
  const replay = `FUZZ_SEED=${seed} FUZZ_ONLY=${failure.index}`
  if (planned.raw !== undefined) return `printf %s ${shellQuote(planned.raw, 300)} | nc 127.0.0.1 $PORT   # ${planned.detail}; ${replay}`
  const headers = Object.entries(sent.headers)
    .filter(([name]) => !["authorization", "cookie", "x-csrf-token"].includes(name))
    .map(([name, value]) => `-H ${shellQuote(`${name}: ${value}`, 200)}`)
  for (const header of credentialVariable[planned.credential]) headers.push(`-H "${header}"`)
  const body =
    sent.body === undefined
      ? ""
      : ` --data-binary ${shellQuote(sent.body, 300)}${sent.body.length > 300 ? ` # … ${sent.body.length} bytes` : ""}`
  return `curl -sS -X ${sent.method} "$BASALT${shellQuote(sent.target, 300).slice(2, -1)}" ${headers.join(" ")}${body}   # ${planned.detail.slice(0, 160)}; ${replay}`
}

/** Failures grouped by what failed, where, and the kind of request; a few examples of each kept. */
export class Failures {
  private readonly groups = new Map<string, { count: number; examples: Array<Failure> }>()
  count = 0

  add(failure: Failure) {
    const path = failure.sent?.target.split("?")[0]
    const where = path === undefined ? "" : `${failure.sent!.method} ${templateOf(path) ?? path.slice(0, 50)}`
    const key = `${failure.check} | ${where} | ${failure.planned?.variant ?? ""}`
    const group = this.groups.get(key) ?? { count: 0, examples: [] }
    group.count++
    if (group.examples.length < 3) group.examples.push(failure)
    this.groups.set(key, group)
    this.count++
  }

  /** The groups, largest first. */
  get grouped() {
    return [...this.groups.entries()].map(([key, group]) => ({ key, ...group })).sort((a, b) => b.count - a.count)
  }
}

export interface FuzzReport {
  readonly seed: number
  readonly sent: number
  readonly seconds: number
  readonly statuses: ReadonlyMap<number, number>
  readonly verdicts: Readonly<Record<string, number>>
  readonly slowestMs: number
  readonly failures: Failures
  readonly repairs: number
  /** Requests by kind (the generator's variant), and the operations they reached. */
  readonly kinds: ReadonlyMap<string, number>
  readonly operations: ReadonlySet<string>
}

/** `seed` and the chunk's number, as one 32-bit seed (each chunk of requests is sampled on its own). */
const chunkSeed = (seed: number, chunk: number) => (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) + Math.imul(chunk, 0xc2b2ae35)) | 0

export const chunkSize = 250

/** The requests numbered from `chunk * chunkSize`: the same for the same seed, whatever happened before. */
export const plannedChunk = (seed: number, chunk: number, count: number): ReadonlyArray<PlannedRequest> =>
  fc.sample(fuzzRequest, { seed: chunkSeed(seed, chunk), numRuns: count })

export const runFuzz = async (world: World, options: FuzzOptions): Promise<FuzzReport> => {
  const started = performance.now()
  const url = world.server.url
  const statuses = new Map<number, number>()
  const verdicts: Record<string, number> = { valid: 0, invalid: 0, any: 0 }
  const failures = new Failures()
  let sent = 0
  let slowestMs = 0
  const circumstances: Circumstances = { bodyLimit: options.bodyLimit, pgvector: world.pgvector }
  const harvested: Array<[number, unknown]> = []
  const kinds = new Map<string, number>()
  const reached = new Set<string>()

  const runOne = async (planned: PlannedRequest, index: number) => {
    const headers: Record<string, string> = { ...world.credentialHeaders(planned.credential, planned.method, index) }
    for (const [name, value] of Object.entries(planned.headers))
      headers[name] = name === "cookie" && headers.cookie !== undefined ? `${headers.cookie}; ${value}` : world.fill(value)
    const body =
      planned.body === undefined
        ? undefined
        : typeof planned.body === "string"
          ? Buffer.from(expand(world.fill(planned.body), planned.expansion, options.bodyLimit))
          : Buffer.from(world.fill(Buffer.from(planned.body).toString("latin1")), "latin1")
    // As fetch sends it (dot segments resolved, some characters percent-encoded).
    const target =
      planned.raw === undefined
        ? ((url) => url.pathname + url.search)(new URL(`${world.server.url}${world.fill(planned.target)}`))
        : planned.target
    const request: Sent = { method: planned.method, target, headers, body }
    const judged = judge(planned, request, circumstances)
    verdicts[judged.verdict] = (verdicts[judged.verdict] ?? 0) + 1
    const kind = planned.variant.split(":")[0]!
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1)
    if (judged.operationId !== undefined) reached.add(judged.operationId)
    const outcome =
      planned.raw === undefined
        ? await fetchOnce(url, request, options.requestTimeoutMs)
        : await rawOnce(url, planned.raw, options.requestTimeoutMs)
    sent++
    const record = (check: Check, message: string, status?: number) =>
      failures.add({ check, message: shortened(message), index, planned, sent: request, status })
    if ("failure" in outcome) return record(outcome.failure, outcome.message)
    const { answer } = outcome
    slowestMs = Math.max(slowestMs, answer.ms)
    statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1)
    checkAnswer(planned, request, judged, answer, (check, message) => record(check, message, answer.status))
    if (answer.status < 300 && answer.headers.get("content-type")?.includes("json")) {
      try {
        harvested.push([index, JSON.parse(answer.text)])
      } catch {
        // Checked above as a contract violation.
      }
    }
  }

  const chunks = Math.ceil(options.requests / chunkSize)
  for (let chunk = 0; chunk < chunks; chunk++) {
    const first = chunk * chunkSize
    const planned = plannedChunk(options.seed, chunk, Math.min(chunkSize, options.requests - first))
    const indexes = planned.map((_, i) => first + i).filter((index) => options.only === undefined || options.only.has(index))
    let next = 0
    await Promise.all(
      Array.from({ length: options.concurrency }, async () => {
        while (next < indexes.length) {
          const index = indexes[next++]!
          await runOne(planned[index - first]!, index)
        }
      })
    )
    // The ids a chunk's answers name go to the pools after it, in request order: the next chunk's
    // requests then name the same resources whatever order the answers came in.
    for (const [, body] of harvested.sort(([a], [b]) => a - b)) world.harvest(body)
    harvested.length = 0
    await world.repair()
    const elapsed = performance.now() - started
    if (elapsed > options.overallTimeoutMs && chunk < chunks - 1) {
      failures.add({
        check: "overall time bound",
        message: `${sent} of ${options.requests} requests took ${Math.round(elapsed / 1000)} s, over the bound of ${options.overallTimeoutMs / 1000} s`,
        index: first,
        planned: undefined,
        sent: undefined,
        status: undefined
      })
      break
    }
  }
  return {
    seed: options.seed,
    sent,
    seconds: (performance.now() - started) / 1000,
    statuses,
    verdicts,
    slowestMs,
    failures,
    repairs: world.repairs,
    kinds,
    operations: reached
  }
}

/** What was sent: the operations reached, and how many requests of each kind. */
export const coverageLine = (report: FuzzReport) =>
  `fuzz coverage: ${report.operations.size} of ${operations.length} operations; ` +
  [...report.kinds.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([kind, count]) => `${kind} ${count}`)
    .join(", ")

export const summaryLine = (report: FuzzReport, backend: string) =>
  `fuzz (${backend}): ${report.sent} requests in ${report.seconds.toFixed(1)} s, seed ${report.seed}, ` +
  `statuses ${JSON.stringify(Object.fromEntries([...report.statuses.entries()].sort(([a], [b]) => a - b)))}, ` +
  `contract says valid ${report.verdicts.valid} / invalid ${report.verdicts.invalid} / either ${report.verdicts.any}, ` +
  `slowest ${Math.round(report.slowestMs)} ms, accounts repaired ${report.repairs}, failures ${report.failures.count}`
