/**
 * Chunk embeddings, only where pgvector is installed (elsewhere Basalt searches by keywords
 * alone). One row per chunk, with the model that made it: vectors of different models are never
 * compared, and a change of model re-embeds in the background. The vector column has no fixed
 * dimension; the indexer creates an HNSW index per model on `embedding::vector(<dims>)`.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const [state] = yield* sql<{ pgvector: boolean }>`SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector') AS pgvector`
  if (state?.pgvector !== true) return
  yield* sql`
    CREATE TABLE chunk_embeddings (
      chunk_id uuid PRIMARY KEY REFERENCES chunks (id) ON DELETE CASCADE,
      model text NOT NULL,
      embedding vector NOT NULL
    )`
  yield* sql`CREATE INDEX chunk_embeddings_model ON chunk_embeddings (model)`
})
