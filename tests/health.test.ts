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

  it("GET /ready reports this process as a cluster runner, at the address it listens on", async () => {
    const port = new URL(server.url).port
    // The runner takes its shards a moment after it starts; alone (PGlite) it takes all 300.
    let cluster: { runner: string; shards: number; runners: number } | undefined
    for (let attempt = 0; attempt < 50; attempt++) {
      cluster = (await server.request("/ready")).json().cluster
      if (cluster!.shards > 0) break
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
    expect(cluster!.runner).toBe(`127.0.0.1:${port}`)
    expect(cluster!.runners).toBeGreaterThanOrEqual(1)
    if (!onPostgres) expect(cluster).toEqual({ runner: `127.0.0.1:${port}`, shards: 300, runners: 1 })
  })

  it("the runner transport answers other Basalt processes only: to anyone else it does not exist", async () => {
    const unknown = (await server.request("/internal/nothing", { method: "POST" })).json()
    const ping = `${JSON.stringify({ _tag: "Request", id: "1", tag: "Ping", payload: null, headers: [] })}\n`
    for (const init of [
      { method: "POST", body: ping },
      { method: "POST", body: ping, headers: { authorization: "Basalt-Runner not-the-key" } },
      { method: "GET" },
      { method: "DELETE" }
    ]) {
      const response = await server.request("/internal/cluster/", init)
      expect(response.status).toBe(404)
      expect(response.headers.get("allow")).toBeNull()
      expect(response.json()).toEqual({
        ...unknown,
        message: `No route for ${init.method} /internal/cluster/`,
        request_id: expect.any(String)
      })
    }
    // With the key the processes share through their database, a runner RPC is answered. The
    // route is not in openapi.yaml (no client may call it), so this one answer is not checked against it.
    const [row] = await server.query<{ value: string }>("SELECT value FROM basalt_secrets WHERE name = 'cluster_transport'")
    const answered = await fetch(`${server.url}/internal/cluster/`, {
      method: "POST",
      headers: { authorization: `Basalt-Runner ${row!.value}`, "content-type": "application/ndjson" },
      body: ping
    })
    expect(answered.status).toBe(200)
    expect(await answered.text()).toMatch(/"_tag":"Exit".*"_tag":"Success"/)
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
