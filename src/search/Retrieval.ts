/**
 * Retrieval: the search use case, for POST /api/v1/search and for whatever else retrieves under
 * a caller's access rule (chat). Keyword and semantic lists come from SearchRepo with the caller's
 * visibility and the filters in their SQL; hybrid fuses the two (Fusion.ts). A search has one
 * ranking whatever the page size (SearchRepo's pruning constants are the ranking's own), and a
 * page is a slice of it, continued by a fingerprinted cursor (SearchCursor.ts).
 */
import { Context, Effect, Layer, Option, Result } from "effect"
import type { Caller } from "../accounts/SessionsRepo.ts"
import { DatabaseInfo } from "../database/Database.ts"
import { Embedder } from "../embedding/Embedder.ts"
import { NotFound, ValidationFailed } from "../http/ApiError.ts"
import { fuseRankings } from "./Fusion.ts"
import { defaultBm25 } from "./KeywordRanking.ts"
import type { SearchFallback, SearchFilters, SearchMode, SearchRequest, SearchResponse, SearchResult } from "./Search.ts"
import { cursorFingerprint, decodeCursor, encodeCursor } from "./SearchCursor.ts"
import { candidateDepth, candidatePool, type Hit, type HitList, rescoredCandidates, SearchRepo, semanticDepth } from "./SearchRepo.ts"

/** How deep hybrid search takes each list before fusing (keyword documents; semantic chunks, see SearchRepo). */
const hybridDepth = semanticDepth

/** A 422 whose message is the reason itself, with the field it concerns. */
const rejected = (path: string, message: string) => new ValidationFailed({ message, details: [{ path, message }] })

const noPgvector =
  "Semantic search needs the PostgreSQL extension pgvector, which this database does not have " +
  "(Basalt runs lexical-only here); use mode keyword or hybrid"

/** What to rank: the query, the mode (hybrid when not given), the filters and hybrid's weights. */
export interface RetrievalRequest {
  readonly query: string
  readonly mode?: SearchMode | undefined
  readonly filters?: SearchFilters | undefined
  readonly weights?: SearchRequest["weights"] | undefined
  /** How many of the first positions to return. */
  readonly limit: number
}

/** The mode that ran, and why it is not the one asked for (no pgvector, an embedding failure). */
export interface RankingMode {
  readonly mode: SearchMode
  readonly fallback: typeof SearchFallback.Type | null
}

/** A page of `hits` (ranked from position `offset`) of a ranking of `ranked` documents. */
export interface Ranked extends RankingMode, HitList {
  readonly offset: number
}

/** A result, with its document's revision now and where its chunk's later pages begin (when it has pages). */
export interface RetrievedHit extends SearchResult {
  readonly revision: number
  readonly pageBreaks: ReadonlyArray<number> | null
}

/** The first positions of a ranking, each with what a result shows (title, source, the chunk's text, highlights). */
export interface Retrieved extends RankingMode {
  readonly hits: ReadonlyArray<RetrievedHit>
}

export class Retrieval extends Context.Service<Retrieval>()("basalt/Retrieval", {
  make: Effect.gen(function* () {
    const repo = yield* SearchRepo
    const database = yield* DatabaseInfo
    const embedder = yield* Embedder

    const embedQuery = (query: string) => Effect.map(embedder.embed([query]), (vectors) => vectors[0]!)

    const semanticList = (caller: Caller, vector: Float32Array, filters: SearchFilters, limit: number, offset: number) =>
      repo.semantic({
        caller,
        vector,
        model: embedder.model,
        dimensions: embedder.dimensions,
        minimumSimilarity: embedder.minimumSimilarity,
        filters,
        limit,
        offset
      })

    /** The ranking's own settings, part of every cursor's fingerprint. */
    const ranking = JSON.stringify([
      defaultBm25,
      candidateDepth,
      candidatePool,
      rescoredCandidates,
      embedder.model,
      embedder.minimumSimilarity
    ])

    const admitMode = (mode: SearchMode) =>
      mode === "semantic" && !database.pgvector ? Effect.fail(rejected("mode", noPgvector)) : Effect.void

    /** NotFound naming each of `filters.collection_ids` the caller cannot see (a chat scope's too). */
    const admitCollections = (caller: Caller, filters: SearchFilters) =>
      Effect.flatMap(Effect.orDie(repo.unknownCollections(caller, filters.collection_ids ?? [])), (unknown) =>
        unknown.length > 0 ? Effect.fail(new NotFound({ message: `No such collection: ${unknown.join(", ")}` })) : Effect.void
      )

    /** `limit` positions of the ranking from `offset`; the mode and the collections already admitted. */
    const rankPage = (caller: Caller, request: RetrievalRequest, offset: number) =>
      Effect.gen(function* () {
        const requested = request.mode ?? "hybrid"
        const filters = request.filters ?? {}
        const limit = request.limit
        const keywordPage = (pageLimit: number, pageOffset: number): Effect.Effect<HitList> =>
          Effect.orDie(repo.keyword({ caller, query: request.query, filters, limit: pageLimit, offset: pageOffset }))

        if (requested === "keyword" || (requested === "hybrid" && !database.pgvector)) {
          const fallback =
            requested === "hybrid"
              ? { requested_mode: "hybrid" as const, reason: noPgvector.replace("; use mode keyword or hybrid", "") }
              : null
          return { mode: "keyword", fallback, ...(yield* keywordPage(limit, offset)), offset } satisfies Ranked
        }
        if (requested === "semantic") {
          const vector = yield* Effect.orDie(embedQuery(request.query))
          return {
            mode: "semantic",
            fallback: null,
            ...(yield* Effect.orDie(semanticList(caller, vector, filters, limit, offset))),
            offset
          } satisfies Ranked
        }
        // An embedding provider that fails leaves keyword search, said so, rather than no answer.
        const vector = yield* Effect.result(embedQuery(request.query))
        if (Result.isFailure(vector)) {
          const fallback = { requested_mode: "hybrid" as const, reason: `The query could not be embedded: ${vector.failure.reason}` }
          return { mode: "keyword", fallback, ...(yield* keywordPage(limit, offset)), offset } satisfies Ranked
        }
        const [keyword, semantic] = yield* Effect.all(
          [keywordPage(hybridDepth, 0), Effect.orDie(semanticList(caller, vector.success, filters, hybridDepth, 0))],
          { concurrency: 2 }
        )
        const byDocument = new Map<string, Hit>()
        for (const hit of [...semantic.hits, ...keyword.hits]) byDocument.set(hit.document_id, hit)
        const fused = fuseRankings([
          { ids: keyword.hits.map((hit) => hit.document_id), weight: request.weights?.keyword ?? 1 },
          { ids: semantic.hits.map((hit) => hit.document_id), weight: request.weights?.semantic ?? 1 }
        ])
        return {
          mode: "hybrid",
          fallback: null,
          hits: fused.slice(offset, offset + limit).map(({ id, score }) => ({ ...byDocument.get(id)!, score })),
          offset,
          ranked: fused.length,
          total: fused.length,
          totalIsExact: true
        } satisfies Ranked
      })

    /** The page's hits with what a result shows, ranked from `offset + 1`. */
    const resultsOf = (page: Ranked, query: string) =>
      Effect.map(
        Effect.orDie(
          repo.details(
            page.hits.map((hit) => hit.chunk_id),
            query
          )
        ),
        (details): ReadonlyArray<RetrievedHit> => {
          const byChunk = new Map(details.map((detail) => [detail.chunk_id, detail]))
          return page.hits.flatMap((hit, index) =>
            Option.match(Option.fromNullishOr(byChunk.get(hit.chunk_id)), {
              // Deleted between the two statements: left out rather than shown half.
              onNone: () => [],
              onSome: ({ page_breaks, ...detail }) => [
                { ...detail, pageBreaks: page_breaks, score: hit.score, rank: page.offset + index + 1 }
              ]
            })
          )
        }
      )

    /**
     * The first `limit` positions of the ranking the caller may see, as document, chunk and
     * score. Fails like a search: ValidationFailed (semantic without pgvector), NotFound (a
     * collection the caller cannot see).
     */
    const rank = (caller: Caller, request: RetrievalRequest): Effect.Effect<Ranked, ValidationFailed | NotFound> =>
      Effect.gen(function* () {
        yield* admitMode(request.mode ?? "hybrid")
        yield* admitCollections(caller, request.filters ?? {})
        return yield* rankPage(caller, request, 0)
      })

    /** `rank`, each hit with its chunk's text, title, source and highlights. */
    const retrieve = (caller: Caller, request: RetrievalRequest): Effect.Effect<Retrieved, ValidationFailed | NotFound> =>
      Effect.gen(function* () {
        const page = yield* rank(caller, request)
        return { mode: page.mode, fallback: page.fallback, hits: yield* resultsOf(page, request.query) }
      })

    /** POST /api/v1/search: a page of the ranking, from the position the cursor continues from. */
    const search = (caller: Caller, request: SearchRequest): Effect.Effect<SearchResponse, ValidationFailed | NotFound> =>
      Effect.gen(function* () {
        const started = performance.now()
        const requested = request.mode ?? "hybrid"
        const limit = request.limit ?? 10
        const filters = request.filters ?? {}
        const fingerprint = (position: number) => cursorFingerprint(request, requested, position, ranking)
        yield* admitMode(requested)
        const offset = request.cursor === undefined ? 0 : yield* decodeCursor(request.cursor, fingerprint)
        yield* admitCollections(caller, filters)
        const page = yield* rankPage(caller, { ...request, limit }, offset)
        // A search result shows neither the revision nor the page breaks.
        const results = (yield* resultsOf(page, request.query)).map(
          ({ pageBreaks: _pageBreaks, revision: _revision, ...result }): SearchResult => result
        )
        const nextOffset = page.offset + page.hits.length
        return {
          query: request.query,
          mode: page.mode,
          results,
          total: page.total,
          total_relation: page.totalIsExact ? ("eq" as const) : ("gte" as const),
          search_time_ms: Math.round((performance.now() - started) * 100) / 100,
          filters,
          next_cursor: page.hits.length > 0 && nextOffset < page.ranked ? encodeCursor(nextOffset, fingerprint(nextOffset)) : null,
          fallback: page.fallback
        }
      })

    return { search, retrieve, rank, admitCollections } as const
  })
}) {
  static readonly layer = Layer.effect(this, this.make).pipe(Layer.provide(SearchRepo.layer))
}
