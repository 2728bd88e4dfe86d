/**
 * Search SQL: keyword (BM25, KeywordRanking.ts; its statement is the function of migration 0018)
 * and semantic (pgvector HNSW, cosine) candidate lists, each with the caller's visibility and the
 * filters inside the statement, so that a limit never cuts before them.
 *
 * Results are documents: each one represented by its best chunk (measured against chunk-level
 * results on the test collections, see the README). A list is ordered by score, ties by document id.
 */
import { Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import type { Caller } from "../accounts/SessionsRepo.ts"
import { visibleTo } from "../documents/Visibility.ts"
import { type Bm25Parameters, defaultBm25 } from "./KeywordRanking.ts"

export interface SearchFilters {
  readonly sources?: ReadonlyArray<string> | undefined
  readonly tags?: ReadonlyArray<string> | undefined
  readonly collection_ids?: ReadonlyArray<string> | undefined
  readonly document_ids?: ReadonlyArray<string> | undefined
  readonly updated_after?: Date | undefined
  readonly updated_before?: Date | undefined
}

export interface KeywordRequest {
  readonly caller: Caller
  readonly query: string
  readonly filters: SearchFilters
  readonly limit: number
  readonly offset: number
  /** Override the ranking's constants (bench/search-tuning.ts measures with them). */
  readonly bm25?: Bm25Parameters
  readonly depth?: number
  readonly pool?: number
  readonly rescored?: number
}

/** One document of a result list: its best chunk and that chunk's score. */
export interface Hit {
  readonly document_id: string
  readonly chunk_id: string
  readonly score: number
}

export interface HitList {
  readonly hits: ReadonlyArray<Hit>
  /** How many documents the ranking holds: pages end there. */
  readonly ranked: number
  /**
   * How many documents match in all (keyword: exact below `totalCap` matches, else a
   * lower bound; semantic: those among the nearest chunks looked at, above the floor).
   */
  readonly total: number
  readonly totalIsExact: boolean
}

export interface HitDetails {
  readonly document_id: string
  readonly chunk_id: string
  readonly title: string
  readonly source: string
  readonly url: string | null
  readonly content: string
  /** The page the chunk begins on, when its document has pages. */
  readonly page: number | null
  readonly highlights: ReadonlyArray<string>
  /** The document's revision now (what chat records a source with). */
  readonly revision: number
  /** Where the chunk's later pages begin, when its document has pages. */
  readonly page_breaks: ReadonlyArray<number> | null
}

/** How far semantic search looks: this many nearest chunks at most (then one per document). */
export const semanticDepth = 1000

/**
 * Keyword: how many matches (a chunk counts once per query lexeme it holds) `total` counts at
 * most, with the visibility; past it the total is a lower bound. Counting every chunk of a common
 * term cost more than the ranking. At 100,000 chunks counting up to this cap is still about 40% of
 * the statement's time (250 would take p95 at 16 clients from ~37 to ~30 ms: README, Search).
 */
export const totalCap = 1000

/*
 * Keyword's candidate pruning. These are constants of the ranking, never functions of the page:
 * a page is a slice of one ranking, so a first page of ten is the first ten of a page of a
 * hundred, and walking pages with the cursor shows each ranked document once. Chosen on the four
 * test collections with bench/search-tuning.ts (TUNE_DEPTH, TUNE_POOL, TUNE_RESCORED; README,
 * Search): nDCG@10 within 0.001 of scoring every candidate in full, Recall@100 above the plain
 * BM25 reference where a pool of 200 or 500 postings fell below it on Cranfield's long queries.
 */

/** How many chunks each query lexeme contributes as candidates, at least. */
export const candidateDepth = 50

/**
 * Postings the query's lexemes share: a query of few lexemes reads deeper lists (a one-word
 * query ranks up to this many chunks, enough to page through), a long one `candidateDepth` each.
 * As many as `total` counts at most.
 */
export const candidatePool = 1000

/**
 * How many of the best candidate documents (by the lexemes their lists hold) are completed with
 * the lexemes their lists left out, by primary-key probes (most of the statement's time at
 * 100,000 chunks when every candidate was). 100 was no better on the four collections.
 */
export const rescoredCandidates = 50

export class SearchRepo extends Context.Service<SearchRepo>()("basalt/SearchRepo", {
  make: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient

    /**
     * The filters as the arguments of `basalt_search_filters_pass` (migration 0017, where what
     * each filter means is written once for both modes), NULL for one not given.
     */
    const filterArguments = (filters: SearchFilters) =>
      sql`${filters.sources ?? null}::text[], ${filters.tags ?? null}::text[], ${filters.document_ids ?? null}::uuid[],
        ${filters.collection_ids ?? null}::uuid[], ${filters.updated_after ?? null}::timestamptz, ${filters.updated_before ?? null}::timestamptz`

    const hasFilters = (filters: SearchFilters) => Object.values(filters).some((value) => value !== undefined)

    /**
     * The best `limit` documents after `offset` by BM25 (each by its best chunk), how many the
     * ranking holds, and how many documents match (exact below `totalCap` matches, a lower bound
     * past it), in one call of `basalt_keyword_search` (migration 0018, where the SQL is; Postgres
     * keeps its plan).
     *
     * Candidates: for each query lexeme, its `candidateDepth` (or, for a short query, its share
     * of `candidatePool`) visible chunks inside the filters of highest impact, read from the
     * impact-ordered postings (migration 0012); the visibility (copied onto the postings, migration
     * 0013) and the filters are in that per-term scan, before its limit, so a caller who sees few
     * documents still gets their best matches. Without filters the scan is index-only. A
     * candidate's score counts the lexemes its lists hold; the `rescoredCandidates` best
     * documents are completed with the lexemes the lists left out, by primary-key probes. Equal
     * scores are ordered by document id.
     */
    const keyword = (request: KeywordRequest) => {
      const bm25 = request.bm25 ?? defaultBm25
      const rows = sql<{
        document_id: string | null
        chunk_id: string | null
        score: number | null
        ranked: string
        postings: string
        documents: string
      }>`
        SELECT * FROM basalt_keyword_search(
          ${request.query}, ${request.caller.id}::uuid, ${request.caller.role === "admin"}, ${filterArguments(request.filters)},
          ${request.depth ?? candidateDepth}, ${request.pool ?? candidatePool}, ${request.rescored ?? rescoredCandidates},
          ${request.limit}, ${request.offset}, ${totalCap}, ${bm25.k1}::float8, ${bm25.b}::float8)`
      return Effect.map(rows, (found) => {
        const hits = found.flatMap(({ chunk_id, document_id, score }) =>
          chunk_id === null || document_id === null ? [] : [{ document_id, chunk_id, score: Number(score) }]
        )
        const counted = found[0]
        const ranked = Number(counted?.ranked ?? 0)
        return {
          hits,
          ranked,
          total: Math.max(Number(counted?.documents ?? 0), ranked),
          totalIsExact: Number(counted?.postings ?? 0) < totalCap
        } satisfies HitList
      })
    }

    /**
     * The nearest documents to `vector` (cosine, each by its nearest chunk) among the chunks
     * embedded by `model`, through that model's HNSW index, leaving out chunks less similar than
     * `minimumSimilarity` (the embedder's floor: below it a chunk is no match, only noise).
     * pgvector's iterative scan keeps walking the graph while the visibility and the filters
     * reject candidates; the floor is applied after the walk, which it would otherwise prolong.
     */
    const semantic = (request: {
      readonly caller: Caller
      readonly vector: Float32Array
      readonly model: string
      readonly dimensions: number
      readonly minimumSimilarity: number
      readonly filters: SearchFilters
      readonly limit: number
      readonly offset: number
    }) =>
      sql.withTransaction(
        Effect.gen(function* () {
          // SET LOCAL of both, in one statement.
          yield* sql`SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), set_config('hnsw.ef_search', '100', true)`
          const vectorText = `[${Array.from(request.vector).join(",")}]`
          const dims = sql.literal(String(Math.trunc(request.dimensions)))
          const rows = yield* sql<{ document_id: string | null; chunk_id: string | null; score: number | null; ranked: string }>`
          WITH nearest AS (
            SELECT e.chunk_id, c.document_id, e.embedding::vector(${dims}) <=> ${vectorText}::vector(${dims}) AS distance
            FROM chunk_embeddings e
            JOIN chunks c ON c.id = e.chunk_id
            JOIN documents d ON d.id = c.document_id
            WHERE e.model = ${request.model} AND ${visibleTo(sql, request.caller, "d")} 
              AND ${hasFilters(request.filters) ? sql`basalt_search_filters_pass(d.id, ${filterArguments(request.filters)})` : sql`true`}
            ORDER BY e.embedding::vector(${dims}) <=> ${vectorText}::vector(${dims})
            LIMIT ${semanticDepth}
          ),
          best AS MATERIALIZED (
            SELECT DISTINCT ON (document_id) document_id, chunk_id, 1 - distance AS score
            FROM nearest WHERE 1 - distance >= ${request.minimumSimilarity}::float8
            ORDER BY document_id, distance, chunk_id
          ),
          page AS (
            SELECT document_id, chunk_id, score FROM best
            ORDER BY score DESC, document_id
            LIMIT ${request.limit} OFFSET ${request.offset}
          )
          SELECT page.document_id, page.chunk_id, page.score, counted.ranked
          FROM (SELECT count(*) AS ranked FROM best) AS counted LEFT JOIN page ON true
          ORDER BY page.score DESC, page.document_id`
          const ranked = Number(rows[0]?.ranked ?? 0)
          return {
            hits: rows.flatMap(({ chunk_id, document_id, score }) =>
              chunk_id === null || document_id === null ? [] : [{ document_id, chunk_id, score: Number(score) }]
            ),
            ranked,
            total: ranked,
            totalIsExact: true
          } satisfies HitList
        })
      )

    /**
     * What a result shows: title, source, url, the chunk's text, and its passages with the
     * query's terms marked (ts_headline with «…» marks, see the contract); and, for chat, the
     * document's revision and the chunk's page breaks.
     */
    const details = (chunkIds: ReadonlyArray<string>, query: string) =>
      chunkIds.length === 0
        ? Effect.succeed([] as ReadonlyArray<HitDetails>)
        : sql<HitDetails>`
          SELECT c.document_id, c.id AS chunk_id, d.title, d.source, d.url, c.content, c.first_page AS page,
                 d.revision, c.page_breaks,
                 coalesce(string_to_array(ts_headline('english'::regconfig, c.content, q.tsq,
                   'StartSel=«, StopSel=», MaxFragments=3, MaxWords=30, MinWords=10, FragmentDelimiter=' || chr(31)), chr(31)),
                   '{}') AS highlights
          FROM chunks c
          JOIN documents d ON d.id = c.document_id
          CROSS JOIN (SELECT coalesce((
            SELECT string_agg('''' || replace(replace(u.lexeme, '\\', '\\\\'), '''', '''''') || '''', ' | ')
            FROM unnest(to_tsvector('english'::regconfig, ${query})) AS u), '')::tsquery AS tsq) AS q
          WHERE c.id IN ${sql.in(chunkIds)}`

    /** The ids among `ids` that are no collection the caller can see. */
    const unknownCollections = (caller: Caller, ids: ReadonlyArray<string>) =>
      ids.length === 0
        ? Effect.succeed([] as ReadonlyArray<string>)
        : Effect.map(
            sql<{ id: string }>`
            SELECT id::text AS id FROM collections c
            WHERE c.id IN ${sql.in(ids)} AND (${caller.role === "admin"} OR EXISTS (
              SELECT 1 FROM collection_members m WHERE m.collection_id = c.id AND m.user_id = ${caller.id}))`,
            (rows) => {
              const known = new Set(rows.map((row) => row.id))
              return ids.filter((id) => !known.has(id))
            }
          )

    return { keyword, semantic, details, unknownCollections } as const
  })
}) {
  static readonly layer = Layer.effect(this, this.make)
}
