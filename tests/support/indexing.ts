/**
 * Indexing tests' helpers: the whole app (AppLive) in-process on a database that can outlive it,
 * documents written with SQL (as ingestion writes them), submitted through the DocumentIndexer,
 * and waited for.
 */
import { type Effect, Layer, ManagedRuntime } from "effect"
import { SqlClient } from "effect/sql"
import { AppLive } from "../../src/App.ts"
import { DocumentIndexer } from "../../src/indexing/DocumentIndexer.ts"
import { configFrom } from "./server.ts"

export interface IndexingApp {
  readonly query: <A extends object = Record<string, unknown>>(text: string, params?: ReadonlyArray<unknown>) => Promise<ReadonlyArray<A>>
  readonly submit: (documentId: string, revision: number) => Promise<void>
  /** Runs an effect in the app's runtime (its database, its services). */
  readonly run: <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) => Promise<A>
  readonly stop: () => Promise<void>
}

/** AppLive with exactly `env` (plus test defaults) as its configuration. */
export const startIndexingApp = async (env: Record<string, string>): Promise<IndexingApp> => {
  const values: Record<string, string> = {
    PORT: "0",
    HOST: "127.0.0.1",
    LOG_LEVEL: process.env.LOG_LEVEL ?? "Warning",
    ...env
  }
  const runtime = ManagedRuntime.make(AppLive.pipe(Layer.provide(configFrom(values))))
  const sql = await runtime.runPromise(SqlClient.SqlClient)
  const indexer = await runtime.runPromise(DocumentIndexer)
  return {
    query: (text, params = []) => runtime.runPromise(sql.unsafe(text, params)) as Promise<ReadonlyArray<any>>,
    submit: (documentId, revision) => runtime.runPromise(indexer.submit({ documentId, revision })),
    run: (effect) => runtime.runPromise(effect),
    stop: () => runtime.dispose()
  }
}

export interface TestDocument {
  readonly id: string
  readonly title: string
  readonly content: string
}

/** An owner for test documents (documents need one). */
export const createOwner = async (app: IndexingApp): Promise<string> => {
  const [row] = await app.query<{ id: string }>(
    "INSERT INTO users (email, display_name, role) VALUES ($1, 'Owner', 'basic') RETURNING id::text AS id",
    [`owner-${crypto.randomUUID()}@example.com`]
  )
  return row!.id
}

/** Inserts documents as ingestion does (status queued, revision 1). */
export const insertDocuments = async (app: IndexingApp, ownerId: string, documents: ReadonlyArray<Omit<TestDocument, "id">>) => {
  const rows = documents.map((document) => ({ id: crypto.randomUUID(), ...document }))
  await app.query(
    `INSERT INTO documents (id, owner_id, source, title, content, content_hash)
     SELECT d.id, $1::uuid, 'api', d.title, d.content, md5(d.content)
     FROM jsonb_to_recordset($2::jsonb) AS d (id uuid, title text, content text)`,
    [ownerId, JSON.stringify(rows)]
  )
  return rows
}

export interface DocumentState {
  readonly id: string
  readonly status: string
  readonly error: string | null
  readonly chunk_count: number
  readonly revision: number
}

export const documentStates = (app: IndexingApp, ids: ReadonlyArray<string>) =>
  app.query<DocumentState>(
    "SELECT id::text AS id, status, error, chunk_count, revision FROM documents WHERE id = ANY($1::uuid[]) ORDER BY id",
    [ids]
  )

const settled = new Set(["indexed", "failed"])

/** Polls until every document is indexed or failed; a bound against a hang, not a timing. */
export const waitSettled = async (app: IndexingApp, ids: ReadonlyArray<string>, boundMs = 120_000) => {
  const deadline = Date.now() + boundMs
  for (;;) {
    const states = await documentStates(app, ids)
    if (states.length === ids.length && states.every((state) => settled.has(state.status))) return states
    if (Date.now() > deadline) {
      const counts: Record<string, number> = {}
      for (const state of states) counts[state.status] = (counts[state.status] ?? 0) + 1
      throw new Error(`documents did not settle within ${boundMs} ms: ${JSON.stringify(counts)}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** A document of a few paragraphs under headings, different for every `n`. */
export const sampleDocument = (n: number, paragraphs = 4) => ({
  title: `Document ${n}`,
  content: Array.from(
    { length: paragraphs },
    (_, p) =>
      `## Part ${p + 1} of document ${n}\n\n` +
      Array.from(
        { length: 6 },
        (_, s) => `Sentence ${s} of part ${p} in document ${n} talks about topic ${(n * 7 + p * 3 + s) % 97}.`
      ).join(" ")
  ).join("\n\n")
})
