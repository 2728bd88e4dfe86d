/**
 * The crash test's server process: AppLive, exactly as `npm start` runs it, plus two test-only
 * pieces. With BASALT_TEST_SEED_DOCUMENTS=n on an empty database it inserts n documents with
 * SQL (as ingestion does) and submits each, then logs `{"seeded":n}`. Every 200 ms it logs
 * `{"progress":{"indexed":…,"total":…,"pending":…}}` (pending: indexing messages not yet
 * processed), read by the test from stdout.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer, Schedule } from "effect"
import { SqlClient } from "effect/sql"
import { AppLive } from "../../src/App.ts"
import { DocumentIndexer } from "../../src/indexing/DocumentIndexer.ts"
import { sampleDocument } from "./indexing.ts"

const seed = Effect.gen(function* () {
  const count = Number(process.env.BASALT_TEST_SEED_DOCUMENTS ?? 0)
  const sql = yield* SqlClient.SqlClient
  const indexer = yield* DocumentIndexer
  const [existing] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM documents`
  if (count > 0 && existing!.n === 0) {
    const [owner] = yield* sql<{ id: string }>`
      INSERT INTO users (email, display_name, role) VALUES ('crash@example.com', 'Crash', 'basic') RETURNING id::text AS id`
    const rows = Array.from({ length: count }, (_, n) => ({ id: crypto.randomUUID(), ...sampleDocument(n, 3 + (n % 5)) }))
    yield* sql`
      INSERT INTO documents (id, owner_id, source, title, content, content_hash)
      SELECT d.id, ${owner!.id}::uuid, 'api', d.title, d.content, md5(d.content)
      FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) AS d (id uuid, title text, content text)`
    yield* Effect.forEach(rows, (row) => indexer.submit({ documentId: row.id, revision: 1 }), { concurrency: 16, discard: true })
    process.stdout.write(`${JSON.stringify({ seeded: count })}\n`)
  }
  yield* sql<{ indexed: number; total: number; pending: number }>`
    SELECT count(*) FILTER (WHERE status = 'indexed')::int AS indexed, count(*)::int AS total,
           (SELECT count(*)::int FROM cluster_messages WHERE NOT processed) AS pending
    FROM documents`.pipe(
    Effect.tap(([progress]) => Effect.sync(() => process.stdout.write(`${JSON.stringify({ progress })}\n`))),
    Effect.repeat(Schedule.spaced("200 millis")),
    Effect.forkScoped
  )
})

NodeRuntime.runMain(Layer.launch(Layer.effectDiscard(seed).pipe(Layer.provide(AppLive))), { disableErrorReporting: false })
