/**
 * Who may read a posting's document, copied onto the posting (migration 0012's table), so that
 * keyword search checks visibility inside the impact-ordered index scan with no join per
 * posting: `owner_id`, `public` and `collection_ids` (the document's collections, NULL when it
 * is in none). `postingVisibleTo` (src/documents/Visibility.ts) is `visibleTo` over these
 * columns; the caller's memberships are read once per query, so membership changes need nothing
 * here. What must follow the documents is kept right by triggers, in the writer's transaction:
 *
 * - new postings (chunks written) read their document's access when they are inserted;
 * - a document's owner or visibility changing rewrites its postings' copy;
 * - a document entering or leaving a collection (also by cascade when a collection is deleted)
 *   rewrites its postings' `collection_ids`.
 *
 * Concurrency (READ COMMITTED): the posting writer locks its documents FOR SHARE and the
 * collection trigger FOR NO KEY UPDATE (a documents UPDATE holds that lock already) before
 * reading, each in a statement of its own, so whichever comes second waits for the first to
 * commit and then reads with a fresh snapshot: a chunk written while its document joins a
 * collection cannot keep the old copy.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    ALTER TABLE search_postings
      ADD COLUMN owner_id uuid,
      ADD COLUMN public boolean NOT NULL DEFAULT false,
      ADD COLUMN collection_ids uuid[]`
  // A document's collections as stored on its postings: sorted, NULL for none.
  yield* sql`
    CREATE FUNCTION basalt_document_collection_ids(document uuid) RETURNS uuid[]
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN (SELECT array_agg(dc.collection_id ORDER BY dc.collection_id) FROM document_collections dc WHERE dc.document_id = document)`
  yield* sql`
    UPDATE search_postings p SET owner_id = d.owner_id, public = d.visibility = 'public',
      collection_ids = basalt_document_collection_ids(d.id)
    FROM documents d WHERE d.id = p.document_id`
  yield* sql`ALTER TABLE search_postings ALTER COLUMN owner_id SET NOT NULL`
  yield* sql`
    CREATE OR REPLACE FUNCTION basalt_search_postings_added() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE average float8;
    BEGIN
      PERFORM 1 FROM documents d WHERE d.id IN (SELECT a.document_id FROM added a) ORDER BY d.id FOR SHARE;
      SELECT CASE WHEN s.chunk_count > 0 THEN s.term_count::float8 / s.chunk_count END INTO average
        FROM search_corpus_stats s;
      IF average IS NULL THEN
        SELECT avg(search_length) INTO average FROM added;
      END IF;
      average := greatest(coalesce(average, 1), 1);
      INSERT INTO search_postings (chunk_id, lexeme, document_id, tf, length, impact, owner_id, public, collection_ids)
        SELECT a.id, u.lexeme, a.document_id, coalesce(array_length(u.positions, 1), 1), a.search_length,
               coalesce(array_length(u.positions, 1), 1) * 3.0 /
               (coalesce(array_length(u.positions, 1), 1) + 2.0 * (0.4 + 0.6 * a.search_length / average)),
               d.owner_id, d.visibility = 'public', d.collection_ids
        FROM added a
        JOIN (SELECT d.id, d.owner_id, d.visibility, basalt_document_collection_ids(d.id) AS collection_ids
              FROM documents d WHERE d.id IN (SELECT a.document_id FROM added a)) AS d ON d.id = a.document_id,
        unnest(a.search_vector) AS u;
      RETURN NULL;
    END $$`
  yield* sql`
    CREATE FUNCTION basalt_search_postings_document_access() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE search_postings p SET owner_id = NEW.owner_id, public = NEW.visibility = 'public'
        FROM chunks c WHERE c.document_id = NEW.id AND p.chunk_id = c.id;
      RETURN NULL;
    END $$`
  yield* sql`
    CREATE TRIGGER documents_search_postings_access AFTER UPDATE OF owner_id, visibility ON documents
    FOR EACH ROW WHEN (OLD.owner_id IS DISTINCT FROM NEW.owner_id OR OLD.visibility IS DISTINCT FROM NEW.visibility)
    EXECUTE FUNCTION basalt_search_postings_document_access()`
  yield* sql`
    CREATE FUNCTION basalt_search_postings_collections() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM 1 FROM documents d WHERE d.id IN (SELECT x.document_id FROM changed x) ORDER BY d.id FOR NO KEY UPDATE;
      UPDATE search_postings p SET collection_ids = c.collection_ids
        FROM (SELECT c.id, basalt_document_collection_ids(c.document_id) AS collection_ids
              FROM chunks c WHERE c.document_id IN (SELECT x.document_id FROM changed x)) AS c
        WHERE p.chunk_id = c.id AND p.collection_ids IS DISTINCT FROM c.collection_ids;
      RETURN NULL;
    END $$`
  yield* sql`
    CREATE TRIGGER document_collections_search_postings_insert AFTER INSERT ON document_collections
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION basalt_search_postings_collections()`
  yield* sql`
    CREATE TRIGGER document_collections_search_postings_delete AFTER DELETE ON document_collections
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION basalt_search_postings_collections()`
  // The candidate scan and the total read visibility from the index itself (index-only), and
  // the candidate scan scores what it lists from tf and length without a probe.
  yield* sql`DROP INDEX search_postings_impact`
  yield* sql`
    CREATE INDEX search_postings_impact ON search_postings (lexeme, impact DESC)
    INCLUDE (chunk_id, document_id, tf, length, owner_id, public, collection_ids)`
})
