/**
 * The vector index and the model it belongs to (table `embedding_index`, migration 0010).
 *
 * Vectors of two models are never compared: every row of `chunk_embeddings` names its model,
 * search filters on the configured model, and each (model, dimensions) has its own partial HNSW
 * index over `embedding::vector(<dimensions>)` (named by `hnswIndexName`). At start, `prepare`
 * records the configured model and creates its index before any indexing runs; then `reembed`,
 * in the background, gives every indexed chunk that lacks one a vector of the configured model,
 * and records the model as complete. Until it is, semantic search finds only the chunks already
 * re-embedded (never the old model's vectors).
 *
 * Only where pgvector is; elsewhere there are no vectors to keep.
 */
import { Context, Duration, Effect, Layer, Schedule } from "effect"
import { SqlClient } from "effect/sql"
import { DatabaseInfo } from "../database/Database.ts"
import { Embedder } from "../embedding/Embedder.ts"
import { vectorText } from "./IndexingRepo.ts"

/** pgvector's HNSW indexes `vector` up to this many dimensions; larger vectors are searched exactly. */
export const hnswMaxDimensions = 2000

const fnv1a = (text: string) => {
  let hash = 0x811c9dc5
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193)
  return (hash >>> 0).toString(16).padStart(8, "0")
}

/** The HNSW index of one (model, dimensions); a hash, since model names may hold any character. */
export const hnswIndexName = (model: string, dimensions: number) => `chunk_embeddings_hnsw_${fnv1a(model)}_${dimensions}`

const quoteLiteral = (text: string) => `'${text.replace(/'/g, "''")}'`

/** Chunks re-embedded per round: one embedder call, one statement. */
const reembedBatch = 128

export class EmbeddingIndex extends Context.Service<EmbeddingIndex>()("basalt/EmbeddingIndex", {
  make: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const { pgvector } = yield* DatabaseInfo
    const embedder = yield* Embedder
    const { dimensions, model } = embedder
    const indexName = hnswIndexName(model, dimensions)

    /**
     * Records the configured model and creates its HNSW index. When the same model comes with
     * another size, its vectors of the old size go first (with their index): a partial index on
     * `embedding::vector(<old size>)` would refuse the new rows.
     */
    const prepare = Effect.gen(function* () {
      if (!pgvector) return
      const resized = yield* sql<{ dimensions: number }>`
        SELECT dimensions FROM embedding_index WHERE model = ${model} AND dimensions <> ${dimensions}`
      for (const { dimensions: old } of resized) {
        yield* Effect.logInfo("embedding model resized: its vectors will be re-embedded").pipe(
          Effect.annotateLogs({ model, from: old, to: dimensions })
        )
        yield* sql.unsafe(`DROP INDEX IF EXISTS ${hnswIndexName(model, old)}`)
        yield* sql`DELETE FROM chunk_embeddings WHERE model = ${model} AND vector_dims(embedding) <> ${dimensions}`
        yield* sql`DELETE FROM embedding_index WHERE model = ${model} AND dimensions = ${old}`
      }
      yield* sql`INSERT INTO embedding_index (model, dimensions) VALUES (${model}, ${dimensions}) ON CONFLICT DO NOTHING`
      if (dimensions > hnswMaxDimensions) {
        yield* Effect.logWarning(
          `embedding vectors of ${dimensions} dimensions are more than pgvector's HNSW index takes (${hnswMaxDimensions}): ` +
            "semantic search scans them exactly, which is slow on large collections; configure BASALT_EMBEDDINGS_DIMENSIONS to shorten them"
        )
        return
      }
      yield* sql.unsafe(
        `CREATE INDEX IF NOT EXISTS ${indexName} ON chunk_embeddings ` +
          `USING hnsw ((embedding::vector(${dimensions})) vector_cosine_ops) WHERE model = ${quoteLiteral(model)}`
      )
    })

    const pendingChunks = sql<{ id: string; contextual_content: string }>`
      SELECT c.id, c.contextual_content
      FROM chunks c
      JOIN documents d ON d.id = c.document_id AND d.status = 'indexed'
      LEFT JOIN chunk_embeddings e ON e.chunk_id = c.id
      WHERE e.chunk_id IS NULL OR e.model <> ${model}
      ORDER BY c.id
      LIMIT ${reembedBatch}`

    /** One round: false when nothing was left. Chunks replaced meanwhile are skipped by the join. */
    const reembedRound = Effect.gen(function* () {
      const chunks = yield* pendingChunks
      if (chunks.length === 0) return false
      const vectors = yield* embedder.embed(chunks.map((chunk) => chunk.contextual_content))
      const rows = chunks.map((chunk, i) => ({ id: chunk.id, embedding: vectorText(vectors[i]!) }))
      yield* sql`
        INSERT INTO chunk_embeddings (chunk_id, model, embedding)
        SELECT r.id, ${model}, r.embedding::vector
        FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) AS r (id uuid, embedding text)
        JOIN chunks c ON c.id = r.id
        ON CONFLICT (chunk_id) DO UPDATE SET model = EXCLUDED.model, embedding = EXCLUDED.embedding`
      return true
    })

    /** Re-embeds what the configured model has not embedded yet, then records it as complete. */
    const reembed = Effect.gen(function* () {
      if (!pgvector) return
      let chunks = 0
      while (yield* reembedRound) chunks += reembedBatch
      yield* sql`
        UPDATE embedding_index SET completed_at = now()
        WHERE model = ${model} AND dimensions = ${dimensions} AND completed_at IS NULL`
      // Other models' indexes cover no rows any more.
      const stale = yield* sql<{ indexname: string }>`
        SELECT indexname FROM pg_indexes
        WHERE tablename = 'chunk_embeddings' AND indexname LIKE 'chunk_embeddings_hnsw_%' AND indexname <> ${indexName}`
      for (const { indexname } of stale) yield* sql.unsafe(`DROP INDEX IF EXISTS ${indexname}`)
      if (chunks > 0) {
        yield* Effect.logInfo("chunks re-embedded with the configured model").pipe(
          Effect.annotateLogs({ model, dimensions, chunks_at_most: chunks })
        )
      }
    }).pipe(
      Effect.tapError((error) => Effect.logWarning("re-embedding failed, retrying", error)),
      Effect.retry(Schedule.min([Schedule.exponential(Duration.seconds(1)), Schedule.spaced(Duration.minutes(1))])),
      Effect.orDie
    )

    return { prepare, reembed, model, dimensions } as const
  })
}) {
  static readonly layer = Layer.effect(this, this.make)
}
