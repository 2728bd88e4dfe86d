/**
 * An impact-ordered posting table for keyword search (src/search/KeywordRanking.ts): one row per
 * (chunk, lexeme) with the term's frequency, the chunk's length and an `impact`, the BM25 term
 * weight without idf computed when the chunk is written. The B-tree on (lexeme, impact DESC)
 * lets a query read each term's best chunks first and stop after a few hundred, instead of
 * scoring every chunk that holds a common term; the primary key (chunk_id, lexeme) serves the
 * exact rescoring of those candidates and the deletes. Both indexes carry what their readers
 * need (INCLUDE), so that reads are index-only scans once vacuum has marked the pages.
 *
 * `impact` only orders candidates: it uses the corpus's average length as folded when the chunk
 * was written (k1 2.0, b 0.6, the defaults), and the final score is recomputed from tf and length
 * with the current statistics. Postings are written by statement-level triggers on `chunks`, in
 * the writer's transaction, so whoever writes chunks needs to know nothing.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE TABLE search_postings (
      chunk_id uuid NOT NULL,
      lexeme text NOT NULL,
      document_id uuid NOT NULL,
      tf integer NOT NULL,
      length integer NOT NULL,
      impact real NOT NULL,
      PRIMARY KEY (chunk_id, lexeme) INCLUDE (tf, length, document_id)
    )`
  // The average length folded so far, or the batch's own when nothing is folded yet.
  yield* sql`
    CREATE FUNCTION basalt_search_postings_added() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE average float8;
    BEGIN
      SELECT CASE WHEN s.chunk_count > 0 THEN s.term_count::float8 / s.chunk_count END INTO average
        FROM search_corpus_stats s;
      IF average IS NULL THEN
        SELECT avg(search_length) INTO average FROM added;
      END IF;
      average := greatest(coalesce(average, 1), 1);
      INSERT INTO search_postings (chunk_id, lexeme, document_id, tf, length, impact)
        SELECT a.id, u.lexeme, a.document_id, coalesce(array_length(u.positions, 1), 1), a.search_length,
               coalesce(array_length(u.positions, 1), 1) * 3.0 /
               (coalesce(array_length(u.positions, 1), 1) + 2.0 * (0.4 + 0.6 * a.search_length / average))
        FROM added a, unnest(a.search_vector) AS u;
      RETURN NULL;
    END $$`
  yield* sql`
    CREATE FUNCTION basalt_search_postings_removed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      DELETE FROM search_postings p USING removed r WHERE p.chunk_id = r.id;
      RETURN NULL;
    END $$`
  yield* sql`
    CREATE TRIGGER chunks_search_postings_insert AFTER INSERT ON chunks
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION basalt_search_postings_added()`
  yield* sql`
    CREATE TRIGGER chunks_search_postings_delete AFTER DELETE ON chunks
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION basalt_search_postings_removed()`
  // Triggers of one event fire in name order: the old postings go before the new ones come.
  yield* sql`
    CREATE TRIGGER chunks_search_postings_update_1_removed AFTER UPDATE ON chunks
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION basalt_search_postings_removed()`
  yield* sql`
    CREATE TRIGGER chunks_search_postings_update_2_added AFTER UPDATE ON chunks
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION basalt_search_postings_added()`
  // The chunks written before this migration.
  yield* sql`
    INSERT INTO search_postings (chunk_id, lexeme, document_id, tf, length, impact)
    SELECT c.id, u.lexeme, c.document_id, coalesce(array_length(u.positions, 1), 1), c.search_length,
           coalesce(array_length(u.positions, 1), 1) * 3.0 /
           (coalesce(array_length(u.positions, 1), 1) + 2.0 * (0.4 + 0.6 * c.search_length /
             greatest((SELECT coalesce(avg(search_length), 1) FROM chunks), 1)))
    FROM chunks c, unnest(c.search_vector) AS u`
  yield* sql`CREATE INDEX search_postings_impact ON search_postings (lexeme, impact DESC) INCLUDE (chunk_id, document_id)`
})
