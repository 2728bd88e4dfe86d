import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startServer, type TestServer } from "./support/server.ts"

const onPostgres = process.env.DATABASE_URL !== undefined

describe("health and readiness", () => {
  let server: TestServer
  beforeAll(async () => {
    server = await startServer()
  })
  afterAll(() => server.stop())

  it("GET /health answers ok", async () => {
    const response = await server.request("/health")
    expect(response.status).toBe(200)
    expect(response.json()).toEqual({ status: "ok" })
  })

  it("GET /ready reports the database, its migration version and pgvector", async () => {
    const response = await server.request("/ready")
    expect(response.status).toBe(200)
    const body = response.json()
    expect(body.status).toBe("ready")
    expect(body.database.backend).toBe(onPostgres ? "postgres" : "pglite")
    expect(body.database.migration_version).toBe(1)
    // PGlite ships pgvector; the CI Postgres 15 has none, so it proves the lexical-only path.
    expect(body.database.pgvector).toBe(!onPostgres)
    expect(body.search_mode).toBe(onPostgres ? "lexical_only" : "hybrid")
  })

  it("HEAD /health answers like GET, without a body", async () => {
    const response = await server.request("/health", { method: "HEAD" })
    expect(response.status).toBe(200)
    expect(response.text).toBe("")
  })
})
