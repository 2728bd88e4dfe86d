/**
 * POST /api/v1/search. Keyword and semantic lists come from SearchRepo with the caller's
 * visibility and the filters in their SQL; hybrid fuses the two (Fusion.ts). A search has one
 * ranking whatever the page size (SearchRepo's pruning constants are the ranking's own), and a
 * page is a slice of it: the cursor carries the next position and a fingerprint of the search and
 * of that position, so a cursor cannot be replayed against another query or moved.
 */
import { Effect, Layer, Option, Result, Schema } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { createHash } from "node:crypto"
import { CurrentUser } from "../accounts/Authentication.ts"
import type { Caller } from "../accounts/SessionsRepo.ts"
import { BasaltApi } from "../Api.ts"
import { DatabaseInfo } from "../database/Database.ts"
import { Embedder } from "../embedding/Embedder.ts"
import { NotFound, ValidationFailed } from "../http/ApiError.ts"
import { fuseRankings } from "./Fusion.ts"
import { defaultBm25 } from "./KeywordRanking.ts"
import { SearchFilters, type SearchMode, type SearchRequest, type SearchResult } from "./Search.ts"
import { candidateDepth, candidatePool, type Hit, type HitList, rescoredCandidates, SearchRepo, semanticDepth } from "./SearchRepo.ts"

/** How deep hybrid search takes each list before fusing (keyword documents; semantic chunks, see SearchRepo). */
const hybridDepth = semanticDepth

/** A 422 whose message is the reason itself, with the field it concerns. */
const rejected = (path: string, message: string) => new ValidationFailed({ message, details: [{ path, message }] })

const noPgvector =
  "Semantic search needs the PostgreSQL extension pgvector, which this database does not have " +
  "(Basalt runs lexical-only here); use mode keyword or hybrid"

const CursorState = Schema.fromJsonString(Schema.Struct({ o: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)), f: Schema.String }))

/**
 * What a cursor is bound to: the search (query, mode, filters, weights), the position, and the
 * ranking's own settings, so that a cursor from before a change of them is refused rather than
 * continuing a different ranking.
 */
const fingerprintOf = (request: SearchRequest, mode: SearchMode, offset: number, ranking: string) =>
  createHash("sha256")
    .update(
      JSON.stringify([request.query, mode, Schema.encodeSync(SearchFilters)(request.filters ?? {}), request.weights ?? {}, offset, ranking])
    )
    .digest("base64url")
    .slice(0, 22)

const encodeCursor = (offset: number, fingerprint: string) =>
  Buffer.from(Schema.encodeSync(CursorState)({ o: offset, f: fingerprint })).toString("base64url")

const decodeCursor = (cursor: string, fingerprint: (offset: number) => string) =>
  Option.match(Schema.decodeUnknownOption(CursorState)(Buffer.from(cursor, "base64url").toString("utf8")), {
    onNone: () => Effect.fail(rejected("cursor", "Not a cursor this server issued")),
    onSome: (state) =>
      state.f === fingerprint(state.o)
        ? Effect.succeed(state.o)
        : Effect.fail(
            rejected(
              "cursor",
              "The cursor does not belong to this search: it continues only the search that issued it (same query, mode, filters and weights), unaltered"
            )
          )
  })

/** A page of `hits` (already ranked from position `offset`) of a ranking of `ranked` documents. */
interface RankedPage extends HitList {
  readonly offset: number
}

export const SearchHttpLive = HttpApiBuilder.group(BasaltApi, "search", (handlers) =>
  Effect.gen(function* () {
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

    const ranking = JSON.stringify([
      defaultBm25,
      candidateDepth,
      candidatePool,
      rescoredCandidates,
      embedder.model,
      embedder.minimumSimilarity
    ])

    return handlers.handle("search", ({ payload }) =>
      Effect.gen(function* () {
        const started = performance.now()
        const caller = yield* CurrentUser
        const requested = payload.mode ?? "hybrid"
        const limit = payload.limit ?? 10
        const filters = payload.filters ?? {}
        const fingerprint = (position: number) => fingerprintOf(payload, requested, position, ranking)
        if (requested === "semantic" && !database.pgvector) return yield* rejected("mode", noPgvector)
        const offset = payload.cursor === undefined ? 0 : yield* decodeCursor(payload.cursor, fingerprint)

        const unknown = yield* Effect.orDie(repo.unknownCollections(caller, filters.collection_ids ?? []))
        if (unknown.length > 0) return yield* new NotFound({ message: `No such collection: ${unknown.join(", ")}` })

        const keywordPage = (pageLimit: number, pageOffset: number): Effect.Effect<HitList> =>
          Effect.orDie(repo.keyword({ caller, query: payload.query, filters, limit: pageLimit, offset: pageOffset }))

        let mode: SearchMode = requested
        let fallback: { requested_mode: SearchMode; reason: string } | null = null
        let page: RankedPage
        if (requested === "keyword" || (requested === "hybrid" && !database.pgvector)) {
          if (requested === "hybrid") {
            mode = "keyword"
            fallback = { requested_mode: "hybrid", reason: noPgvector.replace("; use mode keyword or hybrid", "") }
          }
          page = { ...(yield* keywordPage(limit, offset)), offset }
        } else if (requested === "semantic") {
          const vector = yield* Effect.orDie(embedQuery(payload.query))
          page = { ...(yield* Effect.orDie(semanticList(caller, vector, filters, limit, offset))), offset }
        } else {
          // An embedding provider that fails leaves keyword search, said so, rather than no answer.
          const vector = yield* Effect.result(embedQuery(payload.query))
          if (Result.isFailure(vector)) {
            mode = "keyword"
            fallback = { requested_mode: "hybrid", reason: `The query could not be embedded: ${vector.failure.reason}` }
            page = { ...(yield* keywordPage(limit, offset)), offset }
          } else {
            const [keyword, semantic] = yield* Effect.all(
              [keywordPage(hybridDepth, 0), Effect.orDie(semanticList(caller, vector.success, filters, hybridDepth, 0))],
              { concurrency: 2 }
            )
            const byDocument = new Map<string, Hit>()
            for (const hit of [...semantic.hits, ...keyword.hits]) byDocument.set(hit.document_id, hit)
            const fused = fuseRankings([
              { ids: keyword.hits.map((hit) => hit.document_id), weight: payload.weights?.keyword ?? 1 },
              { ids: semantic.hits.map((hit) => hit.document_id), weight: payload.weights?.semantic ?? 1 }
            ])
            page = {
              hits: fused.slice(offset, offset + limit).map(({ id, score }) => ({ ...byDocument.get(id)!, score })),
              offset,
              ranked: fused.length,
              total: fused.length,
              totalIsExact: true
            }
          }
        }

        const details = yield* Effect.orDie(
          repo.details(
            page.hits.map((hit) => hit.chunk_id),
            payload.query
          )
        )
        const byChunk = new Map(details.map((detail) => [detail.chunk_id, detail]))
        const results: Array<SearchResult> = page.hits.flatMap((hit, index) =>
          Option.match(Option.fromNullishOr(byChunk.get(hit.chunk_id)), {
            // Deleted between the two statements: left out rather than shown half.
            onNone: () => [],
            onSome: (detail) => [{ ...detail, score: hit.score, rank: page.offset + index + 1 }]
          })
        )
        const nextOffset = page.offset + page.hits.length
        return {
          query: payload.query,
          mode,
          results,
          total: page.total,
          total_relation: page.totalIsExact ? ("eq" as const) : ("gte" as const),
          search_time_ms: Math.round((performance.now() - started) * 100) / 100,
          filters,
          next_cursor: page.hits.length > 0 && nextOffset < page.ranked ? encodeCursor(nextOffset, fingerprint(nextOffset)) : null,
          fallback
        }
      })
    )
  })
).pipe(Layer.provide(SearchRepo.layer))
