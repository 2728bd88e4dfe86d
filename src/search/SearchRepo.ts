/**
 * Search SQL: keyword (BM25, KeywordRanking.ts) and semantic (pgvector HNSW, cosine) candidate
 * lists, each with the caller's visibility and the filters inside the statement, so that a
 * limit never cuts before them.
 *
 * Results are documents: each one represented by its best chunk (measured against chunk-level
 * results on the test collections, see the README). A list is ordered by score, ties by chunk id.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import type { Caller } from "../accounts/SessionsRepo.ts"
import { postingVisibleTo, visibleTo } from "../documents/Visibility.ts"
import { type Bm25Parameters, bm25Score, defaultBm25, queryTermsCtes } from "./KeywordRanking.ts"

export interface SearchFilters {
  readonly sources?: ReadonlyArray<string> | undefined
  readonly tags?: ReadonlyArray<string> | undefined
  readonly collections?: ReadonlyArray<string> | undefined
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
  readonly bm25?: Bm25Parameters
  readonly depth?: number
}

/** One document of a result list: its best chunk and that chunk's score. */
export interface Hit {
  readonly document_id: string
  readonly chunk_id: string
  readonly score: number
}

export interface HitList {
  readonly hits: ReadonlyArray<Hit>
  /**
   * How many documents match in all (keyword: exact below `totalCap` matches, else a
   * lower bound; semantic: those among the nearest chunks looked at).
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
  readonly highlights: ReadonlyArray<string>
}

/** How far semantic search looks: this many nearest chunks at most (then one per document). */
export const semanticDepth = 1000

/**
 * Keyword: how many matches (a chunk counts once per query lexeme it holds) `total` counts at
 * most, with the visibility; past it the total is a lower bound. Counting every chunk of a common
 * term cost more than the ranking.
 */
export const totalCap = 1000

/**
 * Keyword: how many chunks each query lexeme contributes as candidates. 50 for a first page of
 * ten kept nDCG@10 within 0.0007 of exact scoring on the four test collections (20 lost up to
 * 0.011); twice the page's end for deeper pages (bench/search-tuning.ts TUNE_DEPTH, README).
 */
export const candidateDepth = (limit: number, offset: number) => Math.max(50, 2 * (limit + offset))

export class SearchRepo extends Effect.Service<SearchRepo>()("basalt/SearchRepo", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    const filtersOf = (filters: SearchFilters) => {
      const conditions = [sql`true`]
      if (filters.sources !== undefined) conditions.push(sql`d.source IN ${sql.in(filters.sources)}`)
      // Any of the tags (tags are lower-cased at ingestion, so are the filter's).
      if (filters.tags !== undefined) conditions.push(sql`d.tags && ${filters.tags}::text[]`)
      if (filters.document_ids !== undefined) conditions.push(sql`d.id IN ${sql.in(filters.document_ids)}`)
      if (filters.collections !== undefined) {
        conditions.push(sql`EXISTS (SELECT 1 FROM document_collections fc
          WHERE fc.document_id = d.id AND fc.collection_id IN ${sql.in(filters.collections)})`)
      }
      if (filters.updated_after !== undefined) conditions.push(sql`d.updated_at >= ${filters.updated_after}`)
      if (filters.updated_before !== undefined) conditions.push(sql`d.updated_at < ${filters.updated_before}`)
      return sql.and(conditions)
    }

    /** The filters as a condition on `documents d`, or undefined when there are none (no join needed). */
    const documentFiltersOf = (filters: SearchFilters) =>
      Object.values(filters).some((value) => value !== undefined) ? filtersOf(filters) : undefined

    /**
     * The best `limit` documents after `offset` by BM25 (each by its best chunk), and how many
     * documents match (exact below `totalCap` matches, a lower bound past it), in one statement.
     *
     * Candidates: for each query lexeme, its `depth` visible chunks (inside the filters) of highest
     * impact, read from the impact-ordered postings (migration 0012); the visibility (copied onto
     * the postings, migration 0013) and the filters are in that per-term scan, before its limit, so
     * a caller who sees few documents still gets their best matches. Without filters the scan is
     * index-only, no join. The candidates are then scored exactly, every query lexeme counted:
     * from the lists themselves where they hold the candidate, else by a primary-key probe.
     */
    const keywordStatement = (request: KeywordRequest) => {
      const depth = request.depth ?? candidateDepth(request.limit, request.offset)
      const documentFilters = documentFiltersOf(request.filters)
      const filterJoin = documentFilters === undefined ? sql`` : sql`JOIN documents d ON d.id = p.document_id`
      const visible = sql.and([postingVisibleTo(sql, request.caller, "p"), documentFilters ?? sql`true`])
      return sql<{ document_id: string | null; chunk_id: string | null; score: number | null; postings: string; documents: string }>`
        WITH ${queryTermsCtes(sql, request.query)},
        -- Each query lexeme's best visible postings (index-only, with tf and length).
        listed AS MATERIALIZED (
          SELECT q.lexeme, top.chunk_id, top.document_id, top.tf, top.length
          FROM query_terms q
          CROSS JOIN LATERAL (
            SELECT p.chunk_id, p.document_id, p.tf, p.length FROM search_postings p ${filterJoin}
            WHERE p.lexeme = q.lexeme AND ${visible}
            ORDER BY p.impact DESC
            LIMIT ${depth}
          ) AS top
        ),
        candidates AS MATERIALIZED (SELECT DISTINCT chunk_id FROM listed),
        -- Lexemes whose list was cut by the depth: a candidate not listed for one may still hold it.
        cut AS MATERIALIZED (SELECT lexeme FROM listed GROUP BY lexeme HAVING count(*) >= ${depth}),
        -- What the lists leave out: a primary-key probe per candidate and cut lexeme it was not
        -- listed for (LIMIT 1 keeps it a probe: the planner would rather read every posting of the
        -- chunk, ~140, and hash-join them). A lexeme whose list is whole is in no unlisted candidate.
        probed AS (
          SELECT q.lexeme, c.chunk_id, p.document_id, p.tf, p.length
          FROM candidates c
          CROSS JOIN cut q
          CROSS JOIN LATERAL (
            SELECT p.document_id, p.tf, p.length FROM search_postings p
            WHERE p.chunk_id = c.chunk_id AND p.lexeme = q.lexeme
            LIMIT 1
          ) AS p
          WHERE NOT EXISTS (SELECT 1 FROM listed l WHERE l.chunk_id = c.chunk_id AND l.lexeme = q.lexeme)
        ),
        scored AS (
          SELECT p.chunk_id, p.document_id, ${bm25Score(sql, "p", request.bm25 ?? defaultBm25)} AS score
          FROM (SELECT * FROM listed UNION ALL SELECT * FROM probed) AS p
          JOIN query_terms q ON q.lexeme = p.lexeme
          CROSS JOIN query_match qm
          GROUP BY p.chunk_id, p.document_id
        ),
        best AS (
          SELECT DISTINCT ON (document_id) document_id, chunk_id, score
          FROM scored ORDER BY document_id, score DESC, chunk_id
        ),
        page AS (
          SELECT document_id, chunk_id, score
          FROM best ORDER BY score DESC, chunk_id
          LIMIT ${request.limit} OFFSET ${request.offset}
        ),
        -- The postings of the query's lexemes (index-only), visible, up to the cap.
        counted AS (
          SELECT count(*) AS postings, count(DISTINCT document_id) AS documents FROM (
            SELECT p.document_id FROM search_postings p ${filterJoin}
            WHERE p.lexeme = ANY((SELECT lexemes FROM query_match)::text[]) AND ${visible}
            LIMIT ${totalCap}
          ) AS matching
        )
        SELECT page.document_id, page.chunk_id, page.score, counted.postings, counted.documents
        FROM counted LEFT JOIN page ON true
        ORDER BY page.score DESC, page.chunk_id`
    }

    /** Runs `keywordStatement`: the page of hits and the total. */
    const keyword = (request: KeywordRequest) =>
      Effect.map(keywordStatement(request), (rows) => {
        const hits = rows.flatMap(({ chunk_id, document_id, score }) =>
          chunk_id === null || document_id === null ? [] : [{ document_id, chunk_id, score: Number(score) }]
        )
        const counted = rows[0]
        return {
          hits,
          total: Math.max(Number(counted?.documents ?? 0), request.offset + hits.length),
          totalIsExact: Number(counted?.postings ?? 0) < totalCap
        } satisfies HitList
      })

    /**
     * The nearest documents to `vector` (cosine, each by its nearest chunk) among the chunks
     * embedded by `model`, through that model's HNSW index. pgvector's iterative scan keeps
     * walking the graph while the visibility and the filters reject candidates.
     */
    const semantic = (request: {
      readonly caller: Caller
      readonly vector: Float32Array
      readonly model: string
      readonly dimensions: number
      readonly filters: SearchFilters
      readonly limit: number
      readonly offset: number
    }) =>
      sql.withTransaction(Effect.gen(function*() {
        yield* sql`SET LOCAL hnsw.iterative_scan = relaxed_order`
        yield* sql`SET LOCAL hnsw.ef_search = 100`
        const vectorText = `[${Array.from(request.vector).join(",")}]`
        const dims = sql.literal(String(Math.trunc(request.dimensions)))
        const rows = yield* sql<{ document_id: string; chunk_id: string; score: number; total: string }>`
          WITH nearest AS (
            SELECT e.chunk_id, c.document_id, e.embedding::vector(${dims}) <=> ${vectorText}::vector(${dims}) AS distance
            FROM chunk_embeddings e
            JOIN chunks c ON c.id = e.chunk_id
            JOIN documents d ON d.id = c.document_id
            WHERE e.model = ${request.model} AND ${visibleTo(sql, request.caller, "d")} AND ${filtersOf(request.filters)}
            ORDER BY e.embedding::vector(${dims}) <=> ${vectorText}::vector(${dims})
            LIMIT ${semanticDepth}
          ),
          best AS (
            SELECT DISTINCT ON (document_id) document_id, chunk_id, 1 - distance AS score
            FROM nearest ORDER BY document_id, distance, chunk_id
          )
          SELECT document_id, chunk_id, score, count(*) OVER () AS total
          FROM best ORDER BY score DESC, chunk_id
          LIMIT ${request.limit} OFFSET ${request.offset}`
        return {
          hits: rows.map(({ chunk_id, document_id, score }) => ({ document_id, chunk_id, score: Number(score) })),
          total: rows.length > 0 ? Number(rows[0]!.total) : 0,
          totalIsExact: true
        } satisfies HitList
      }))

    /**
     * What a result shows: title, source, url, the chunk's text, and its passages with the
     * query's terms marked (ts_headline with «…» marks, see the contract).
     */
    const details = (chunkIds: ReadonlyArray<string>, query: string) =>
      chunkIds.length === 0
        ? Effect.succeed([] as ReadonlyArray<HitDetails>)
        : sql<HitDetails>`
          SELECT c.document_id, c.id AS chunk_id, d.title, d.source, d.url, c.content,
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

    return { keyword, keywordStatement, semantic, details, unknownCollections } as const
  })
}) {}
