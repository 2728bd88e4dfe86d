/**
 * The posting rewrites of 0012 and 0013 (a document's access changing, a document joining or
 * leaving a collection, a chunk's postings deleted) were one join each, which the planner may run
 * as a read of every posting: it did, with the statistics not yet gathered, so that each document
 * added to a collection read the whole table. Now they go document by document and chunk by chunk,
 * each statement a range of the postings' primary key (chunk id first), and the functions run
 * with sequential scans off, so that no plan falls back to reading the table.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE OR REPLACE FUNCTION basalt_search_postings_document_access() RETURNS trigger LANGUAGE plpgsql
    SET enable_seqscan = off AS $$
    DECLARE chunk record;
    BEGIN
      FOR chunk IN SELECT c.id FROM chunks c WHERE c.document_id = NEW.id LOOP
        UPDATE search_postings SET owner_id = NEW.owner_id, public = NEW.visibility = 'public' WHERE chunk_id = chunk.id;
      END LOOP;
      RETURN NULL;
    END $$`
  yield* sql`
    CREATE OR REPLACE FUNCTION basalt_search_postings_collections() RETURNS trigger LANGUAGE plpgsql
    SET enable_seqscan = off AS $$
    DECLARE document record; chunk record; ids uuid[];
    BEGIN
      PERFORM 1 FROM documents d WHERE d.id IN (SELECT x.document_id FROM changed x) ORDER BY d.id FOR NO KEY UPDATE;
      FOR document IN SELECT DISTINCT x.document_id AS id FROM changed x LOOP
        ids := basalt_document_collection_ids(document.id);
        FOR chunk IN SELECT c.id FROM chunks c WHERE c.document_id = document.id LOOP
          UPDATE search_postings SET collection_ids = ids WHERE chunk_id = chunk.id AND collection_ids IS DISTINCT FROM ids;
        END LOOP;
      END LOOP;
      RETURN NULL;
    END $$`
  yield* sql`
    CREATE OR REPLACE FUNCTION basalt_search_postings_removed() RETURNS trigger LANGUAGE plpgsql
    SET enable_seqscan = off AS $$
    DECLARE chunk record;
    BEGIN
      FOR chunk IN SELECT r.id FROM removed r LOOP
        DELETE FROM search_postings WHERE chunk_id = chunk.id;
      END LOOP;
      RETURN NULL;
    END $$`
})
