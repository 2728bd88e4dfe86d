/**
 * Every failure in the one error shape. Real routes cover 404, 405 and 422; the body errors (400,
 * 413, 415) and 500 need routes the foundation does not have yet, so a probe API is served here
 * through exactly the production stack (serveApi, the same middleware, error renderer, request
 * body guard and database) and its responses are validated against components.responses.
 */
import { Effect, Layer, ManagedRuntime, Schema } from "effect"
import type { HttpServer } from "effect/http"
import { HttpApi, HttpApiBuilder, HttpApiEndpoint, HttpApiGroup } from "effect/http-api"
import { SqlClient } from "effect/sql"
import { request as httpRequest } from "node:http"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { AppConfigLive } from "../layers/AppConfigLive.ts"
import { DatabaseLive } from "../layers/DatabaseLive.ts"
import { listen, serveApi } from "../layers/HttpServerLive.ts"
import { LoggerLive } from "../layers/TelemetryLive.ts"
import { ValidationFailed } from "../src/http/ApiError.ts"
import { ErrorResponse } from "../src/http/ErrorResponse.ts"
import { endpoint } from "../src/contract/Contract.ts"
import { withBody } from "../src/http/RequestBody.ts"
import { withPath } from "../src/http/RequestParams.ts"
import { ServerLifecycle } from "../src/http/ServerLifecycle.ts"
import { validateComponentResponse } from "./support/contract.ts"
import { configFrom, serverUrl, startServer, type TestServer, testEnv } from "./support/server.ts"

const Item = Schema.Struct({ title: Schema.String.check(Schema.isMinLength(1)), count: Schema.Int })

class ProbeApi extends HttpApi.make("probe")
  .add(
    HttpApiGroup.make("probe").add(
      HttpApiEndpoint.post("createItem", "/probe/items", { payload: Item, success: Item, error: ValidationFailed }).pipe(withBody()),
      HttpApiEndpoint.get("defect", "/probe/defect"),
      // A free-text path parameter through the contract's helper, as every operation declares its parameters.
      endpoint("getDocument", (op) =>
        HttpApiEndpoint.get(op.name, "/api/v1/documents/:document_id", {
          params: op.path(Schema.Struct({ document_id: Schema.String })),
          success: Schema.Struct({ document_id: Schema.String }),
          error: ValidationFailed
        }).pipe(withPath)
      ),
      HttpApiEndpoint.get("sqlFailure", "/probe/sql")
    )
  )
  .middleware(ErrorResponse) {}

const ProbeLive = HttpApiBuilder.group(ProbeApi, "probe", (handlers) =>
  handlers
    .handle("createItem", ({ payload }) => Effect.succeed(payload))
    .handle("getDocument", ({ params }) => Effect.succeed(params))
    .handle("defect", () => Effect.die(new Error("secret internal detail at /srv/basalt/src/x.ts")))
    .handle("sqlFailure", () =>
      Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT secret_column FROM no_such_table`).pipe(Effect.orDie, Effect.asVoid)
    )
)

interface Raw {
  readonly status: number
  readonly headers: Headers
  readonly text: string
}

/** A raw HTTP/1.1 request, for bodies fetch will not send (chunked without a length, no content type). */
const raw = (url: string, options: { method: string; headers?: Record<string, string>; chunks?: ReadonlyArray<string> }) =>
  new Promise<Raw>((resolve, reject) => {
    const req = httpRequest(url, { method: options.method, headers: options.headers }, (res) => {
      let text = ""
      res.setEncoding("utf8")
      res.on("data", (chunk) => {
        text += chunk
      })
      res.on("end", () => {
        const headers = new Headers()
        for (const [name, value] of Object.entries(res.headers)) if (typeof value === "string") headers.set(name, value)
        resolve({ status: res.statusCode ?? 0, headers, text })
      })
    })
    req.on("error", reject)
    for (const chunk of options.chunks ?? []) req.write(chunk)
    req.end()
  })

describe("errors of the body guard and unexpected failures (probe API on the production stack)", () => {
  let base: string
  let logs: Array<string>
  let runtime: ManagedRuntime.ManagedRuntime<HttpServer.HttpServer, unknown>
  const write = process.stdout.write.bind(process.stdout)

  beforeAll(async () => {
    const { values } = testEnv({ BASALT_BODY_LIMIT: "1kb", LOG_LEVEL: "info" })
    const app = serveApi(ProbeApi, ProbeLive).pipe(
      Layer.provideMerge(listen(ProbeApi)),
      Layer.provide([DatabaseLive, ServerLifecycle.layer, LoggerLive]),
      Layer.provide(AppConfigLive),
      Layer.provide(configFrom(values))
    )
    runtime = ManagedRuntime.make(app)
    base = await runtime.runPromise(serverUrl)
    logs = []
    process.stdout.write = ((chunk: string | Uint8Array, ...rest: Array<any>) => {
      logs.push(String(chunk))
      return write(chunk, ...rest)
    }) as typeof process.stdout.write
  })
  afterAll(async () => {
    process.stdout.write = write
    await runtime.dispose()
  })

  const expectError = (response: Raw, status: number, component: string, code: string) => {
    expect(response.status).toBe(status)
    validateComponentResponse(component, response)
    const body = JSON.parse(response.text)
    expect(body.error).toBe(code)
    expect(body.request_id).toBe(response.headers.get("x-request-id"))
    return body
  }

  it("accepts a valid body (the guard lets good requests through)", async () => {
    const response = await raw(`${base}/probe/items`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      chunks: [JSON.stringify({ title: "a", count: 1 })]
    })
    expect(response.status).toBe(200)
    expect(JSON.parse(response.text)).toEqual({ title: "a", count: 1 })
  })

  it("400 on malformed JSON", async () => {
    const response = await raw(`${base}/probe/items`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      chunks: ['{"title": "a",']
    })
    const body = expectError(response, 400, "BadRequest", "malformed_json")
    expect(body.message).toMatch(/not valid JSON/)
  })

  it("400 on malformed JSON without quoting the body (the parser's excerpt may be a password)", async () => {
    const response = await raw(`${base}/probe/items`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      chunks: ['{"title": hunter2}']
    })
    expect(expectError(response, 400, "BadRequest", "malformed_json").message).toBe(
      "The request body is not valid JSON: Unexpected token 'h'"
    )
  })

  it("422 for JSON nested deeper than 64 levels, checked before parsing", async () => {
    const deep = (levels: number) =>
      raw(`${base}/probe/items`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        chunks: [`{"title": ${"[".repeat(levels)}${"]".repeat(levels)}, "count": 1}`]
      })
    expect(expectError(await deep(65), 422, "ValidationFailed", "validation_failed").message).toMatch(/more than 64 levels deep/)
    // 64 levels (the body and 63 arrays) are read, and decoded as any body: here, a title that is not a string.
    const body = expectError(await deep(63), 422, "ValidationFailed", "validation_failed")
    expect(body.details).toEqual([{ path: "title", message: "Expected a string, got an array" }])
  })

  it("400 on an empty JSON body", async () => {
    const response = await raw(`${base}/probe/items`, { method: "POST", headers: { "content-type": "application/json" } })
    expectError(response, 400, "BadRequest", "malformed_json")
  })

  it("413 when Content-Length is over the limit, without reading the body", async () => {
    const response = await raw(`${base}/probe/items`, {
      method: "POST",
      headers: { "content-type": "application/json", "content-length": "5000" },
      chunks: ["x".repeat(5000)]
    })
    expectError(response, 413, "PayloadTooLarge", "payload_too_large")
  })

  it("413 when a chunked body without a length grows over the limit", async () => {
    const response = await raw(`${base}/probe/items`, {
      method: "POST",
      headers: { "content-type": "application/json", "transfer-encoding": "chunked" },
      chunks: ['{"title": "', "y".repeat(800), "y".repeat(800), '", "count": 1}']
    })
    expectError(response, 413, "PayloadTooLarge", "payload_too_large")
  })

  it("415 on a content type the endpoint does not accept, and on none", async () => {
    const textPlain = await raw(`${base}/probe/items`, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      chunks: ['{"title":"a","count":1}']
    })
    expect(expectError(textPlain, 415, "UnsupportedMediaType", "unsupported_media_type").message).toMatch(
      /text\/plain is not accepted here; send application\/json/
    )
    const none = await raw(`${base}/probe/items`, { method: "POST", chunks: ['{"title":"a","count":1}'] })
    expectError(none, 415, "UnsupportedMediaType", "unsupported_media_type")
  })

  it("422 with details naming each field that breaks the schema, unknown fields included", async () => {
    const response = await raw(`${base}/probe/items`, {
      method: "POST",
      headers: { "content-type": "application/json; charset=utf-8" },
      chunks: [JSON.stringify({ title: "", count: 1.5, extra: true })]
    })
    const body = expectError(response, 422, "ValidationFailed", "validation_failed")
    expect(body.details.map((d: { path: string }) => d.path).sort()).toEqual(["count", "extra", "title"])
    // Each in words: what the field expects, and what was sent.
    expect(body.details).toContainEqual({ path: "title", message: "Expected a non-empty string" })
    expect(body.details).toContainEqual({ path: "count", message: "Expected an integer, got 1.5" })
    expect(body.details).toContainEqual({ path: "extra", message: "Not a known field: remove it or check its spelling" })
    expect(body.message).toMatch(/^The request body is invalid: \w+: .+ \(and 2 more problems in details\)$/)
  })

  it("422 for a path parameter with U+0000: every parameter Schema of the contract refuses it", async () => {
    const plain = await raw(`${base}/api/v1/documents/plain`, { method: "GET" })
    expect(plain.status).toBe(200)
    expect(JSON.parse(plain.text)).toEqual({ document_id: "plain" })
    const nul = await raw(`${base}/api/v1/documents/a%00b`, { method: "GET" })
    const body = expectError(nul, 422, "ValidationFailed", "validation_failed")
    expect(body.details).toEqual([{ path: "document_id", message: "contains the character U+0000 (NUL), which cannot be stored" }])
    expect(body.message).toBe("The path is invalid: document_id: contains the character U+0000 (NUL), which cannot be stored")
  })

  it("500 on a defect: nothing of the cause reaches the client, the log has it in full", async () => {
    const response = await raw(`${base}/probe/defect`, { method: "GET", headers: { "x-request-id": "probe-defect-1" } })
    const body = expectError(response, 500, "InternalError", "internal_error")
    expect(response.text).not.toMatch(/secret|\/srv|\.ts|Error:|at /)
    expect(body.request_id).toBe("probe-defect-1")
    // Log lines leave in batches, one event-loop turn after they are written.
    await new Promise((resolve) => setTimeout(resolve, 50))
    const line = logs
      .flatMap((chunk) => chunk.trimEnd().split("\n"))
      .map((l) => JSON.parse(l))
      .find((l) => l.request_id === "probe-defect-1" && l.level === "error")
    expect(line?.error).toMatch(/secret internal detail/)
    expect(line?.trace_id).toMatch(/^[0-9a-f]{32}$/)
  })

  it("500 on a failing SQL statement: no SQL, table or column name in the body", async () => {
    const response = await raw(`${base}/probe/sql`, { method: "GET" })
    expectError(response, 500, "InternalError", "internal_error")
    expect(response.text).not.toMatch(/secret_column|no_such_table|SELECT|relation/i)
  })
})

describe("errors on the real routes", () => {
  let server: TestServer
  beforeAll(async () => {
    server = await startServer()
  })
  afterAll(() => server.stop())

  it("404 in the one shape for an unknown path", async () => {
    const response = await server.request("/api/v1/nothing-here")
    expect(response.status).toBe(404)
    expect(response.json()).toMatchObject({ error: "not_found", request_id: response.headers.get("x-request-id") })
  })

  it("405 with Allow for a known path and the wrong method", async () => {
    const response = await server.request("/ready", { method: "POST", body: "{}", headers: { "content-type": "application/json" } })
    expect(response.status).toBe(405)
    expect(response.headers.get("allow")).toBe("GET, HEAD")
    expect(response.json().error).toBe("method_not_allowed")
  })

  it("422 for a path parameter outside its enum", async () => {
    const response = await server.request("/docs/assets/..%2F..%2Fpackage.json")
    expect(response.status).toBe(422)
    expect(response.json().details[0].path).toBe("asset")
  })
})
