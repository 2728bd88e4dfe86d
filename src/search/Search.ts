/** Search as the contract names it. */
import { Schema } from "effect"
import { contractBody } from "../contract/Contract.ts"

export const SearchMode = contractBody("SearchMode", Schema.Literal("hybrid", "keyword", "semantic"))
export type SearchMode = typeof SearchMode.Type

const Tag = Schema.compose(Schema.Trim, Schema.Lowercase).pipe(Schema.minLength(1), Schema.maxLength(100))

export const SearchFilters = contractBody(
  "SearchFilters",
  Schema.Struct({
    sources: Schema.optional(Schema.Array(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(100))).pipe(Schema.minItems(1), Schema.maxItems(50))),
    tags: Schema.optional(Schema.Array(Tag).pipe(Schema.minItems(1), Schema.maxItems(50))),
    collections: Schema.optional(Schema.Array(Schema.UUID).pipe(Schema.minItems(1), Schema.maxItems(50))),
    document_ids: Schema.optional(Schema.Array(Schema.UUID).pipe(Schema.minItems(1), Schema.maxItems(100))),
    updated_after: Schema.optional(Schema.Date),
    updated_before: Schema.optional(Schema.Date)
  })
)
export type SearchFilters = typeof SearchFilters.Type

const Weight = Schema.Number.pipe(Schema.between(0, 10))

export const SearchWeights = contractBody(
  "SearchWeights",
  Schema.Struct({ keyword: Schema.optional(Weight), semantic: Schema.optional(Weight) })
)

export const SearchRequest = contractBody(
  "SearchRequest",
  Schema.Struct({
    query: Schema.String.pipe(
      Schema.minLength(1),
      Schema.maxLength(1000),
      Schema.pattern(/\S/, { message: () => "Expected at least one character that is not a space" })
    ),
    mode: Schema.optional(SearchMode),
    filters: Schema.optional(SearchFilters),
    limit: Schema.optional(Schema.Int.pipe(Schema.between(1, 100))),
    cursor: Schema.optional(Schema.String.pipe(Schema.maxLength(200))),
    weights: Schema.optional(SearchWeights)
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
    highlights: Schema.Array(Schema.String),
    score: Schema.Number,
    rank: Schema.Int
  })
)
export type SearchResult = typeof SearchResult.Type

export const SearchFallback = contractBody(
  "SearchFallback",
  Schema.Struct({ requested_mode: SearchMode, reason: Schema.String })
)

export const SearchResponse = contractBody(
  "SearchResponse",
  Schema.Struct({
    query: Schema.String,
    mode: SearchMode,
    results: Schema.Array(SearchResult),
    total: Schema.Int,
    total_relation: Schema.Literal("eq", "gte"),
    search_time_ms: Schema.Number,
    filters: SearchFilters,
    next_cursor: Schema.NullOr(Schema.String),
    fallback: Schema.NullOr(SearchFallback)
  })
)
export type SearchResponse = typeof SearchResponse.Type
