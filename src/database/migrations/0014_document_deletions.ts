/**
 * A record of each deleted document, for the event stream: a `deleted` event goes to those who
 * could see the document, which needs what visibility reads (owner, visibility, collections) as
 * they were when it was deleted. Pruned after the retention in DocumentEvents.ts; a stream
 * resumed from before it may have missed deletions.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE TABLE document_deletions (
      document_id uuid PRIMARY KEY,
      -- No foreign keys: the owner and the collections may be gone too; what matters is who they were.
      owner_id uuid NOT NULL,
      visibility text NOT NULL,
      collection_ids uuid[] NOT NULL,
      revision integer NOT NULL,
      deleted_at timestamptz NOT NULL DEFAULT now()
    )`
  yield* sql`CREATE INDEX document_deletions_deleted_at ON document_deletions (deleted_at)`
})
