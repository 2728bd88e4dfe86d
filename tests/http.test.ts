/** Cross-cutting HTTP behaviour of the real server: request ids, timing, compression, CORS, docs. */
import { readFileSync } from "node:fs"
import { createRequire } from "node:module"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { parse } from "yaml"
import { startServer, type TestServer } from "./support/server.ts"

const root = join(import.meta.dirname, "..")
const allowedOrigin = "https://app.example.com"

describe("HTTP behaviour", () => {
  let server: TestServer
  beforeAll(async () => {
    server = await startServer({ BASALT_CORS_ORIGINS: `${allowedOrigin}, https://admin.example.com` })
  })
  afterAll(() => server.stop())

  describe("X-Request-ID", () => {
    it("echoes a well-formed id from the client", async () => {
      const response = await server.request("/health", { headers: { "x-request-id": "client-id_1.2:3" } })
      expect(response.headers.get("x-request-id")).toBe("client-id_1.2:3")
    })

    it.each([
      ["with spaces", "not a valid id"],
      ["too long", "a".repeat(129)],
      ["with markup", "<script>alert(1)</script>"]
    ])("replaces an id %s with a generated one", async (_, id) => {
      const response = await server.request("/health", { headers: { "x-request-id": id } })
      expect(response.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/)
    })

    it("is the same in the error body as in the header", async () => {
      const response = await server.request("/nope", { headers: { "x-request-id": "trace-me" } })
      expect(response.json().request_id).toBe("trace-me")
      expect(response.headers.get("x-request-id")).toBe("trace-me")
    })
  })

  it("X-Process-Time is a duration in milliseconds", async () => {
    const response = await server.request("/ready")
    expect(Number(response.headers.get("x-process-time"))).toBeGreaterThanOrEqual(0)
  })

  describe("compression", () => {
    it.each(["br", "gzip"])("compresses a body over 1 KB with %s when accepted", async (encoding) => {
      const response = await server.request("/openapi.json", { headers: { "accept-encoding": encoding } })
      expect(response.headers.get("content-encoding")).toBe(encoding)
      expect(response.headers.get("vary")).toMatch(/Accept-Encoding/)
      // fetch decoded it: the body is intact.
      expect(response.json().openapi).toBe("3.1.0")
    })

    it("prefers the encoding with the higher q value", async () => {
      const response = await server.request("/openapi.json", { headers: { "accept-encoding": "br;q=0.2, gzip;q=0.9" } })
      expect(response.headers.get("content-encoding")).toBe("gzip")
    })

    it("leaves small bodies, and clients that refuse encodings, alone", async () => {
      const small = await server.request("/health", { headers: { "accept-encoding": "gzip, br" } })
      expect(small.headers.get("content-encoding")).toBeNull()
      const refused = await server.request("/openapi.json", { headers: { "accept-encoding": "identity, gzip;q=0" } })
      expect(refused.headers.get("content-encoding")).toBeNull()
    })
  })

  describe("CORS", () => {
    it("answers a preflight from an allowed origin, with credentials", async () => {
      const response = await server.request("/ready", {
        method: "OPTIONS",
        headers: { origin: allowedOrigin, "access-control-request-method": "POST", "access-control-request-headers": "content-type" }
      })
      expect(response.status).toBe(204)
      expect(response.headers.get("access-control-allow-origin")).toBe(allowedOrigin)
      expect(response.headers.get("access-control-allow-credentials")).toBe("true")
      expect(response.headers.get("access-control-allow-methods")).toMatch(/POST/)
    })

    it("grants an allowed origin on a simple request and exposes the request id", async () => {
      const response = await server.request("/health", { headers: { origin: allowedOrigin } })
      expect(response.headers.get("access-control-allow-origin")).toBe(allowedOrigin)
      expect(response.headers.get("access-control-expose-headers")).toMatch(/x-request-id/)
    })

    it("grants nothing to another origin", async () => {
      const response = await server.request("/health", { headers: { origin: "https://evil.example.net" } })
      expect(response.headers.get("access-control-allow-origin")).toBeNull()
    })
  })

  describe("the contract and its documentation", () => {
    const yamlText = readFileSync(join(root, "openapi.yaml"), "utf8")

    it("GET /openapi.yaml is the contract file, byte for byte", async () => {
      const response = await server.request("/openapi.yaml")
      expect(response.text).toBe(yamlText)
    })

    it("GET /openapi.json is the same document", async () => {
      const response = await server.request("/openapi.json")
      expect(response.json()).toEqual(parse(yamlText))
    })

    it("GET /docs is Swagger UI on local assets, and they are served", async () => {
      const page = await server.request("/docs")
      expect(page.text).toContain('SwaggerUIBundle({\n    url: "./openapi.json"')
      const require = createRequire(import.meta.url)
      for (const [asset, file] of [
        ["swagger-ui-bundle.js", "swagger-ui-dist/swagger-ui-bundle.js"],
        ["swagger-ui.css", "swagger-ui-dist/swagger-ui.css"]
      ] as const) {
        expect(page.text).toContain(`./docs/assets/${asset}`)
        const response = await server.request(`/docs/assets/${asset}`)
        expect(response.status).toBe(200)
        expect(response.text).toBe(readFileSync(require.resolve(file), "utf8"))
      }
    })

    it("GET /redoc is ReDoc on a local script", async () => {
      const page = await server.request("/redoc")
      expect(page.text).toContain('<redoc spec-url="./openapi.json">')
      expect(page.text).toContain("./docs/assets/redoc.standalone.js")
      const script = await server.request("/docs/assets/redoc.standalone.js")
      expect(script.headers.get("content-type")).toMatch(/^text\/javascript/)
      expect(script.text.length).toBeGreaterThan(100_000)
    })

    // An image, script or stylesheet the page would fetch from elsewhere (a link is not fetched).
    const externalFetches = /\bsrc\s*[:=]\s*["'`]https?:\/\/[^"'`]*|url\(\s*["']?https?:\/\/[^)]*|@import\s+["']?https?:\/\/\S*/g

    it("the documentation pages fetch nothing from outside the server (ReDoc's logo included)", async () => {
      const require = createRequire(import.meta.url)
      // What the npm bundle would fetch, so that the check below is known to see it.
      expect(readFileSync(require.resolve("redoc/bundles/redoc.standalone.js"), "utf8").match(externalFetches)).toEqual([
        'src:"https://cdn.redoc.ly/redoc/logo-mini.svg'
      ])
      for (const path of ["/docs", "/redoc"]) {
        const page = await server.request(path)
        expect(page.text).not.toMatch(/https?:\/\//)
        for (const [, asset] of page.text.matchAll(/\.\/docs\/assets\/([\w.-]+)/g)) {
          const body = (await server.request(`/docs/assets/${asset}`)).text
          expect({ asset, fetches: body.match(externalFetches) ?? [] }).toEqual({ asset, fetches: [] })
        }
      }
    })

    it("GET / sends people to /docs", async () => {
      const response = await server.request("/", { redirect: "manual" })
      expect(response.status).toBe(302)
      expect(response.headers.get("location")).toBe("./docs")
      expect(new URL(response.headers.get("location")!, `${server.url}/`).pathname).toBe("/docs")
    })

    it("Swagger UI's Authorize asks for an email and a password only, not an OAuth2 client", async () => {
      const page = await server.request("/docs")
      const require = createRequire(import.meta.url)
      const bundle = readFileSync(require.resolve("swagger-ui-dist/swagger-ui-bundle.js"), "utf8")
      // The rows of the password flow's dialog, as this Swagger UI renders them (label, then its field) ...
      expect(bundle).toContain('htmlFor:"password_type"},"Client credentials location:"')
      expect(bundle).toContain("htmlFor:`client_id_${")
      expect(bundle).toContain("htmlFor:`client_secret_${")
      // ... are hidden by the page.
      for (const label of ['label[for="password_type"]', 'label[for^="client_id_"]', 'label[for^="client_secret_"]']) {
        expect(page.text).toContain(`.swagger-ui .auth-container .wrapper:has(> ${label})`)
      }
      expect(page.text).toMatch(/:has\(> label\[for\^="client_secret_"\]\) \{ display: none; \}/)
    })
  })
})
