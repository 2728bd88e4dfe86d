/**
 * The SQL of indexing: a document's text for a run, its status as the run goes, and the one
 * transaction that swaps its chunks (and their vectors) for the new ones.
 *
 * Every write names the revision the run is for: once ingestion bumps `documents.revision`,
 * the older run's writes match no row, so it stops (status steps) or its result is thrown away
 * (the final swap) instead of overwriting what belongs to the newer revision.
 */
import { SqlClient } from "@effect/sql"
import { Effect, Option } from "effect"
import type { Chunk } from "./Chunker.ts"

export type IndexingStep = "parsing" | "chunking" | "embedding"

export interface IndexingSource {
  readonly title: string
  readonly content: string
  readonly revision: number
  readonly status: string
}

export interface ChunkVectors {
  readonly model: string
  /** One per chunk, in chunk order. */
  readonly vectors: ReadonlyArray<Float32Array>
}

/** Rows per INSERT: big enough to be few statements, small enough for any server's packet limits. */
const rowsPerInsert = 256

/** pgvector's text form, `[0.1,0.2,…]`; shortest round-trip digits keep it exact for float4. */
export const vectorText = (vector: Float32Array): string => `[${Array.prototype.join.call(vector, ",")}]`

/**
 * A chunk cut inside a surrogate pair (only when one "word" outgrows a chunk) would carry half a
 * character, which jsonb refuses; the text column would have stored U+FFFD for it anyway.
 */
const wellFormed = (text: string) =>
  text.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, "\uFFFD")

export class IndexingRepo extends Effect.Service<IndexingRepo>()("basalt/IndexingRepo", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    const load = (documentId: string) =>
      sql<IndexingSource>`
        SELECT title, content, revision, status FROM documents WHERE id = ${documentId}::uuid`.pipe(
        Effect.map((rows) => Option.fromNullable(rows[0]))
      )

    /** false: the revision is no longer the document's (or the document is gone). */
    const setStep = (documentId: string, revision: number, step: IndexingStep) =>
      sql<{ id: string }>`
        UPDATE documents SET status = ${step}, status_changed_at = now(), error = NULL
        WHERE id = ${documentId}::uuid AND revision = ${revision}
        RETURNING id`.pipe(Effect.map((rows) => rows.length > 0))

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
     * Replaces the document's chunks in one transaction, if `revision` is still its revision
     * (false otherwise, and nothing is written). The document row is locked first, so a
     * concurrent revision bump waits for this swap or makes it a no-op, never half of one.
     */
    const replaceChunks = (
      documentId: string,
      revision: number,
      chunks: ReadonlyArray<Chunk>,
      vectors: ChunkVectors | undefined
    ) =>
      Effect.gen(function*() {
        const [current] = yield* sql<{ revision: number }>`
          SELECT revision FROM documents WHERE id = ${documentId}::uuid FOR UPDATE`
        if (current === undefined || current.revision !== revision) return false
        yield* sql`DELETE FROM chunks WHERE document_id = ${documentId}::uuid`
        const ids = chunks.map(() => crypto.randomUUID())
        for (let start = 0; start < chunks.length; start += rowsPerInsert) {
          const rows = chunks.slice(start, start + rowsPerInsert).map((chunk, i) => ({
            id: ids[start + i]!,
            ordinal: chunk.ordinal,
            content: wellFormed(chunk.text),
            contextual_content: wellFormed(chunk.contextualText),
            heading_path: chunk.headingPath,
            start_offset: chunk.start,
            end_offset: chunk.end,
            token_count: chunk.tokenCount
          }))
          // One parameter per statement: no parameter-count limit, one round trip.
          yield* sql`
            INSERT INTO chunks (id, document_id, ordinal, content, contextual_content, heading_path, start_offset, end_offset, token_count)
            SELECT r.id, ${documentId}::uuid, r.ordinal, r.content, r.contextual_content, r.heading_path, r.start_offset, r.end_offset, r.token_count
            FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) AS r (
              id uuid, ordinal integer, content text, contextual_content text, heading_path text[],
              start_offset integer, end_offset integer, token_count integer)`
          if (vectors !== undefined) {
            yield* insertVectors(
              rows.map((row, i) => ({ id: row.id, embedding: vectorText(vectors.vectors[start + i]!) })),
              vectors.model
            )
          }
        }
        yield* sql`
          UPDATE documents
          SET status = 'indexed', status_changed_at = now(), error = NULL, chunk_count = ${chunks.length}, indexed_at = now()
          WHERE id = ${documentId}::uuid`
        return true
      }).pipe(sql.withTransaction)

    return { load, setStep, fail, replaceChunks } as const
  })
}) {}
