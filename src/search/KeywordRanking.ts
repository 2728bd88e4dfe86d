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
 * The SQL is `basalt_keyword_search` (migration 0018): candidates from the impact-ordered
 * postings (migration 0012), tf and length from the postings themselves. The best candidate
 * documents (SearchRepo's `rescoredCandidates`, each by its best chunk) are scored over every
 * query lexeme as above; the rest over the lexemes whose lists hold them: a lower bound, and no
 * higher than any completed document's, so those come first. The sizes are the ranking's own,
 * not the page's, so every page is a slice of one ranking.
 *
 * k1 and b: picked on the four test collections, and checked by leaving one collection out
 * (the picks of the other three beat k1 1.2, b 0.75 on the one left out; bench/search-tuning.ts,
 * README, Search: Ranking parameters). The postings' impacts are computed with the same values.
 */
export interface Bm25Parameters {
  readonly k1: number
  readonly b: number
}

export const defaultBm25: Bm25Parameters = { k1: 2.0, b: 0.6 }
