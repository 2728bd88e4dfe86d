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
import { visibleTo } from "../documents/Visibility.ts"
import { type Bm25Parameters, bm25Score, defaultBm25, queryTermsCtes } from "./KeywordRanking.ts"

export interface SearchFilters {
  readonly sources?: ReadonlyArray<string> | undefined
  readonly tags?: ReadonlyArray<string> | undefined
  readonly collections?: ReadonlyArray<string> | undefined
  readonly document_ids?: ReadonlyArray<string> | undefined
  readonly updated_after?: Date | undefined
  readonly updated_before?: Date | undefined
}

/** One document of a result list: its best chunk and that chunk's score. */
export interface Hit {
  readonly document_id: string
  readonly chunk_id: string
  readonly score: number
}

export interface HitList {
  readonly hits: ReadonlyArray<Hit>
  /** How many documents match in all (keyword: exact; semantic: those among the nearest chunks looked at). */
  readonly total: number
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

    /**
     * The best `limit` documents after `offset` by BM25 (each by its best chunk), and how many
     * documents match in all.
     */
    const keyword = (request: {
      readonly caller: Caller
      readonly query: string
      readonly filters: SearchFilters
      readonly limit: number
      readonly offset: number
      readonly bm25?: Bm25Parameters
    }) =>
      Effect.map(
        sql<{ document_id: string; chunk_id: string; score: number; total: string }>`
          WITH ${queryTermsCtes(sql, request.query)},
          scored AS (
            SELECT c.id, c.document_id, ${bm25Score(sql, "c", request.bm25 ?? defaultBm25)} AS score
            FROM query_match qm
            JOIN chunks c ON true
            JOIN documents d ON d.id = c.document_id
            -- A parameter (not a join column), so that the GIN index answers it.
            WHERE c.search_vector @@ (SELECT tsq FROM query_match) AND ${visibleTo(sql, request.caller, "d")} AND ${filtersOf(request.filters)}
          ),
          best AS (
            SELECT DISTINCT ON (document_id) document_id, id AS chunk_id, score
            FROM scored ORDER BY document_id, score DESC, id
          )
          SELECT document_id, chunk_id, score, count(*) OVER () AS total
          FROM best ORDER BY score DESC, chunk_id
          LIMIT ${request.limit} OFFSET ${request.offset}`,
        (rows): HitList => ({
          hits: rows.map(({ chunk_id, document_id, score }) => ({ document_id, chunk_id, score: Number(score) })),
          total: rows.length > 0 ? Number(rows[0]!.total) : 0
        })
      )

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
          total: rows.length > 0 ? Number(rows[0]!.total) : 0
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

    return { keyword, semantic, details, unknownCollections } as const
  })
}) {}
