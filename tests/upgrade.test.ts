/**
 * A database made by Basalt 0.1.0 (the Effect 3 release, commit bfb68d5) opens with this one: it
 * migrates (its own migrations and the cluster's tables), its accounts still sign in, and the
 * indexing its cluster left queued runs here, from the very messages it stored.
 *
 * The fixtures are what that release left behind, dumped with pg_dump --inserts (no owners, no
 * privileges), the `\restrict` lines taken out:
 * - tests/fixtures/upgrade/postgres.sql: on PostgreSQL 15 without pgvector (lexical-only mode).
 *   Ada signed up; one document was indexed; then, while the `chunks` table was locked by
 *   another session, three more were submitted and the server was killed (SIGKILL): their
 *   messages are unprocessed and the documents stopped at "embedding".
 * - tests/fixtures/upgrade/pglite.sql: on its embedded PGlite (with pgvector), the embedding
 *   provider (`hang-model`, 8 dimensions) never answering: three documents submitted, the server
 *   stopped (SIGTERM) while they waited. Dumped with pglite-tools' pg_dump.
 */
import { PGlite } from "@electric-sql/pglite"
import { vector } from "@electric-sql/pglite-pgvector"
import { Effect } from "effect"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { latestMigrationId, migrationCount } from "../src/database/migrations/index.ts"
import { freshPostgresDatabase, startServer, type TestServer, withPostgres } from "./support/server.ts"

const fixture = (name: string) => readFileSync(new URL(`./fixtures/upgrade/${name}`, import.meta.url), "utf8")

/** The dump's statements one by one (the driver runs one statement per query). */
const statements = (dump: string): Array<string> => {
  const found: Array<string> = []
  let start = 0
  for (let i = 0; i < dump.length; i++) {
    const c = dump[i]
    if (c === "'") {
      // A literal: '' inside it is a quote.
      do i = dump.indexOf("'", i + 1)
      while (dump[i + 1] === "'" && ++i)
    } else if (c === "-" && dump[i + 1] === "-") {
      i = dump.indexOf("\n", i)
      if (i < 0) break
    } else if (c === "$") {
      const tag = /^\$[A-Za-z_]*\$/.exec(dump.slice(i, i + 64))?.[0]
      if (tag !== undefined) i = dump.indexOf(tag, i + tag.length) + tag.length - 1
    } else if (c === ";") {
      found.push(dump.slice(start, i + 1))
      start = i + 1
    }
  }
  return found.map((statement) => statement.replace(/^(\s*--[^\n]*\n)*\s*/, "")).filter((statement) => statement !== "")
}

/** What the old release left queued, as each fixture has it. */
const queuedTitles = ["Queued before the upgrade 1", "Queued before the upgrade 2", "Queued before the upgrade 3"]

const waitFor = async <A>(what: string, probe: () => Promise<A | undefined>, timeoutMs = 90_000): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const found = await probe()
    if (found !== undefined) return found
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
}

const checkUpgraded = async (server: TestServer, previouslyIndexed: ReadonlyArray<string>) => {
  const ready = await server.request("/ready")
  expect(ready.status).toBe(200)
  expect(ready.json().database.migration_version).toBe(latestMigrationId)
  const [counts] = await server.query<{ migrations: number; instances: number }>(
    "SELECT (SELECT count(*)::int FROM basalt_migrations) AS migrations, (SELECT count(*)::int FROM basalt_instance) AS instances"
  )
  expect(counts).toEqual({ migrations: migrationCount, instances: 1 })
  // The cluster's tables carried over; its migrations continue where the old release's stopped.
  const clusterMigrations = await server.query<{ migration_id: number }>(
    "SELECT migration_id FROM cluster_migrations ORDER BY migration_id"
  )
  expect(clusterMigrations.map((row) => row.migration_id)).toEqual([1, 2, 3])

  // Ada, who signed up with the old release, signs in.
  const login = await server.request("/api/v1/auth/login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email: "ada@example.com", password: "ada password long" })
  })
  expect(login.status).toBe(200)

  // The messages the old cluster stored run: every queued document ends indexed, and its message processed.
  const documents = await waitFor("the queued documents to be indexed", async () => {
    const rows = await server.query<{ title: string; status: string; chunk_count: number; processed: boolean }>(`
      SELECT d.title, d.status, d.chunk_count, bool_and(m.processed) AS processed
      FROM documents d JOIN cluster_messages m ON m.entity_id = d.id::text
      GROUP BY d.id ORDER BY d.title`)
    return rows.every((row) => row.status === "indexed" && row.processed) ? rows : undefined
  })
  expect(documents.map((row) => row.title)).toEqual([...previouslyIndexed, ...queuedTitles].sort())
  expect(documents.every((row) => row.chunk_count > 0)).toBe(true)
  // Indexed means findable.
  const token = login.json().access_token as string
  const search = await server.request("/api/v1/search", {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: "obsidian volcanic glass", mode: "keyword" })
  })
  expect(search.status).toBe(200)
  expect(new Set(search.json().results.map((result: { title: string }) => result.title))).toEqual(new Set(queuedTitles))
}

describe("a database made by Basalt 0.1.0 (Effect 3)", () => {
  it("as its embedded PGlite data directory: opens, migrates and indexes what the old cluster left queued", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "basalt-upgrade-"))
    const old = await PGlite.create(join(dataDir, "pglite"), { extensions: { vector } })
    await old.exec(fixture("pglite.sql"))
    await old.close()
    const server = await startServer({ BASALT_DATA_DIR: dataDir, DATABASE_URL: "" })
    try {
      await checkUpgraded(server, [])
      // The old model's vector index gives way to the configured model's.
      const indexes = await server.query<{ model: string }>("SELECT model FROM embedding_index ORDER BY model")
      expect(indexes.map((row) => row.model)).toContain("hang-model")
    } finally {
      await server.stop()
      rmSync(dataDir, { recursive: true, force: true })
    }
  })

  it.runIf(process.env.DATABASE_URL !== undefined)(
    "as a Postgres database: opens, migrates and indexes what the old cluster left queued",
    async () => {
      const database = await freshPostgresDatabase()
      try {
        await withPostgres(database.url, (sql) => Effect.forEach(statements(fixture("postgres.sql")), (statement) => sql.unsafe(statement)))
        const server = await startServer({ DATABASE_URL: database.url })
        try {
          await checkUpgraded(server, ["Indexed before the upgrade"])
        } finally {
          await server.stop()
        }
      } finally {
        await database.drop()
      }
    }
  )
})
