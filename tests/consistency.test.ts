/**
 * The same rules everywhere, read from openapi.yaml rather than listed by hand: every operation
 * refuses a query parameter it does not declare; every method a literal path lacks is 405 with
 * its Allow, even where a parameter sibling has it; a path that is not valid percent-encoding is
 * 404 for every method; what Node's HTTP parser refuses is answered in the one error shape; and
 * inputs are read exactly as the contract states (`format: email` as ajv-formats checks it,
 * integers in decimal digits, RFC 3339 date-times of real dates, a `__proto__` metadata key kept).
 */
import Ajv2020 from "ajv/dist/2020.js"
import addFormats from "ajv-formats"
import { Exit, Schema } from "effect"
import fc from "fast-check"
import { connect } from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Email } from "../src/accounts/Accounts.ts"
import { DateTime, QueryInt } from "../src/contract/Formats.ts"
import { ignoresUnknownQueryParameters } from "../src/http/RequestParams.ts"
import { contract, validateComponentResponse } from "./support/contract.ts"
import { type Person, signUp } from "./support/people.ts"
import { startServer, type TestServer } from "./support/server.ts"

type Json = Record<string, any>

const httpMethods = ["get", "post", "put", "patch", "delete"] as const

/** Every operation of openapi.yaml: its method, path template and operation object. */
const operations = Object.entries<Json>(contract.paths).flatMap(([template, item]) =>
  httpMethods.flatMap((method) =>
    item[method] === undefined ? [] : [{ method: method.toUpperCase(), template, operation: item[method] as Json }]
  )
)

/** A concrete path for `template`: a valid value for each parameter (no such resource exists). */
const concrete = (template: string) =>
  template.replace("{asset}", "swagger-ui.css").replace(/\{[^}]+\}/g, "0190b2a4-7d3e-7000-8000-000000000001")

const ajv = new Ajv2020.default({ strict: false })
addFormats.default(ajv)
const contractEmail = ajv.compile(contract.components.schemas.Email)
const contractDateTime = ajv.compile({ type: "string", format: "date-time" })

const accepts = (schema: Schema.Decoder<unknown>, input: unknown) => Exit.isSuccess(Schema.decodeUnknownExit(schema)(input))

describe("the same rules everywhere", () => {
  let server: TestServer
  let admin: Person

  beforeAll(async () => {
    server = await startServer({ BASALT_ALLOW_SIGNUP: "true" }, { emptyDatabase: true })
    admin = await signUp(server, "admin")
  })
  afterAll(() => server.stop())

  const detailPaths = (body: Json): Array<string> => (body.details ?? []).map((detail: { path: string }) => detail.path)

  describe("unknown query parameters: 422 naming them, on every operation", () => {
    const ignoring = operations.filter(({ operation }) => operation[ignoresUnknownQueryParameters] === "ignore")
    const refusing = operations.filter(({ operation }) => operation[ignoresUnknownQueryParameters] !== "ignore")

    it("the contract marks one exception, the OpenID Connect callback (RFC 6749 has its client ignore them)", () => {
      expect(ignoring.map(({ operation }) => operation.operationId)).toEqual(["completeOidcSignIn"])
    })

    it("/admin/users?emial=x is refused, not a list of every account", async () => {
      const response = await admin.get("/api/v1/admin/users?emial=x")
      expect(response.status).toBe(422)
      expect(response.json().items).toBeUndefined()
      expect(detailPaths(response.json())).toEqual(["emial"])
      expect(response.json().message).toMatch(/emial.*email, limit, cursor/)
    })

    it.each(refusing.filter(({ method }) => method === "GET").map(({ template }) => template))(
      "GET %s with a caller's credentials",
      async (template) => {
        // A bound: the event stream, were the parameter ignored, would never end.
        const response = await server.request(`${concrete(template)}?emial=x&limit=1`, {
          headers: { authorization: `Bearer ${admin.token}` },
          signal: AbortSignal.timeout(10_000)
        })
        expect(response.status).toBe(422)
        expect(detailPaths(response.json())).toContain("emial")
      }
    )

    // Like an unknown path or method, an unknown name is the request's shape: answered before
    // credentials are asked for, so nothing of the operation runs.
    it.each(refusing.map(({ method, template }) => [method, template] as const))("%s %s without credentials", async (method, template) => {
      const response = await server.request(`${concrete(template)}?emial=x&emial=y&Limit=2`, { method })
      expect(response.status).toBe(422)
      expect(detailPaths(response.json()).sort()).toEqual(["Limit", "emial"])
    })

    it("lists at most ten names, and quotes a long one by its prefix", async () => {
      const names = Array.from({ length: 30 }, (_, i) => `unknown${i}`)
      const response = await server.request(`/health?${names.map((name) => `${name}=1`).join("&")}&${"x".repeat(5000)}=1`)
      expect(response.status).toBe(422)
      expect(response.json().details).toHaveLength(10)
      expect(response.json().message).toMatch(/and 21 more; this operation takes no query parameters$/)
      expect(response.text.length).toBeLessThan(2000)
    })

    it("the OpenID Connect callback ignores the provider's own parameters", async () => {
      const response = await server.request("/api/v1/auth/oidc/callback?iss=https%3A%2F%2Fidp.example&session_state=x&state=s&code=c")
      // Single sign-on is off here: the callback itself answers.
      expect(response.status).toBe(404)
      expect(response.json().message).toMatch(/not configured/)
    })
  })

  describe("a method a literal path lacks is 405 with its Allow, even where a parameter sibling has it", () => {
    const templates = Object.keys(contract.paths)
    const segments = (template: string) => template.split("/")
    const isParameter = (segment: string) => segment.startsWith("{")
    /** `literal` is a path that `parameterised` would match, were the literal not a template of its own. */
    const shadows = (literal: string, parameterised: string) =>
      literal !== parameterised &&
      segments(literal).length === segments(parameterised).length &&
      segments(parameterised).some(isParameter) &&
      segments(parameterised).every(
        (segment, i) => segment === segments(literal)[i] || (isParameter(segment) && !isParameter(segments(literal)[i]!))
      )
    const methodsOf = (template: string) =>
      httpMethods.filter((method) => contract.paths[template][method] !== undefined).map((m) => m.toUpperCase())
    const cases = templates.flatMap((literal) =>
      templates
        .filter((parameterised) => shadows(literal, parameterised))
        .flatMap((parameterised) =>
          httpMethods
            .map((method) => method.toUpperCase())
            .filter((method) => !methodsOf(literal).includes(method))
            .map((method) => [method, literal, parameterised] as const)
        )
    )

    it("the contract has such siblings (documents: batch, upload, progress, events)", () => {
      expect(new Set(cases.map(([, literal]) => literal))).toEqual(
        new Set(["/api/v1/documents/progress", "/api/v1/documents/batch", "/api/v1/documents/upload", "/api/v1/documents/events"])
      )
    })

    it.each(cases)("%s %s (a sibling of %s)", async (method, literal) => {
      const response = await server.request(literal, {
        method,
        headers: { authorization: `Bearer ${admin.token}`, "content-type": "application/json" },
        ...(method === "GET" ? {} : { body: "{}" })
      })
      expect(response.status).toBe(405)
      const allowed = methodsOf(literal)
      expect(response.headers.get("allow")?.split(", ").sort()).toEqual((allowed.includes("GET") ? [...allowed, "HEAD"] : allowed).sort())
      expect(response.json().message).toBe(`${method} is not allowed on ${literal}`)
    })

    it("the parameter sibling still serves its own paths", async () => {
      const response = await admin.get("/api/v1/documents/0190b2a4-7d3e-7000-8000-000000000001")
      expect(response.status).toBe(404)
      const deleted = await server.request("/api/v1/documents/0190b2a4-7d3e-7000-8000-000000000001", admin.json("DELETE"))
      expect(deleted.status).toBe(404)
    })
  })

  describe("a path that is not valid percent-encoding is 404 for every method, with no Allow", () => {
    const paths = [
      "/api/v1/documents/%zz",
      "/api/v1/documents/%zz/chunks",
      "/api/v1/documents/%",
      "/api/v1/documents/%E0%A4%A",
      "/api/v1/docu%zzments",
      "/api/v1/collections/%zz/members",
      "/docs/assets/%zz",
      "/health%zz"
    ]
    it.each(paths.flatMap((path) => ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"].map((method) => [method, path] as const)))(
      "%s %s",
      async (method, path) => {
        const response = await server.request(path, { method, headers: { authorization: `Bearer ${admin.token}` } })
        expect(response.status).toBe(404)
        expect(response.headers.get("allow")).toBeNull()
        if (method !== "HEAD") expect(response.json().error).toBe("not_found")
      }
    )
  })

  describe("a path is served only as its template spells it: any other spelling is 404, with no Allow", () => {
    /** Spellings a lenient router would serve as `path`: every one names no resource here. */
    const respellings = (template: string, path: string) => [
      ...(path === "/" ? [] : [`${path}/`, path.toUpperCase()]),
      `${path.slice(0, path.lastIndexOf("/"))}/${path.slice(path.lastIndexOf("/"))}`,
      `${path};x`,
      ...(template.includes("{") ? [template.replace(/\{[^}]+\}/g, "")] : [])
    ]
    const cases = operations.flatMap(({ method, template }) =>
      respellings(template, concrete(template)).map((path) => [method, path] as const)
    )

    it.each(cases)("%s %s", async (method, path) => {
      const response = await server.request(path, {
        method,
        headers: { authorization: `Bearer ${admin.token}`, "content-type": "application/json" },
        ...(method === "GET" || method === "DELETE" ? {} : { body: "{}" }),
        signal: AbortSignal.timeout(10_000)
      })
      expect(response.status).toBe(404)
      expect(response.headers.get("allow")).toBeNull()
      expect(response.json()).toMatchObject({ error: "not_found", message: `No route for ${method} ${path}` })
    })

    it("DELETE with a trailing slash deletes nothing", async () => {
      const collection = (await server.request("/api/v1/collections", admin.json("POST", { name: "Kept" }))).json()
      expect((await server.request(`/api/v1/collections/${collection.id}/`, admin.json("DELETE"))).status).toBe(404)
      expect((await admin.get(`/api/v1/collections/${collection.id}`)).status).toBe(200)
    })

    it("the documentation assets are served as spelled, and a name over 100 characters is 404, as declared", async () => {
      expect((await server.request("/docs/assets/swagger-ui.css")).status).toBe(200)
      expect((await server.request(`/docs/assets/${"a".repeat(101)}.css`)).status).toBe(404)
      expect(contract.paths["/docs/assets/{asset}"].get.responses["404"]).toBeDefined()
    })

    it("every operation with a path parameter declares 404", () => {
      const undeclared = operations.filter(({ template, operation }) => template.includes("{") && operation.responses["404"] === undefined)
      expect(undeclared.map(({ operation }) => operation.operationId)).toEqual([])
    })
  })

  describe("what Node's HTTP parser refuses is answered in the one error shape, and the connection closed", () => {
    interface RawAnswer {
      readonly status: number
      readonly headers: Headers
      readonly text: string
    }

    /** Writes `chunks` on one connection (each once the previous answer has arrived), and reads until the server closes it. */
    const exchange = (chunks: ReadonlyArray<string>) =>
      new Promise<{ readonly answers: ReadonlyArray<RawAnswer>; readonly closedByServer: boolean }>((resolve, reject) => {
        const { port } = new URL(server.url)
        const socket = connect(Number(port), "127.0.0.1")
        let received = ""
        let next = 0
        const answersIn = (raw: string): Array<RawAnswer> => {
          const answers: Array<RawAnswer> = []
          let rest = raw
          while (rest.length > 0) {
            const end = rest.indexOf("\r\n\r\n")
            if (end === -1) break
            const [statusLine, ...lines] = rest.slice(0, end).split("\r\n")
            const headers = new Headers(lines.map((line) => [line.slice(0, line.indexOf(":")), line.slice(line.indexOf(":") + 1).trim()]))
            const length = Number(headers.get("content-length") ?? 0)
            if (rest.length < end + 4 + length) break
            answers.push({ status: Number(statusLine!.split(" ")[1]), headers, text: rest.slice(end + 4, end + 4 + length) })
            rest = rest.slice(end + 4 + length)
          }
          return answers
        }
        const send = () => {
          if (next < chunks.length) socket.write(chunks[next++]!)
        }
        socket.on("connect", send)
        socket.on("data", (data) => {
          received += data.toString("latin1")
          if (answersIn(received).length === next) send()
        })
        socket.on("error", reject)
        // The client never closes: only the server can end the connection.
        socket.on("close", () => resolve({ answers: answersIn(received), closedByServer: true }))
        socket.setTimeout(10_000, () => {
          socket.destroy()
          resolve({ answers: answersIn(received), closedByServer: false })
        })
      })

    const expectOneShape = (answer: RawAnswer | undefined, status: number, code: string) => {
      expect(answer?.status).toBe(status)
      // The headers and body every error has (X-Request-ID, X-Process-Time, ApiError).
      validateComponentResponse("BadRequest", answer!)
      const body = JSON.parse(answer!.text)
      expect(body.error).toBe(code)
      expect(body.request_id).toBe(answer!.headers.get("x-request-id"))
      expect(answer!.headers.get("connection")).toBe("close")
    }

    it.each([
      ["a header section over 16 KiB", `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`, 431, "headers_too_large"],
      ["an unknown method", "BREW /health HTTP/1.1\r\nHost: x\r\n\r\n", 400, "malformed_request"],
      ["a space in the request target", "GET /he alth HTTP/1.1\r\nHost: x\r\n\r\n", 400, "malformed_request"],
      ["an unknown HTTP version", "GET /health HTTP/9.9\r\nHost: x\r\n\r\n", 400, "malformed_request"],
      ["bare LF line ends", "GET /health HTTP/1.1\nHost: x\n\n", 400, "malformed_request"],
      [
        "both Content-Length and Transfer-Encoding",
        "POST /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        400,
        "malformed_request"
      ],
      ["a TLS handshake on the plain port", "\u0016\u0003\u0001\u0002\u0000\u0001\u0000\u0001", 400, "malformed_request"],
      ["a control character in a header name", "GET /health HTTP/1.1\r\nHost: x\r\nX-\u0001: y\r\n\r\n", 400, "malformed_request"],
      ["a body length that is not a number", "POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n", 400, "malformed_request"]
    ])("%s: %i", async (_, request, status, code) => {
      const { answers, closedByServer } = await exchange([request])
      expect(answers).toHaveLength(1)
      expectOneShape(answers[0], status, code)
      expect(closedByServer).toBe(true)
    })

    it("an HTTP/1.1 request without Host: 400", async () => {
      const { answers, closedByServer } = await exchange(["GET /health HTTP/1.1\r\n\r\n"])
      expect(answers).toHaveLength(1)
      expectOneShape(answers[0], 400, "malformed_request")
      expect(JSON.parse(answers[0]!.text).message).toMatch(/Host/)
      expect(closedByServer).toBe(true)
    })

    it("an HTTP/1.0 request without Host is served", async () => {
      const { answers } = await exchange(["GET /health HTTP/1.0\r\n\r\n"])
      expect(answers.map((answer) => answer.status)).toEqual([200])
    })

    it("after a good request on the same connection", async () => {
      const { answers, closedByServer } = await exchange([
        "GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /he alth HTTP/1.1\r\nHost: x\r\n\r\n"
      ])
      expect(answers.map((answer) => answer.status)).toEqual([200, 400])
      expectOneShape(answers[1], 400, "malformed_request")
      expect(closedByServer).toBe(true)
    })
  })

  describe("emails: exactly what the contract's format: email accepts", () => {
    const create = (email: string) =>
      server.request(
        "/api/v1/admin/users",
        admin.json("POST", { email, password: "long enough password", display_name: "Someone", role: "basic" })
      )

    it.each([
      "first.last+tag@sub.example.com",
      "o'brien@example.ie",
      "{}|~`!#$%&'*/=?^_@example.co",
      "x@1.2",
      "user@xn--80ak6aa92e.com",
      "Mixed.Case@Example.COM"
    ])("accepts %s, which the contract accepts (stored lower-cased)", async (email) => {
      expect(contractEmail(email)).toBe(true)
      const response = await create(email)
      expect(response.status).toBe(201)
      expect(response.json().email).toBe(email.toLowerCase())
    })

    it.each([
      "ü@example.de",
      "a..b@example.com",
      ".a@example.com",
      "a@-example.com",
      '"quoted"@example.com',
      "a@[127.0.0.1]",
      "user@localhost",
      " padded@example.com",
      "padded@example.com "
    ])("refuses %s, which the contract refuses", async (email) => {
      expect(contractEmail(email)).toBe(false)
      const response = await create(email)
      expect(response.status).toBe(422)
      expect(detailPaths(response.json())).toEqual(["email"])
    })

    it("agrees with the contract on generated addresses and near-addresses", () => {
      const local = fc.stringMatching(/^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~ "ü@[\]-]{1,12}$/)
      const domain = fc.stringMatching(/^[a-zA-Z0-9.ü_-]{1,12}$/)
      const candidate = fc.oneof(
        fc.emailAddress(),
        fc.tuple(local, domain).map(([l, d]) => `${l}@${d}`),
        fc.string({ maxLength: 40 })
      )
      fc.assert(
        fc.property(candidate, (email) => accepts(Email, email) === contractEmail(email)),
        { numRuns: 5_000, seed: 9 }
      )
    })
  })

  describe("integers in a query: decimal digits only", () => {
    const listings = ["/api/v1/documents", "/api/v1/collections", "/api/v1/admin/users", "/api/v1/admin/audit"]

    it.each(listings.flatMap((path) => ["0x10", "1e1", "16.0", "+16", " 16", "16 ", "", "１６"].map((limit) => [path, limit] as const)))(
      "%s?limit=%j is refused",
      async (path, limit) => {
        const response = await admin.get(`${path}?limit=${encodeURIComponent(limit)}`)
        expect(response.status).toBe(422)
        expect(detailPaths(response.json())).toEqual(["limit"])
      }
    )

    it.each(listings)("%s?limit=016 is 16", async (path) => {
      expect((await admin.get(`${path}?limit=016`)).status).toBe(200)
    })

    it("reads exactly the strings of optional minus and digits", () => {
      fc.assert(
        fc.property(fc.string({ maxLength: 8 }), (text) => accepts(QueryInt, text) === /^-?[0-9]+$/.test(text)),
        { numRuns: 2_000, seed: 9 }
      )
    })
  })

  describe("date-times: RFC 3339, real calendar dates", () => {
    const refused = [
      "2020-02-30T00:00:00Z",
      "2021-02-29T00:00:00Z",
      "2020-13-01T00:00:00Z",
      "2020-04-31T00:00:00Z",
      "2020-01-01T24:00:00Z",
      "2020-01-01T00:60:00Z",
      "2020-01-01",
      "2020-01-01T00:00:00",
      "2020-01-01T00:00Z",
      "2020-01-01T00:00:00+0100",
      "1577836800",
      "March 1, 2020"
    ]

    it.each(refused)("the listing's updated_after=%s is refused", async (value) => {
      const response = await admin.get(`/api/v1/documents?updated_after=${encodeURIComponent(value)}`)
      expect(response.status).toBe(422)
      expect(detailPaths(response.json())).toEqual(["updated_after"])
    })

    it.each(["2020-02-30T00:00:00Z", "2020-01-01"])(
      "the audit's since=%s, a search filter and an API key's expiry are refused",
      async (value) => {
        const audit = await admin.get(`/api/v1/admin/audit?since=${encodeURIComponent(value)}`)
        expect(audit.status).toBe(422)
        expect(detailPaths(audit.json())).toEqual(["since"])
        const search = await server.request("/api/v1/search", admin.json("POST", { query: "x", filters: { updated_after: value } }))
        expect(search.status).toBe(422)
        expect(detailPaths(search.json())).toEqual(["filters.updated_after"])
        const key = await server.request("/api/v1/api-keys", admin.json("POST", { name: "k", expires_at: value }))
        expect(key.status).toBe(422)
        expect(detailPaths(key.json())).toEqual(["expires_at"])
      }
    )

    it.each(["2024-02-29T23:59:59.123456+05:30", "2020-01-01t00:00:00z", "2020-01-01T00:00:00-00:00"])("%s is accepted", async (value) => {
      expect((await admin.get(`/api/v1/documents?updated_after=${encodeURIComponent(value)}`)).status).toBe(200)
    })

    it("accepts a date-time exactly when its date and time are real, and only what the contract accepts", () => {
      const two = (n: number) => String(n).padStart(2, "0")
      const candidate = fc
        .tuple(
          fc.integer({ min: 0, max: 9999 }),
          fc.integer({ min: 0, max: 13 }),
          fc.integer({ min: 0, max: 32 }),
          fc.integer({ min: 0, max: 24 }),
          fc.integer({ min: 0, max: 60 }),
          fc.integer({ min: 0, max: 59 })
        )
        .map(([y, mo, d, h, mi, s]) => `${String(y).padStart(4, "0")}-${two(mo)}-${two(d)}T${two(h)}:${two(mi)}:${two(s)}Z`)
      fc.assert(
        fc.property(candidate, (text) => accepts(DateTime, text) === contractDateTime(text)),
        { numRuns: 5_000, seed: 9 }
      )
      fc.assert(
        fc.property(
          fc.date({ min: new Date("0000-01-01T00:00:00Z"), max: new Date("9999-12-31T23:59:59Z"), noInvalidDate: true }),
          (date) => {
            const decoded = Schema.decodeUnknownExit(DateTime)(date.toISOString())
            return Exit.isSuccess(decoded) && decoded.value.getTime() === date.getTime()
          }
        ),
        { numRuns: 2_000, seed: 9 }
      )
    })
  })

  describe("a __proto__ metadata key is data: stored and returned as given", () => {
    // As sent: in a JavaScript object literal, `__proto__:` would set the prototype instead.
    const raw = `{"__proto__":{"polluted":true},"nested":{"__proto__":[1,2],"plain":"x"},"constructor":"c"}`
    const document = (title: string) => `{"title":"${title}","content":"hello","source":"test","metadata":${raw}}`
    const send = (method: string, path: string, body: string) =>
      server.request(path, { method, headers: { authorization: `Bearer ${admin.token}`, "content-type": "application/json" }, body })

    it("through create, get, list, update and batch", async () => {
      const expected = JSON.parse(raw)
      const created = await send("POST", "/api/v1/documents", document("proto"))
      expect(created.status).toBe(202)
      expect(created.json().metadata).toEqual(expected)
      expect(Object.hasOwn(created.json().metadata, "__proto__")).toBe(true)
      const id = created.json().id
      expect((await admin.get(`/api/v1/documents/${id}`)).json().metadata).toEqual(expected)
      const listed = (await admin.get("/api/v1/documents?limit=100")).json().items.find((item: Json) => item.id === id)
      expect(Object.hasOwn(listed.metadata, "__proto__")).toBe(true)
      expect(listed.metadata).toEqual(expected)
      const updated = await send("PATCH", `/api/v1/documents/${id}`, `{"metadata":{"__proto__":{"changed":1}}}`)
      expect(updated.status).toBe(200)
      expect(updated.json().metadata).toEqual(JSON.parse(`{"__proto__":{"changed":1}}`))
      const batch = await send("POST", "/api/v1/documents/batch", `{"documents":[${document("in a batch")}]}`)
      expect(batch.status).toBe(207)
      expect(Object.hasOwn(batch.json().results[0].document.metadata, "__proto__")).toBe(true)
      // Nothing leaked into the server's prototypes.
      expect(({} as Json).polluted).toBeUndefined()
    })

    it("a __proto__ field of a request body itself is an unknown field", async () => {
      const response = await send("POST", "/api/v1/documents", `{"__proto__":{"title":"x"},"title":"t","content":"hello","source":"test"}`)
      expect(response.status).toBe(422)
      expect(detailPaths(response.json())).toEqual(["__proto__"])
    })
  })
})
