/**
 * The SQL of indexing: a document's text for a run, its status as the run goes, and the one
 * transaction that swaps its chunks (and their vectors) for the new ones.
 *
 * Every write names the revision the run is for: once ingestion bumps `documents.revision`,
 * the older run's writes match no row, so it stops (status steps) or its result is thrown away
 * (the final swap) instead of overwriting what belongs to the newer revision.
 */
import { Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { timeOrderedUuid } from "../database/TimeOrderedUuid.ts"
import { chunkPages } from "../documents/Pages.ts"
import type { Chunk } from "./Chunker.ts"

export type IndexingStep = "parsing" | "chunking" | "embedding"

export interface IndexingSource {
  readonly title: string
  readonly content: string
  /** Where each page begins in `content` (see documents/Pages.ts); null without pages. */
  readonly page_starts: ReadonlyArray<number> | null
  readonly revision: number
  readonly status: string
}

/** Rows per INSERT: big enough to be few statements, small enough for any server's packet limits. */
const rowsPerInsert = 256

/** pgvector's text form, `[0.1,0.2,…]`; shortest round-trip digits keep it exact for float4. */
export const vectorText = (vector: Float32Array): string => `[${Array.prototype.join.call(vector, ",")}]`

/**
 * A chunk cut inside a surrogate pair (only when one "word" outgrows a chunk) would carry half a
 * character, which jsonb refuses; the text column would have stored U+FFFD for it anyway.
 */
const wellFormed = (text: string) => text.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, "\uFFFD")

/** One document's new chunks, for the revision its run read. */
export interface IndexedDocument {
  readonly documentId: string
  readonly revision: number
  readonly chunks: ReadonlyArray<Chunk>
  /** The pages of the content the chunks were cut from; null without pages. */
  readonly pageStarts: ReadonlyArray<number> | null
  /** One per chunk, in chunk order; undefined where vectors are not kept. */
  readonly vectors: ReadonlyArray<Float32Array> | undefined
}

export interface DocumentRevision {
  readonly documentId: string
  readonly revision: number
}

/** The ids as one jsonb parameter: one statement for any number of documents. */
const revisionsJson = (documents: ReadonlyArray<DocumentRevision>) =>
  JSON.stringify(documents.map(({ documentId, revision }) => ({ id: documentId, revision })))

export class IndexingRepo extends Context.Service<IndexingRepo>()("basalt/IndexingRepo", {
  make: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient

    /** The documents that still exist, by id. */
    const load = (documentIds: ReadonlyArray<string>) =>
      sql<IndexingSource & { id: string }>`
        SELECT id, title, content, page_starts, revision, status FROM documents
        WHERE id IN (SELECT jsonb_array_elements_text(${JSON.stringify(documentIds)}::jsonb)::uuid)`.pipe(
        Effect.map((rows) => new Map(rows.map((row) => [row.id, row])))
      )

    /** Sets the step of each document still at the given revision; returns their ids (the others were superseded). */
    const setStep = (documents: ReadonlyArray<DocumentRevision>, step: IndexingStep) =>
      documents.length === 0
        ? Effect.succeed(new Set<string>())
        : sql<{ id: string }>`
        UPDATE documents d SET status = ${step}, status_changed_at = now(), error = NULL
        FROM jsonb_to_recordset(${revisionsJson(documents)}::jsonb) AS r (id uuid, revision integer)
        WHERE d.id = r.id AND d.revision = r.revision
        RETURNING d.id`.pipe(Effect.map((rows) => new Set(rows.map((row) => row.id))))

    const fail = (documentId: string, revision: number, reason: string) =>
      sql`
        UPDATE documents SET status = 'failed', status_changed_at = now(), error = ${reason}
        WHERE id = ${documentId}::uuid AND revision = ${revision}`.pipe(Effect.asVoid)

    const insertVectors = (rows: ReadonlyArray<{ readonly id: string; readonly embedding: string }>, model: string) =>
      sql`
        INSERT INTO chunk_embeddings (chunk_id, model, embedding)
        SELECT r.id, ${model}, r.embedding::vector
        FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) AS r (id uuid, embedding text)`

    /**
     * Replaces the chunks of every document whose revision is still the one given, in one
     * transaction; returns their ids (the others are left as they are). The document rows are
     * locked first, in id order, so a concurrent revision bump waits for this swap or makes it a
     * no-op for that document, never half of one.
     */
    const replaceChunks = (documents: ReadonlyArray<IndexedDocument>, model: string) =>
      Effect.gen(function* () {
        const locked = yield* sql<{ id: string }>`
          SELECT d.id FROM documents d
          JOIN jsonb_to_recordset(${revisionsJson(documents)}::jsonb) AS r (id uuid, revision integer)
            ON d.id = r.id AND d.revision = r.revision
          ORDER BY d.id
          FOR UPDATE OF d`
        const current = new Set(locked.map((row) => row.id))
        const swapped = documents.filter((document) => current.has(document.documentId))
        if (swapped.length === 0) return current
        const ids = JSON.stringify(swapped.map((document) => document.documentId))
        yield* sql`DELETE FROM chunks WHERE document_id IN (SELECT jsonb_array_elements_text(${ids}::jsonb)::uuid)`
        const rows = swapped.flatMap((document) =>
          document.chunks.map((chunk, i) => {
            const pages = chunkPages(document.pageStarts, chunk.start, chunk.end)
            return {
              id: timeOrderedUuid(),
              document_id: document.documentId,
              ordinal: chunk.ordinal,
              content: wellFormed(chunk.text),
              contextual_content: wellFormed(chunk.contextualText),
              heading_path: chunk.headingPath,
              start_offset: chunk.start,
              end_offset: chunk.end,
              token_count: chunk.tokenCount,
              first_page: pages?.firstPage ?? null,
              page_breaks: pages?.pageBreaks ?? null,
              vector: document.vectors?.[i]
            }
          })
        )
        for (let start = 0; start < rows.length; start += rowsPerInsert) {
          const slice = rows.slice(start, start + rowsPerInsert)
          // One parameter per statement: no parameter-count limit, one round trip.
          yield* sql`
            INSERT INTO chunks (id, document_id, ordinal, content, contextual_content, heading_path, start_offset, end_offset, token_count,
              first_page, page_breaks)
            SELECT r.id, r.document_id, r.ordinal, r.content, r.contextual_content, r.heading_path, r.start_offset, r.end_offset, r.token_count,
              r.first_page, r.page_breaks
            FROM jsonb_to_recordset(${JSON.stringify(slice.map(({ vector: _, ...row }) => row))}::jsonb) AS r (
              id uuid, document_id uuid, ordinal integer, content text, contextual_content text, heading_path text[],
              start_offset integer, end_offset integer, token_count integer, first_page integer, page_breaks integer[])`
          const vectors = slice.flatMap((row) => (row.vector === undefined ? [] : [{ id: row.id, embedding: vectorText(row.vector) }]))
          if (vectors.length > 0) yield* insertVectors(vectors, model)
        }
        const counts = JSON.stringify(swapped.map((document) => ({ id: document.documentId, chunks: document.chunks.length })))
        yield* sql`
          UPDATE documents d
          SET status = 'indexed', status_changed_at = now(), error = NULL, chunk_count = r.chunks, indexed_at = now()
          FROM jsonb_to_recordset(${counts}::jsonb) AS r (id uuid, chunks integer)
          WHERE d.id = r.id`
        return current
      }).pipe(sql.withTransaction)

    return { load, setStep, fail, replaceChunks } as const
  })
}) {
  static readonly layer = Layer.effect(this, this.make)
}
