/**
 * Keyword search ranks the same candidates whatever page is asked for. Migration 0017's caller
 * sized the candidate lists and the completed candidates from the page (twice and five times its
 * end), so a first page of ten and a page of a hundred ranked different candidates with different
 * scores, and walking a search page by page repeated some documents and never showed others. Now
 * the sizes are constants of the ranking (SearchRepo), and the function says how many documents
 * its ranking holds, so that paging stops where the ranking ends.
 *
 * Also: each query lexeme's list is at least `depth` deep, deeper for short queries (`pool`
 * postings shared among the query's lexemes), so that a one-word query still ranks enough
 * documents to page through; the completed candidates are the best `rescored` documents (their
 * best chunk), not chunks, so that a document of many matching chunks does not use up the
 * completions; equal scores are ordered by document id.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    DROP FUNCTION basalt_keyword_search(text, uuid, boolean, text[], text[], uuid[], uuid[], timestamptz, timestamptz,
      integer, integer, integer, integer, integer, float8, float8)`
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
      pool integer,
      rescored integer,
      page_limit integer,
      page_offset integer,
      total_cap integer,
      bm25_k1 float8,
      bm25_b float8
    ) RETURNS TABLE (document_id uuid, chunk_id uuid, score float8, ranked bigint, postings bigint, documents bigint)
    LANGUAGE plpgsql STABLE
    -- As in 0017: one generic plan per connection (the parameters' row counts are unknown).
    SET plan_cache_mode = force_generic_plan
    AS $function$
    #variable_conflict use_column
    DECLARE
      caller_collections uuid[] := CASE WHEN caller_sees_all THEN '{}'::uuid[] ELSE (
        SELECT coalesce(array_agg(cm.collection_id), '{}') FROM collection_members cm WHERE cm.user_id = caller) END;
      filtered boolean := filter_sources IS NOT NULL OR filter_tags IS NOT NULL OR filter_document_ids IS NOT NULL
        OR filter_collections IS NOT NULL OR filter_updated_after IS NOT NULL OR filter_updated_before IS NOT NULL;
      query_vector tsvector := to_tsvector('english'::regconfig, search_text);
      -- How deep each lexeme's list goes: a function of the query alone, never of the page.
      term_depth integer := greatest(depth, ceil(pool::float8 / greatest(length(query_vector), 1))::integer);
    BEGIN
      RETURN QUERY
      WITH query_lexemes AS MATERIALIZED (
        SELECT u.lexeme, coalesce(array_length(u.positions, 1), 1) AS qtf
        FROM unnest(query_vector) AS u
      ),
      corpus AS MATERIALIZED (
        SELECT greatest(s.chunk_count + coalesce((SELECT sum(d.chunk_count) FROM search_corpus_deltas d), 0), 1)::float8 AS n,
               (s.term_count + coalesce((SELECT sum(d.term_count) FROM search_corpus_deltas d), 0))::float8 AS terms
        FROM search_corpus_stats s
        LIMIT 1
      ),
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
          LIMIT term_depth
        ) AS top
      ),
      candidates AS MATERIALIZED (
        SELECT l.chunk_id, l.document_id, sum(l.score) AS score FROM listed l GROUP BY l.chunk_id, l.document_id
      ),
      cut AS MATERIALIZED (SELECT l.lexeme FROM listed l GROUP BY l.lexeme HAVING count(*) >= term_depth),
      -- The best documents by the score their lists give, each by its best chunk: those chunks
      -- are completed with the cut lexemes they were not listed for (a primary-key probe each).
      foremost AS MATERIALIZED (
        SELECT f.chunk_id FROM (
          SELECT DISTINCT ON (c.document_id) c.document_id, c.chunk_id, c.score FROM candidates c
          ORDER BY c.document_id, c.score DESC, c.chunk_id
        ) AS f
        ORDER BY f.score DESC, f.document_id
        LIMIT rescored
      ),
      completed AS (
        SELECT c.chunk_id,
               sum(basalt_bm25_term(q.weight, p.tf, p.length, a.length, bm25_k1, bm25_b)) AS score
        FROM foremost c
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
      best AS MATERIALIZED (
        SELECT DISTINCT ON (c.document_id) c.document_id, c.chunk_id, c.score + coalesce(x.score, 0) AS score
        FROM candidates c LEFT JOIN completed x ON x.chunk_id = c.chunk_id
        ORDER BY c.document_id, c.score + coalesce(x.score, 0) DESC, c.chunk_id
      ),
      page AS (
        SELECT b.document_id, b.chunk_id, b.score FROM best b
        ORDER BY b.score DESC, b.document_id
        LIMIT page_limit OFFSET page_offset
      ),
      counted AS (
        SELECT (SELECT count(*) FROM best) AS ranked, count(*) AS postings, count(DISTINCT m.document_id) AS documents FROM (
          SELECT p.document_id FROM search_postings p
          WHERE p.lexeme = ANY((SELECT array_agg(q.lexeme) FROM query_lexemes q)::text[])
            AND basalt_posting_visible(p.owner_id, p.public, p.collection_ids, caller, caller_sees_all, caller_collections)
            AND (NOT filtered OR basalt_search_filters_pass(p.document_id, filter_sources, filter_tags,
              filter_document_ids, filter_collections, filter_updated_after, filter_updated_before))
          LIMIT total_cap
        ) AS m
      )
      SELECT page.document_id, page.chunk_id, page.score, counted.ranked, counted.postings, counted.documents
      FROM counted LEFT JOIN page ON true
      ORDER BY page.score DESC, page.document_id;
    END $function$`
})
