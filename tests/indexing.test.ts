import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { Effect } from "effect"
import { chunkDocument } from "../src/indexing/Chunker.ts"
import { ClusterMessagesRepo, snowflakeAt } from "../src/indexing/ClusterMessagesRepo.ts"
import { hnswIndexName } from "../src/indexing/EmbeddingIndex.ts"
import { startFakeEmbeddingsServer } from "./support/fakeEmbeddingsServer.ts"
import {
  createOwner,
  documentStates,
  type IndexingApp,
  insertDocuments,
  sampleDocument,
  startIndexingApp,
  type TestDocument,
  waitSettled
} from "./support/indexing.ts"
import { freshPostgresDatabase } from "./support/server.ts"

const cleanups: Array<() => Promise<void> | void> = []
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup()
})

/** A database that outlives one app: a PGlite data directory, or a Postgres database of its own. */
const freshDatabase = async (): Promise<Record<string, string>> => {
  const dataDir = mkdtempSync(join(tmpdir(), "basalt-indexing-"))
  cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }))
  if (!process.env.DATABASE_URL) return { BASALT_DATA_DIR: dataDir }
  const database = await freshPostgresDatabase()
  cleanups.push(database.drop)
  return { BASALT_DATA_DIR: dataDir, DATABASE_URL: database.url }
}

/** The document's chunks, as the chunker makes them (title and content as stored). */
const expectChunksOf = async (app: IndexingApp, doc: Omit<TestDocument, "id"> & { readonly id: string }) => {
  const expected = chunkDocument({ title: doc.title, text: doc.content })
  const chunks = await app.query<any>(
    `SELECT ordinal, content, contextual_content, heading_path, start_offset, end_offset, token_count
     FROM chunks WHERE document_id = $1 ORDER BY ordinal`,
    [doc.id]
  )
  expect(chunks).toEqual(
    expected.map((c) => ({
      ordinal: c.ordinal,
      content: c.text,
      contextual_content: c.contextualText,
      heading_path: [...c.headingPath],
      start_offset: c.start,
      end_offset: c.end,
      token_count: c.tokenCount
    }))
  )
  return expected.length
}

const pgvector = !process.env.DATABASE_URL

describe("indexing", () => {
  it("indexes submitted documents into exactly the chunker's chunks", async () => {
    const app = await startIndexingApp(await freshDatabase())
    try {
      const owner = await createOwner(app)
      const docs = await insertDocuments(
        app,
        owner,
        Array.from({ length: 5 }, (_, n) => sampleDocument(n, 2 + n * 6))
      )
      for (const doc of docs) await app.submit(doc.id, 1)
      const states = await waitSettled(
        app,
        docs.map((d) => d.id)
      )
      for (const doc of docs) {
        const expected = chunkDocument({ title: doc.title, text: doc.content })
        const state = states.find((s) => s.id === doc.id)!
        expect(state).toMatchObject({ status: "indexed", error: null, chunk_count: expected.length })
        await expectChunksOf(app, doc)
      }
    } finally {
      await app.stop()
    }
  }, 120_000)

  it("resumes pending work after a restart on the same database, indexing none twice", async () => {
    const database = await freshDatabase()
    const first = await startIndexingApp(database)
    const owner = await createOwner(first)
    const docs = await insertDocuments(
      first,
      owner,
      Array.from({ length: 60 }, (_, n) => sampleDocument(n, 3))
    )
    for (const doc of docs) await first.submit(doc.id, 1)
    await first.stop()

    const second = await startIndexingApp(database)
    try {
      const states = await waitSettled(
        second,
        docs.map((d) => d.id)
      )
      expect(states.every((state) => state.status === "indexed")).toBe(true)
      for (const doc of docs) expect(states.find((s) => s.id === doc.id)!.chunk_count).toBe(await expectChunksOf(second, doc))
      const [duplicates] = await second.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM (SELECT document_id, ordinal FROM chunks GROUP BY 1, 2 HAVING count(*) > 1) d"
      )
      expect(duplicates!.n).toBe(0)
    } finally {
      await second.stop()
    }
  }, 180_000)

  it("indexes the newest revision: an older revision's run stops or is thrown away", async () => {
    const app = await startIndexingApp(await freshDatabase())
    try {
      const owner = await createOwner(app)
      const [doc] = await insertDocuments(app, owner, [sampleDocument(1, 20)])
      await app.submit(doc!.id, 1)
      const newer = sampleDocument(2, 3)
      await app.query("UPDATE documents SET content = $2, revision = 2, status = 'queued' WHERE id = $1", [doc!.id, newer.content])
      await app.submit(doc!.id, 2)
      const [state] = await waitSettled(app, [doc!.id])
      expect(state).toMatchObject({ status: "indexed", revision: 2 })
      expect(state!.chunk_count).toBe(await expectChunksOf(app, { ...doc!, content: newer.content }))
      // A late submission of the old revision changes nothing.
      await app.submit(doc!.id, 1)
      await new Promise((resolve) => setTimeout(resolve, 500))
      expect(await documentStates(app, [doc!.id])).toEqual([state])
    } finally {
      await app.stop()
    }
  }, 120_000)
})

describe("processed indexing messages", () => {
  /** Polls until `check` holds; a bound against a hang, not a timing. */
  const eventually = async (check: () => Promise<boolean>, what: string) => {
    const deadline = Date.now() + 60_000
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`never: ${what}`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }

  it("are deleted with their replies once old, in batches; unprocessed ones stay; a re-submission still ends already indexed", async () => {
    const app = await startIndexingApp(await freshDatabase())
    const deleteProcessed = (before: Date) =>
      app.run(Effect.flatMap(ClusterMessagesRepo, (repo) => repo.deleteProcessed(before)).pipe(Effect.provide(ClusterMessagesRepo.layer)))
    const countOf = async (text: string, params: ReadonlyArray<unknown> = []) => (await app.query<{ n: number }>(text, params))[0]!.n
    try {
      const owner = await createOwner(app)
      const docs = await insertDocuments(
        app,
        owner,
        Array.from({ length: 30 }, (_, n) => sampleDocument(300 + n, 2))
      )
      const ids = docs.map((doc) => doc.id)
      for (const id of ids) await app.submit(id, 1)
      await waitSettled(app, ids)
      // The reply is saved (and the message marked processed) just after the document's status.
      await eventually(
        async () =>
          (await countOf("SELECT count(*)::int AS n FROM cluster_messages WHERE entity_id = ANY($1) AND processed", [ids])) === 30,
        "every message processed"
      )
      expect(
        await countOf(
          "SELECT count(*)::int AS n FROM cluster_replies WHERE request_id IN (SELECT request_id FROM cluster_messages WHERE entity_id = ANY($1))",
          [ids]
        )
      ).toBe(30)

      // A backlog older than the retention (more than one batch), and a message still to deliver.
      const twoHoursAgo = snowflakeAt(new Date(Date.now() - 2 * 3600_000)).toString()
      const threeHoursAgo = snowflakeAt(new Date(Date.now() - 3 * 3600_000)).toString()
      await app.query(
        `INSERT INTO cluster_messages (id, message_id, shard_id, entity_type, entity_id, kind, tag, payload, headers, processed, request_id)
         SELECT $1::bigint + g, 'Backlog/' || g || '/Index/1', 'default:1', 'Backlog', g::text, 0, 'Index', '{}', '{}', true, $1::bigint + g
         FROM generate_series(1, 2500) g`,
        [twoHoursAgo]
      )
      await app.query(
        `INSERT INTO cluster_replies (id, kind, request_id, payload) SELECT $2::bigint + g, 0, $1::bigint + g, '{}' FROM generate_series(1, 2500) g`,
        [twoHoursAgo, threeHoursAgo]
      )
      const pending = crypto.randomUUID()
      await app.query(
        `INSERT INTO cluster_messages (id, message_id, shard_id, entity_type, entity_id, kind, tag, payload, headers, processed, request_id, deliver_at)
         VALUES ($1::bigint, $2, 'default:1', 'DocumentIndexing', $3, 0, 'Index', '{"revision":1}', '{}', false, $1::bigint, $4)`,
        [threeHoursAgo, `DocumentIndexing/${pending}/Index/1`, pending, Date.now() + 365 * 86400_000]
      )

      // An hour's retention: the backlog goes, the fresh messages stay.
      expect(await deleteProcessed(new Date(Date.now() - 3600_000))).toBe(2500)
      expect(await countOf("SELECT count(*)::int AS n FROM cluster_messages WHERE entity_type = 'Backlog'")).toBe(0)
      expect(await countOf("SELECT count(*)::int AS n FROM cluster_replies WHERE request_id > $1::bigint", [twoHoursAgo])).toBe(30)
      expect(await countOf("SELECT count(*)::int AS n FROM cluster_messages WHERE entity_id = ANY($1)", [ids])).toBe(30)

      // No retention: every processed message goes, with its reply; the unprocessed one stays.
      expect(await deleteProcessed(new Date())).toBe(30)
      expect(await countOf("SELECT count(*)::int AS n FROM cluster_messages WHERE entity_id = ANY($1)", [ids])).toBe(0)
      expect(await countOf("SELECT count(*)::int AS n FROM cluster_replies")).toBe(0)
      expect(await app.query("SELECT entity_id, processed FROM cluster_messages")).toEqual([{ entity_id: pending, processed: false }])

      // The same revision again: a new message, whose run finds it indexed and changes nothing.
      const before = await app.query(
        "SELECT status, status_changed_at, array_agg(c.id ORDER BY c.ordinal) AS chunks FROM documents d JOIN chunks c ON c.document_id = d.id WHERE d.id = $1 GROUP BY d.id",
        [docs[0]!.id]
      )
      await app.submit(docs[0]!.id, 1)
      await eventually(
        async () =>
          (await countOf("SELECT count(*)::int AS n FROM cluster_messages WHERE entity_id = $1 AND processed", [docs[0]!.id])) === 1,
        "the re-submission processed"
      )
      expect(before[0]).toMatchObject({ status: "indexed" })
      expect(
        await app.query(
          "SELECT status, status_changed_at, array_agg(c.id ORDER BY c.ordinal) AS chunks FROM documents d JOIN chunks c ON c.document_id = d.id WHERE d.id = $1 GROUP BY d.id",
          [docs[0]!.id]
        )
      ).toEqual(before)
    } finally {
      await app.stop()
    }
  }, 120_000)
})

describe("indexing with an embeddings provider", () => {
  it("coalesces duplicate submissions, retries 429 and 5xx, fails on 401 with the reason, bounds concurrency", async () => {
    const provider = await startFakeEmbeddingsServer()
    const app = await startIndexingApp({
      ...(await freshDatabase()),
      BASALT_EMBEDDINGS_URL: provider.baseUrl,
      BASALT_EMBEDDINGS_MODEL: "fake-embedding-model",
      BASALT_EMBEDDINGS_DIMENSIONS: "8",
      BASALT_EMBEDDINGS_API_KEY: "sk-test-key",
      BASALT_EMBEDDINGS_CONCURRENCY: "8",
      BASALT_INDEXING_CONCURRENCY: "2",
      // One document per batch: each its own embedding request, so the provider sees the bound.
      BASALT_INDEXING_BATCH_SIZE: "1"
    })
    try {
      const owner = await createOwner(app)
      const embedded = (doc: TestDocument) =>
        provider.requests.filter((r) => r.body?.input?.some((text: string) => text.startsWith(doc.title + "\n"))).length

      if (pgvector) {
        // Duplicates: one stored message, one run, one embedding request.
        const [doc] = await insertDocuments(app, owner, [sampleDocument(100)])
        await Promise.all(Array.from({ length: 5 }, () => app.submit(doc!.id, 1)))
        await app.submit(doc!.id, 1)
        expect((await waitSettled(app, [doc!.id]))[0]!.status).toBe("indexed")
        const [messages] = await app.query<{ n: number }>("SELECT count(*)::int AS n FROM cluster_messages WHERE entity_id = $1", [doc!.id])
        expect(messages!.n).toBe(1)
        expect(embedded(doc!)).toBe(1)
        const [vectors] = await app.query<{ n: number; model: string; dims: number }>(
          `SELECT count(*)::int AS n, min(e.model) AS model, min(vector_dims(e.embedding))::int AS dims
           FROM chunk_embeddings e JOIN chunks c ON c.id = e.chunk_id WHERE c.document_id = $1`,
          [doc!.id]
        )
        expect(vectors).toEqual({ n: await expectChunksOf(app, doc!), model: "fake-embedding-model", dims: 8 })

        // 429 then 503: retried, then indexed.
        provider.reset()
        provider.queue(
          { status: 429, headers: { "retry-after": "0" }, body: JSON.stringify({ error: { message: "Rate limit reached" } }) },
          { status: 503, body: JSON.stringify({ error: { message: "overloaded" } }) }
        )
        const [retried] = await insertDocuments(app, owner, [sampleDocument(101)])
        await app.submit(retried!.id, 1)
        expect((await waitSettled(app, [retried!.id]))[0]).toMatchObject({ status: "indexed", error: null })
        expect(embedded(retried!)).toBe(3)

        // 401: failed at once, with what to do.
        provider.reset()
        provider.queue({ status: 401, body: JSON.stringify({ error: { message: "Incorrect API key provided: sk-test-key" } }) })
        const [refused] = await insertDocuments(app, owner, [sampleDocument(102)])
        await app.submit(refused!.id, 1)
        const [failed] = await waitSettled(app, [refused!.id])
        expect(failed!.status).toBe("failed")
        expect(failed!.error).toContain("refused the API key (401): set a valid key")
        expect(failed!.error).not.toContain("sk-test-key")
      }

      // At most BASALT_INDEXING_CONCURRENCY documents at once, though the provider would take 8 requests.
      provider.reset()
      provider.setDelay(150)
      const many = await insertDocuments(
        app,
        owner,
        Array.from({ length: 10 }, (_, n) => sampleDocument(200 + n, 2))
      )
      for (const doc of many) await app.submit(doc.id, 1)
      const states = await waitSettled(
        app,
        many.map((d) => d.id)
      )
      expect(states.every((state) => state.status === "indexed")).toBe(true)
      // Without pgvector nothing is embedded, so the provider sees no request at all.
      expect(provider.maxInFlight()).toBe(pgvector ? 2 : 0)
    } finally {
      await app.stop()
      await provider.close()
    }
  }, 180_000)
})

describe.skipIf(!pgvector)("a change of embedding model", () => {
  it("re-embeds every indexed chunk with the new model in the background and records it", async () => {
    const database = await freshDatabase()
    const first = await startIndexingApp(database)
    const owner = await createOwner(first)
    const docs = await insertDocuments(
      first,
      owner,
      Array.from({ length: 20 }, (_, n) => sampleDocument(n, 3))
    )
    for (const doc of docs) await first.submit(doc.id, 1)
    await waitSettled(
      first,
      docs.map((d) => d.id)
    )
    await first.stop()

    const provider = await startFakeEmbeddingsServer()
    const second = await startIndexingApp({
      ...database,
      BASALT_EMBEDDINGS_URL: provider.baseUrl,
      BASALT_EMBEDDINGS_MODEL: "fake-embedding-model",
      BASALT_EMBEDDINGS_DIMENSIONS: "8"
    })
    try {
      const deadline = Date.now() + 60_000
      let recorded: ReadonlyArray<{ model: string; dimensions: number; complete: boolean }> = []
      while (Date.now() < deadline) {
        recorded = await second.query(
          "SELECT model, dimensions, completed_at IS NOT NULL AS complete FROM embedding_index ORDER BY created_at"
        )
        if (recorded.some((row) => row.model === "fake-embedding-model" && row.complete)) break
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
      expect(recorded).toEqual([
        { model: "basalt-hash-ngram-v1", dimensions: 512, complete: true },
        { model: "fake-embedding-model", dimensions: 8, complete: true }
      ])
      const vectors = await second.query<{ model: string; dims: number; n: number }>(
        "SELECT model, vector_dims(embedding)::int AS dims, count(*)::int AS n FROM chunk_embeddings GROUP BY 1, 2"
      )
      const [chunks] = await second.query<{ n: number }>("SELECT count(*)::int AS n FROM chunks")
      expect(vectors).toEqual([{ model: "fake-embedding-model", dims: 8, n: chunks!.n }])
      const indexes = await second.query<{ indexname: string }>(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'chunk_embeddings' AND indexname LIKE 'chunk_embeddings_hnsw_%'"
      )
      expect(indexes).toEqual([{ indexname: hnswIndexName("fake-embedding-model", 8) }])
    } finally {
      await second.stop()
      await provider.close()
    }
  }, 180_000)
})
