/**
 * Which embedding model the stored vectors belong to. One row per (model, dimensions) that has
 * been configured: `completed_at` is set once every indexed chunk has a vector of that model, so
 * the newest completed row is the model the index was built with, and a row without it is a
 * re-embedding still under way (src/indexing/EmbeddingIndex.ts). Kept where pgvector is not
 * too: the record says what a database would need re-embedded if it gained pgvector.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE TABLE embedding_index (
      model text NOT NULL,
      dimensions integer NOT NULL CHECK (dimensions > 0),
      created_at timestamptz NOT NULL DEFAULT now(),
      completed_at timestamptz,
      PRIMARY KEY (model, dimensions)
    )`
})
