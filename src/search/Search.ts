/** Search as the contract names it. */
import { Schema, SchemaTransformation } from "effect"
import { contractBody } from "../contract/Contract.ts"
import { DateTime } from "../contract/Formats.ts"
import { Uuid } from "../contract/Uuid.ts"
import { isNotBlank, Text, TrimmedText } from "../contract/Text.ts"

export const SearchMode = contractBody("SearchMode", Schema.Literals(["hybrid", "keyword", "semantic"]))
export type SearchMode = typeof SearchMode.Type

const Tag = TrimmedText({ minLength: 1, maxLength: 100 }).pipe(
  Schema.decodeTo(Schema.String.check(Schema.isLowercased()), SchemaTransformation.toLowerCase())
)

export const SearchFilters = contractBody(
  "SearchFilters",
  Schema.Struct({
    sources: Schema.optionalKey(Schema.Array(Text({ minLength: 1, maxLength: 100 })).check(Schema.isMinLength(1), Schema.isMaxLength(50))),
    tags: Schema.optionalKey(Schema.Array(Tag).check(Schema.isMinLength(1), Schema.isMaxLength(50))),
    collection_ids: Schema.optionalKey(Schema.Array(Uuid).check(Schema.isMinLength(1), Schema.isMaxLength(50))),
    document_ids: Schema.optionalKey(Schema.Array(Uuid).check(Schema.isMinLength(1), Schema.isMaxLength(100))),
    updated_after: Schema.optionalKey(DateTime),
    updated_before: Schema.optionalKey(DateTime)
  })
)
export type SearchFilters = typeof SearchFilters.Type

const Weight = Schema.Number.check(Schema.isBetween({ minimum: 0, maximum: 10 }))

export const SearchWeights = contractBody(
  "SearchWeights",
  Schema.Struct({ keyword: Schema.optionalKey(Weight), semantic: Schema.optionalKey(Weight) })
)

export const SearchRequest = contractBody(
  "SearchRequest",
  Schema.Struct({
    query: Text({ minLength: 1, maxLength: 1000 }).check(isNotBlank),
    mode: Schema.optionalKey(SearchMode),
    filters: Schema.optionalKey(SearchFilters),
    limit: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 100 }))),
    cursor: Schema.optionalKey(Text({ maxLength: 200 })),
    weights: Schema.optionalKey(SearchWeights)
  })
)
export type SearchRequest = typeof SearchRequest.Type

export const SearchResult = contractBody(
  "SearchResult",
  Schema.Struct({
    document_id: Schema.String,
    chunk_id: Schema.String,
    title: Schema.String,
    source: Schema.String,
    url: Schema.NullOr(Schema.String),
    content: Schema.String,
    page: Schema.NullOr(Schema.Int),
    highlights: Schema.Array(Schema.String),
    score: Schema.Number,
    rank: Schema.Int
  })
)
export type SearchResult = typeof SearchResult.Type

export const SearchFallback = contractBody("SearchFallback", Schema.Struct({ requested_mode: SearchMode, reason: Schema.String }))

export const SearchResponse = contractBody(
  "SearchResponse",
  Schema.Struct({
    query: Schema.String,
    mode: SearchMode,
    results: Schema.Array(SearchResult),
    total: Schema.Int,
    total_relation: Schema.Literals(["eq", "gte"]),
    search_time_ms: Schema.Number,
    filters: SearchFilters,
    next_cursor: Schema.NullOr(Schema.String),
    fallback: Schema.NullOr(SearchFallback)
  })
)
export type SearchResponse = typeof SearchResponse.Type
