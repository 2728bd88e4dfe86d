import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { chunkDocument } from "../src/indexing/Chunker.ts"
import { freshPostgresDatabase } from "./support/server.ts"
import { createOwner, insertDocuments, sampleDocument, startIndexingApp, waitSettled } from "./support/indexing.ts"

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

describe("indexing", () => {
  it("indexes submitted documents into exactly the chunker's chunks", async () => {
    const app = await startIndexingApp(await freshDatabase())
    try {
      const owner = await createOwner(app)
      const docs = await insertDocuments(app, owner, Array.from({ length: 5 }, (_, n) => sampleDocument(n, 2 + n * 6)))
      for (const doc of docs) await app.submit(doc.id, 1)
      const states = await waitSettled(app, docs.map((d) => d.id))
      for (const doc of docs) {
        const expected = chunkDocument({ title: doc.title, text: doc.content })
        const state = states.find((s) => s.id === doc.id)!
        expect(state).toMatchObject({ status: "indexed", error: null, chunk_count: expected.length })
        const chunks = await app.query<any>(
          `SELECT ordinal, content, contextual_content, heading_path, start_offset, end_offset, token_count
           FROM chunks WHERE document_id = $1 ORDER BY ordinal`,
          [doc.id]
        )
        expect(chunks).toEqual(expected.map((c) => ({
          ordinal: c.ordinal,
          content: c.text,
          contextual_content: c.contextualText,
          heading_path: [...c.headingPath],
          start_offset: c.start,
          end_offset: c.end,
          token_count: c.tokenCount
        })))
      }
    } finally {
      await app.stop()
    }
  }, 120_000)
})
