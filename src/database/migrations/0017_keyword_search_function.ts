/**
 * Keyword search's statement as a function, `basalt_keyword_search`, so that Postgres keeps its
 * plan. Built in TypeScript for every request (as it was until now), the statement was parsed and
 * planned on each call, which cost more than running it: under 16 concurrent clients at 100,000
 * chunks the same statement ran 1.7 times as many queries per second with its plan kept (pgbench,
 * prepared against simple protocol). PL/pgSQL keeps the plan of the statement it runs for the
 * connection; the caller, the filters and the sizes are parameters, so one plan serves every
 * request (a filter that is not given is NULL, and the documents are not read when none is).
 *
 * The ranking is src/search/KeywordRanking.ts's (Lucene's BM25 with the current statistics,
 * candidates from the impact-ordered postings of migration 0012, visibility from their copy of
 * the documents' access, migration 0013). What changed with it: only the `rescored` best
 * candidates by the score their lists give are completed by primary-key probes for the query
 * lexemes their lists left out; the others keep the score their lists give (see SearchRepo for
 * the measurement that chose how many).
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  // src/documents/Visibility.ts's rule over a posting's copy of its document's access: the
  // owner, public, or a collection of the document the caller is a member of. One expression
  // with no subquery, so Postgres inlines it into the index scan's filter.
  yield* sql`
    CREATE FUNCTION basalt_posting_visible(
      owner_id uuid, public boolean, collection_ids uuid[], caller uuid, caller_sees_all boolean, caller_collections uuid[]
    ) RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN caller_sees_all OR owner_id = caller OR public OR collection_ids && caller_collections`
  // One query lexeme's BM25 contribution to a chunk (KeywordRanking.ts): weight (qtf · idf), tf
  // and length from the posting, the corpus's average length. Inlined like the one above.
  yield* sql`
    CREATE FUNCTION basalt_bm25_term(weight float8, tf integer, length integer, average_length float8, k1 float8, b float8)
    RETURNS float8 LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN weight * (tf * (k1 + 1)) / (tf + k1 * (1 - b + b * length / average_length))`
  // Whether a document passes the request's filters (each NULL when not given). Called only
  // for a request with filters. (In a SQL function a column shadows a parameter of the same
  // name, hence the prefix.)
  yield* sql`
    CREATE FUNCTION basalt_search_filters_pass(
      document uuid, filter_sources text[], filter_tags text[], filter_document_ids uuid[], filter_collections uuid[],
      filter_updated_after timestamptz, filter_updated_before timestamptz
    ) RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE
    RETURN EXISTS (
      SELECT 1 FROM documents d
      WHERE d.id = document
        AND (filter_sources IS NULL OR d.source = ANY(filter_sources))
        AND (filter_tags IS NULL OR d.tags && filter_tags)
        AND (filter_document_ids IS NULL OR d.id = ANY(filter_document_ids))
        AND (filter_collections IS NULL OR EXISTS (
          SELECT 1 FROM document_collections fc WHERE fc.document_id = d.id AND fc.collection_id = ANY(filter_collections)))
        AND (filter_updated_after IS NULL OR d.updated_at >= filter_updated_after)
        AND (filter_updated_before IS NULL OR d.updated_at < filter_updated_before))`
  yield* sql`
    CREATE FUNCTION basalt_keyword_search(
      search_text text,
      caller uuid,
      caller_sees_all boolean,
      filter_sources text[],
      filter_tags text[],
      filter_document_ids uuid[],
      filter_collections uuid[],
      filter_updated_after timestamptz,
      filter_updated_before timestamptz,
      depth integer,
      rescored integer,
      page_limit integer,
      page_offset integer,
      total_cap integer,
      bm25_k1 float8,
      bm25_b float8
    ) RETURNS TABLE (document_id uuid, chunk_id uuid, score float8, postings bigint, documents bigint)
    LANGUAGE plpgsql STABLE
    -- Postgres compares a generic plan's estimate with the custom plans' and, finding the
    -- parameters' row counts unknown, kept planning anew on every call (1.2 ms of a 3 ms call).
    SET plan_cache_mode = force_generic_plan
    AS $function$
    #variable_conflict use_column
    DECLARE
      -- The collections the caller is a member of, read once: a posting's copy of its document's
      -- collections is matched against them.
      caller_collections uuid[] := CASE WHEN caller_sees_all THEN '{}'::uuid[] ELSE (
        SELECT coalesce(array_agg(cm.collection_id), '{}') FROM collection_members cm WHERE cm.user_id = caller) END;
      filtered boolean := filter_sources IS NOT NULL OR filter_tags IS NOT NULL OR filter_document_ids IS NOT NULL
        OR filter_collections IS NOT NULL OR filter_updated_after IS NOT NULL OR filter_updated_before IS NOT NULL;
    BEGIN
      RETURN QUERY
      WITH query_lexemes AS MATERIALIZED (
        SELECT u.lexeme, coalesce(array_length(u.positions, 1), 1) AS qtf
        FROM unnest(to_tsvector('english'::regconfig, search_text)) AS u
      ),
      corpus AS MATERIALIZED (
        SELECT greatest(s.chunk_count + coalesce((SELECT sum(d.chunk_count) FROM search_corpus_deltas d), 0), 1)::float8 AS n,
               (s.term_count + coalesce((SELECT sum(d.term_count) FROM search_corpus_deltas d), 0))::float8 AS terms
        FROM search_corpus_stats s
        LIMIT 1
      ),
      -- Each query lexeme with its weight: qtf · idf.
      query_terms AS MATERIALIZED (
        SELECT q.lexeme, q.qtf * ln(1 + (corpus.n - df.df + 0.5) / (df.df + 0.5)) AS weight
        FROM query_lexemes q
        CROSS JOIN corpus
        CROSS JOIN LATERAL (
          SELECT greatest(
            coalesce((SELECT s.chunk_count FROM search_lexeme_stats s WHERE s.lexeme = q.lexeme), 0) +
            coalesce((SELECT sum(x.chunk_count) FROM search_lexeme_deltas x WHERE x.lexeme = q.lexeme), 0),
            0)::float8 AS df
        ) AS df
      ),
      average AS MATERIALIZED (SELECT greatest(corpus.terms / corpus.n, 1) AS length FROM corpus),
      -- Each query lexeme's best postings the caller may see inside the filters (index-only
      -- without filters), with their BM25 contribution.
      listed AS MATERIALIZED (
        SELECT q.lexeme, top.chunk_id, top.document_id,
               basalt_bm25_term(q.weight, top.tf, top.length, a.length, bm25_k1, bm25_b) AS score
        FROM query_terms q
        CROSS JOIN average a
        CROSS JOIN LATERAL (
          SELECT p.chunk_id, p.document_id, p.tf, p.length FROM search_postings p
          WHERE p.lexeme = q.lexeme
            AND basalt_posting_visible(p.owner_id, p.public, p.collection_ids, caller, caller_sees_all, caller_collections)
            AND (NOT filtered OR basalt_search_filters_pass(p.document_id, filter_sources, filter_tags,
              filter_document_ids, filter_collections, filter_updated_after, filter_updated_before))
          ORDER BY p.impact DESC
          LIMIT depth
        ) AS top
      ),
      candidates AS MATERIALIZED (
        SELECT l.chunk_id, l.document_id, sum(l.score) AS score FROM listed l GROUP BY l.chunk_id, l.document_id
      ),
      -- Lexemes whose list the depth cut: a candidate not listed for one may still hold it.
      cut AS MATERIALIZED (SELECT l.lexeme FROM listed l GROUP BY l.lexeme HAVING count(*) >= depth),
      -- The best candidates completed: a primary-key probe per cut lexeme they were not listed
      -- for (LIMIT 1 keeps it a probe: the planner would rather read every posting of the chunk,
      -- about 140, and hash-join them).
      completed AS (
        SELECT c.chunk_id,
               sum(basalt_bm25_term(q.weight, p.tf, p.length, a.length, bm25_k1, bm25_b)) AS score
        FROM (SELECT c.chunk_id FROM candidates c ORDER BY c.score DESC, c.chunk_id LIMIT rescored) AS c
        CROSS JOIN cut
        JOIN query_terms q ON q.lexeme = cut.lexeme
        CROSS JOIN average a
        CROSS JOIN LATERAL (
          SELECT p.tf, p.length FROM search_postings p
          WHERE p.chunk_id = c.chunk_id AND p.lexeme = cut.lexeme
          LIMIT 1
        ) AS p
        WHERE NOT EXISTS (SELECT 1 FROM listed l WHERE l.chunk_id = c.chunk_id AND l.lexeme = cut.lexeme)
        GROUP BY c.chunk_id
      ),
      best AS (
        SELECT DISTINCT ON (c.document_id) c.document_id, c.chunk_id, c.score + coalesce(x.score, 0) AS score
        FROM candidates c LEFT JOIN completed x ON x.chunk_id = c.chunk_id
        ORDER BY c.document_id, c.score + coalesce(x.score, 0) DESC, c.chunk_id
      ),
      page AS (
        SELECT b.document_id, b.chunk_id, b.score FROM best b
        ORDER BY b.score DESC, b.chunk_id
        LIMIT page_limit OFFSET page_offset
      ),
      -- The visible postings of the query's lexemes (index-only without filters), up to the cap.
      counted AS (
        SELECT count(*) AS postings, count(DISTINCT m.document_id) AS documents FROM (
          SELECT p.document_id FROM search_postings p
          WHERE p.lexeme = ANY((SELECT array_agg(q.lexeme) FROM query_lexemes q)::text[])
            AND basalt_posting_visible(p.owner_id, p.public, p.collection_ids, caller, caller_sees_all, caller_collections)
            AND (NOT filtered OR basalt_search_filters_pass(p.document_id, filter_sources, filter_tags,
              filter_document_ids, filter_collections, filter_updated_after, filter_updated_before))
          LIMIT total_cap
        ) AS m
      )
      SELECT page.document_id, page.chunk_id, page.score, counted.postings, counted.documents
      FROM counted LEFT JOIN page ON true
      ORDER BY page.score DESC, page.chunk_id;
    END $function$`
})
