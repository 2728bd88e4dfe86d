/**
 * BM25 in SQL over the chunks' `search_vector` (migration 0011), with Lucene's IDF:
 *
 *   score(chunk) = Σ over query lexemes t:  qtf(t) · idf(t) · tf·(k1 + 1) / (tf + k1·(1 − b + b·len/avglen))
 *   idf(t)       = ln(1 + (N − df(t) + 0.5) / (df(t) + 0.5))
 *
 * tf: how many positions the chunk's vector holds for t; len: `search_length`; N, avglen and df:
 * the corpus statistics (folded rows plus the deltas not yet folded, see SearchStatistics). The
 * query goes through the same 'english' configuration as the chunks; qtf counts a term the query
 * repeats (Lucene sums a repeated clause likewise).
 *
 * Candidates: chunks whose vector holds any query lexeme (the GIN index), visible to the caller
 * and inside the filters. Only the query's lexemes are pulled out of a candidate's vector
 * (setweight marks them, ts_filter keeps them), so scoring a chunk costs a few terms, not the
 * chunk's hundreds.
 *
 * k1 and b were chosen by measurement on the four test collections (bench/search-tuning.ts; the
 * README's Search section has the figures).
 */
import type { SqlClient } from "@effect/sql"

export interface Bm25Parameters {
  readonly k1: number
  readonly b: number
}

export const defaultBm25: Bm25Parameters = { k1: 2.0, b: 0.6 }

/**
 * A CTE list (no leading WITH) defining `query_terms(lexeme, weight)` (qtf · idf),
 * `query_match(tsq, lexemes, avg_length)`, for `query`.
 */
export const queryTermsCtes = (sql: SqlClient.SqlClient, query: string) =>
  sql`
  query_lexemes AS MATERIALIZED (
    SELECT u.lexeme, coalesce(array_length(u.positions, 1), 1) AS qtf
    FROM unnest(to_tsvector('english'::regconfig, ${query})) AS u
  ),
  corpus AS MATERIALIZED (
    SELECT greatest(s.chunk_count + coalesce((SELECT sum(d.chunk_count) FROM search_corpus_deltas d), 0), 1)::float8 AS n,
           (s.term_count + coalesce((SELECT sum(d.term_count) FROM search_corpus_deltas d), 0))::float8 AS terms
    FROM search_corpus_stats s
    LIMIT 1 -- one row; saying so keeps the planner's estimates (and JIT) out of it
  ),
  query_terms AS MATERIALIZED (
    SELECT q.lexeme,
           q.qtf * ln(1 + (corpus.n - df.df + 0.5) / (df.df + 0.5)) AS weight
    FROM query_lexemes q
    CROSS JOIN corpus
    CROSS JOIN LATERAL (
      SELECT greatest(
        coalesce((SELECT s.chunk_count FROM search_lexeme_stats s WHERE s.lexeme = q.lexeme), 0) +
        coalesce((SELECT sum(x.chunk_count) FROM search_lexeme_deltas x WHERE x.lexeme = q.lexeme), 0),
        0)::float8 AS df
    ) AS df
  ),
  query_match AS MATERIALIZED (
    SELECT string_agg('''' || replace(replace(q.lexeme, '\\', '\\\\'), '''', '''''') || '''', ' | ')::tsquery AS tsq,
           array_agg(q.lexeme) AS lexemes,
           (SELECT greatest(corpus.terms / corpus.n, 1) FROM corpus) AS avg_length
    FROM query_lexemes q
    HAVING count(*) > 0
  )`

/**
 * The BM25 contribution of one posting `p` (an alias of `search_postings` joined with its query
 * term `q` of `query_terms` and `query_match qm`): summed over a chunk's postings, its score.
 */
export const bm25Score = (sql: SqlClient.SqlClient, postingAlias: string, parameters: Bm25Parameters) => {
  const p = sql(postingAlias)
  const k1 = parameters.k1
  const b = parameters.b
  return sql`sum(
    q.weight * (${p}.tf * ${k1 + 1}::float8) /
    (${p}.tf + ${k1}::float8 * (1 - ${b}::float8 + ${b}::float8 * ${p}.length / qm.avg_length)))`
}
