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
 * The SQL is `basalt_keyword_search` (migration 0017): candidates from the impact-ordered
 * postings (migration 0012), tf and length from the postings themselves. The best candidates
 * (SearchRepo's `rescoredCandidates`) are scored over every query lexeme as above; the rest over
 * the lexemes whose lists hold them: a lower bound, and no higher than any best candidate's, so
 * they reach the page only when the best candidates hold fewer documents than it.
 *
 * k1 and b were chosen by measurement on the four test collections (bench/search-tuning.ts; the
 * README's Search section has the figures).
 */
export interface Bm25Parameters {
  readonly k1: number
  readonly b: number
}

export const defaultBm25: Bm25Parameters = { k1: 2.0, b: 0.6 }
