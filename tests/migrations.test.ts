/**
 * Migrations run at start, are idempotent, and are safe when several processes start together on
 * one database (they take turns on an advisory lock). Needs a real Postgres: it runs in CI's
 * Postgres pass (DATABASE_URL set), on a database of its own.
 */
import { describe, expect, it } from "vitest"
import { latestMigrationId, migrationCount } from "../src/database/migrations/index.ts"
import { postgresQuery, startServer } from "./support/server.ts"

const adminUrl = process.env.DATABASE_URL

describe.runIf(adminUrl !== undefined)("migrations on Postgres", () => {
  const query = async (text: string, database?: string) => {
    const url = new URL(adminUrl!)
    if (database !== undefined) url.pathname = `/${database}`
    return postgresQuery<{ n: number }>(url.toString(), text)
  }

  it("applies each migration once when four servers start at the same moment, then again on restart", async () => {
    const database = `basalt_migrations_${process.pid}_${Date.now()}`
    await query(`CREATE DATABASE ${database}`)
    const url = new URL(adminUrl!)
    url.pathname = `/${database}`
    try {
      const servers = await Promise.all(Array.from({ length: 4 }, () => startServer({ DATABASE_URL: url.toString() })))
      for (const server of servers) {
        const ready = await server.request("/ready")
        expect(ready.json().database.migration_version).toBe(latestMigrationId)
      }
      await Promise.all(servers.map((server) => server.stop()))

      const restarted = await startServer({ DATABASE_URL: url.toString() })
      expect((await restarted.request("/ready")).status).toBe(200)
      await restarted.stop()

      const counts = {
        migrations: (await query("SELECT count(*)::int AS n FROM basalt_migrations", database))[0]!.n,
        instances: (await query("SELECT count(*)::int AS n FROM basalt_instance", database))[0]!.n
      }
      expect(counts).toEqual({ migrations: migrationCount, instances: 1 })
    } finally {
      await query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`)
    }
  })
})
