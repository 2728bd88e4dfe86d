/**
 * Pages, for text extracted from a paged file (PDF): where each page begins in the document's
 * content, and for each chunk the page it begins on and where in it later pages begin. Chunks
 * keep their own copy because they outlive a change of the content until they are re-indexed,
 * and a citation names the page of the passage it quotes.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE documents ADD COLUMN page_starts integer[]`
  yield* sql`ALTER TABLE chunks ADD COLUMN first_page integer, ADD COLUMN page_breaks integer[]`
})
