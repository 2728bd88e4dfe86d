import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { latestMigrationId } from "../src/database/migrations/index.ts"
import { postgresAdminQuery, startServer, type TestServer } from "./support/server.ts"

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
    expect(body.database.migration_version).toBe(latestMigrationId)
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

describe.runIf(onPostgres)("readiness when the database goes away (Postgres)", () => {
  it("answers 503 in the error shape, naming the database, while /health stays 200", async () => {
    const server = await startServer({}, { emptyDatabase: true })
    try {
      expect((await server.request("/ready")).status).toBe(200)
      // Cuts the pool's connections and removes the database under the running server.
      const database = new URL(server.databaseUrl!).pathname.slice(1)
      await postgresAdminQuery(`DROP DATABASE ${database} WITH (FORCE)`)
      const response = await server.request("/ready")
      expect(response.status).toBe(503)
      expect(response.json()).toMatchObject({ error: "not_ready", details: [{ path: "database" }] })
      expect(response.text).not.toMatch(new RegExp(database))
      expect((await server.request("/health")).status).toBe(200)
    } finally {
      await server.stop()
    }
  })
})
