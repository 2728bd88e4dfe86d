/**
 * A chunk's full-text vector is computed once. Migration 0011 made `search_vector` and
 * `search_length` generated columns; a generated column cannot read another, so `to_tsvector` ran
 * twice for every chunk written, which measured as the largest cost of a chunk's row after its
 * postings. A row trigger now fills both from one vector, before the row is stored (and so before
 * the statement-level triggers of 0011 to 0013 read them); writers still need to know nothing,
 * and a value a writer supplies is overwritten.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE chunks ALTER COLUMN search_vector DROP EXPRESSION`
  yield* sql`ALTER TABLE chunks ALTER COLUMN search_length DROP EXPRESSION`
  yield* sql`
    CREATE FUNCTION basalt_chunks_search_columns() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      NEW.search_vector := to_tsvector('english'::regconfig, NEW.contextual_content);
      NEW.search_length := basalt_tsvector_length(NEW.search_vector);
      RETURN NEW;
    END $$`
  yield* sql`
    CREATE TRIGGER chunks_search_columns BEFORE INSERT OR UPDATE ON chunks
    FOR EACH ROW EXECUTE FUNCTION basalt_chunks_search_columns()`
})
