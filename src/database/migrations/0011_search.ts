/**
 * Keyword search: BM25 over Postgres full text (src/search/KeywordRanking.ts has the formula).
 *
 * Each chunk gets `search_vector` (its contextual text through the 'english' configuration:
 * Snowball stemming, stop words dropped) with a GIN index for candidate generation, and
 * `search_length` (how many terms the vector holds, positions counted) for BM25's length
 * normalisation. Both are generated columns: whoever writes chunks needs to know nothing.
 *
 * BM25 also needs corpus statistics: how many chunks hold each lexeme (document frequency) and
 * how many chunks and terms there are. Counting them at query time costs a GIN scan per query
 * term; counters updated in place by every insert would make concurrent indexing transactions
 * queue on the rows of common lexemes. So statement-level triggers only APPEND signed deltas
 * (one row per lexeme per statement: no row is ever updated by two writers), and a background
 * fiber (SearchStatistics) folds them into `search_lexeme_stats` / `search_corpus_stats` every
 * few seconds. A query reads the folded row plus the deltas not yet folded, so the figures are
 * exact at every moment.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  // How many terms a tsvector holds, repeats counted (a lexeme without positions counts once).
  yield* sql`
    CREATE FUNCTION basalt_tsvector_length(vector tsvector) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN (SELECT coalesce(sum(coalesce(array_length(u.positions, 1), 1)), 0)::integer FROM unnest(vector) AS u)`
  yield* sql`
    ALTER TABLE chunks
      ADD COLUMN search_vector tsvector
        GENERATED ALWAYS AS (to_tsvector('english'::regconfig, contextual_content)) STORED`
  yield* sql`
    ALTER TABLE chunks
      ADD COLUMN search_length integer
        GENERATED ALWAYS AS (basalt_tsvector_length(to_tsvector('english'::regconfig, contextual_content))) STORED`
  yield* sql`CREATE INDEX chunks_search_vector ON chunks USING gin (search_vector)`
  yield* sql`CREATE INDEX chunks_document_id ON chunks (document_id)`

  yield* sql`CREATE TABLE search_lexeme_stats (lexeme text PRIMARY KEY, chunk_count bigint NOT NULL)`
  yield* sql`CREATE TABLE search_lexeme_deltas (lexeme text NOT NULL, chunk_count bigint NOT NULL)`
  yield* sql`CREATE INDEX search_lexeme_deltas_lexeme ON search_lexeme_deltas (lexeme)`
  // One row, folded; deltas appended beside it.
  yield* sql`
    CREATE TABLE search_corpus_stats (
      singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
      chunk_count bigint NOT NULL,
      term_count bigint NOT NULL
    )`
  yield* sql`INSERT INTO search_corpus_stats (chunk_count, term_count) VALUES (0, 0)`
  yield* sql`CREATE TABLE search_corpus_deltas (chunk_count bigint NOT NULL, term_count bigint NOT NULL)`

  // sign: +1 for rows added, -1 for rows removed. Statement-level: one delta row per lexeme per statement.
  yield* sql`
    CREATE FUNCTION basalt_search_stats_added() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO search_lexeme_deltas (lexeme, chunk_count)
        SELECT u.lexeme, count(*) FROM added, unnest(added.search_vector) AS u GROUP BY u.lexeme;
      INSERT INTO search_corpus_deltas (chunk_count, term_count)
        SELECT count(*), coalesce(sum(search_length), 0) FROM added HAVING count(*) > 0;
      RETURN NULL;
    END $$`
  yield* sql`
    CREATE FUNCTION basalt_search_stats_removed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO search_lexeme_deltas (lexeme, chunk_count)
        SELECT u.lexeme, -count(*) FROM removed, unnest(removed.search_vector) AS u GROUP BY u.lexeme;
      INSERT INTO search_corpus_deltas (chunk_count, term_count)
        SELECT -count(*), -coalesce(sum(search_length), 0) FROM removed HAVING count(*) > 0;
      RETURN NULL;
    END $$`
  yield* sql`
    CREATE TRIGGER chunks_search_stats_insert AFTER INSERT ON chunks
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION basalt_search_stats_added()`
  yield* sql`
    CREATE TRIGGER chunks_search_stats_delete AFTER DELETE ON chunks
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION basalt_search_stats_removed()`
  // An UPDATE counts as the old rows removed and the new ones added (one trigger cannot have
  // both transition tables under the names the functions use, hence two).
  yield* sql`
    CREATE TRIGGER chunks_search_stats_update_removed AFTER UPDATE ON chunks
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION basalt_search_stats_removed()`
  yield* sql`
    CREATE TRIGGER chunks_search_stats_update_added AFTER UPDATE ON chunks
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION basalt_search_stats_added()`
})
