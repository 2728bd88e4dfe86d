/** Documents as the contract names them. */
import { Schema, SchemaTransformation } from "effect"
import { contractBody } from "../contract/Contract.ts"
import { DateTime, QueryInt } from "../contract/Formats.ts"
import { ErrorBody } from "../http/ApiError.ts"
import { DecodedSeparately } from "../http/StorableText.ts"
import { Uuid } from "../contract/Uuid.ts"
import { isMaxCharacters, Text, TrimmedText } from "../contract/Text.ts"

export const DocumentSource = contractBody(
  "DocumentSource",
  Schema.String.check(
    Schema.isPattern(/^[a-z][a-z0-9_]{0,31}$/, {
      message: "Expected a source name: a lower-case letter, then up to 31 of a-z, 0-9 and _"
    })
  )
)

export const DocumentStatus = contractBody(
  "DocumentStatus",
  Schema.Literals(["queued", "parsing", "chunking", "embedding", "indexed", "failed"])
)
export type DocumentStatus = typeof DocumentStatus.Type

export const DocumentVisibility = contractBody("DocumentVisibility", Schema.Literals(["private", "public"]))
export type DocumentVisibility = typeof DocumentVisibility.Type

export const maxTags = 10

/** ISO 8601 text on the wire, a `Date` in the program. */
const Timestamp = Schema.DateFromString

const Tag = TrimmedText({ minLength: 1, maxLength: 64 }).pipe(Schema.decodeTo(Schema.String, SchemaTransformation.toLowerCase()))

/** Trimmed, lower-cased, repeats dropped: `[" HR", "hr"]` is `["hr"]`. */
export const DocumentTags = contractBody(
  "DocumentTags",
  Schema.Array(Tag)
    .check(Schema.isMaxLength(maxTags, { message: `At most ${maxTags} tags` }))
    .pipe(
      Schema.decodeTo(
        Schema.Array(Schema.String),
        SchemaTransformation.transform({
          decode: (tags): ReadonlyArray<string> => [...new Set(tags)],
          encode: (tags) => tags
        })
      )
    )
)

/** Bounded so that one document's metadata cannot bloat every list page. */
export const maxMetadataBytes = 16 * 1024

/**
 * Bounded so that every client's JSON parser can read what it gets back (openapi.yaml's
 * `x-max-depth`): the object itself is level 1, each object or array inside it one more.
 */
export const maxMetadataDepth = 32

/** Whether `value` nests objects and arrays deeper than `levels`, walked without recursion. */
const nestedDeeperThan = (value: unknown, levels: number): boolean => {
  const pending: Array<readonly [unknown, number]> = [[value, 1]]
  while (pending.length > 0) {
    const [node, level] = pending.pop()!
    if (typeof node !== "object" || node === null) continue
    if (level > levels) return true
    for (const child of Object.values(node)) pending.push([child, level + 1])
  }
  return false
}

export const DocumentMetadata = contractBody(
  "DocumentMetadata",
  Schema.Record(Schema.String, Schema.Unknown).check(
    Schema.makeFilter(
      (metadata) =>
        !nestedDeeperThan(metadata, maxMetadataDepth) ||
        `Metadata nests objects and arrays at most ${maxMetadataDepth} levels deep (the metadata object is level 1)`
    ),
    Schema.makeFilter(
      (metadata) =>
        Buffer.byteLength(JSON.stringify(metadata)) <= maxMetadataBytes || `Metadata is at most ${maxMetadataBytes} bytes of JSON`
    )
  )
)

export const Document = contractBody(
  "Document",
  Schema.Struct({
    id: Uuid,
    owner_id: Uuid,
    source: Schema.String,
    external_id: Schema.NullOr(Schema.String),
    url: Schema.NullOr(Schema.String),
    title: Schema.String,
    metadata: Schema.Record(Schema.String, Schema.Unknown),
    tags: Schema.Array(Schema.String),
    collection_ids: Schema.Array(Uuid),
    visibility: DocumentVisibility,
    status: DocumentStatus,
    error: Schema.NullOr(Schema.String),
    chunk_count: Schema.Int,
    revision: Schema.Int,
    content_hash: Schema.String,
    content_length: Schema.Int,
    created_at: Timestamp,
    updated_at: Timestamp,
    status_changed_at: Timestamp,
    indexed_at: Schema.NullOr(Timestamp)
  })
)
export type Document = typeof Document.Type

const Title = TrimmedText({ minLength: 1, maxLength: 500 })
const Url = TrimmedText({ minLength: 1, maxLength: 2048 })
export const maxContentCharacters = 10_000_000
const CollectionIds = Schema.Array(Uuid).check(Schema.isMaxLength(50))

export const CreateDocumentRequest = contractBody(
  "CreateDocumentRequest",
  Schema.Struct({
    title: Title,
    content: Schema.String.check(
      isMaxCharacters(maxContentCharacters),
      Schema.makeFilter((content) => content.trim() !== "" || "The content is empty")
    ),
    source: DocumentSource,
    external_id: Schema.optionalKey(TrimmedText({ minLength: 1, maxLength: 512 })),
    url: Schema.optionalKey(Url),
    metadata: Schema.optionalKey(DocumentMetadata),
    tags: Schema.optionalKey(DocumentTags),
    collection_ids: Schema.optionalKey(CollectionIds),
    visibility: Schema.optionalKey(DocumentVisibility)
  })
)
export type CreateDocumentRequest = typeof CreateDocumentRequest.Type

export const UpdateDocumentRequest = contractBody(
  "UpdateDocumentRequest",
  Schema.Struct({
    title: Schema.optionalKey(Title),
    url: Schema.optionalKey(Schema.NullOr(Url)),
    metadata: Schema.optionalKey(DocumentMetadata),
    tags: Schema.optionalKey(DocumentTags),
    collection_ids: Schema.optionalKey(CollectionIds),
    visibility: Schema.optionalKey(DocumentVisibility)
  }).check(Schema.makeFilter((change) => Object.keys(change).length > 0 || "Give at least one field to change"))
)
export type UpdateDocumentRequest = typeof UpdateDocumentRequest.Type

export const DocumentPage = contractBody(
  "DocumentPage",
  Schema.Struct({ items: Schema.Array(Document), next_cursor: Schema.NullOr(Schema.String), total: Schema.Int })
)

export const DocumentList = contractBody("DocumentList", Schema.Struct({ items: Schema.Array(Document) }))

/**
 * A batch item: a CreateDocumentRequest on the wire, taken as it comes here and decoded on its own
 * by DocumentBatch, so that a bad item fails alone instead of the whole batch.
 */
const BatchItem = Schema.Unknown as Schema.Codec<unknown> as Schema.Codec<unknown, typeof CreateDocumentRequest.Encoded>

export const DocumentBatchRequest = contractBody(
  "DocumentBatchRequest",
  Schema.Struct({
    // Each item is held to the rule for text by its own decoding (DocumentBatch), and refused alone.
    documents: Schema.Array(BatchItem)
      .check(Schema.isMinLength(1), Schema.isMaxLength(100))
      .annotate({ [DecodedSeparately]: true })
  })
)

export const DocumentBatchResult = contractBody(
  "DocumentBatchResult",
  Schema.Struct({
    results: Schema.Array(
      contractBody(
        "DocumentBatchItemResult",
        Schema.Struct({
          index: Schema.Int,
          status: Schema.Int,
          document: Schema.optional(Document),
          error: Schema.optional(ErrorBody)
        })
      )
    ),
    succeeded: Schema.Int,
    failed: Schema.Int
  })
)
export type DocumentBatchResult = typeof DocumentBatchResult.Type

export const Chunk = contractBody(
  "Chunk",
  Schema.Struct({
    id: Uuid,
    ordinal: Schema.Int,
    content: Schema.String,
    heading_path: Schema.Array(Schema.String),
    start_offset: Schema.Int,
    end_offset: Schema.Int,
    token_count: Schema.Int,
    first_page: Schema.NullOr(Schema.Int),
    last_page: Schema.NullOr(Schema.Int)
  })
)

export const ChunkPage = contractBody(
  "ChunkPage",
  Schema.Struct({ items: Schema.Array(Chunk), next_cursor: Schema.NullOr(Schema.String), total: Schema.Int })
)

const PageLimit = QueryInt.check(Schema.isBetween({ minimum: 1, maximum: 100 }))
const Cursor = Text({ maxLength: 300 })

/** A list filter: in the query, the parameter repeated (`?tags=a&tags=b`); any of its values matches. */
const AnyOf = <S extends Schema.Top>(value: S) => Schema.Array(value).check(Schema.isMinLength(1), Schema.isMaxLength(50))

export const DocumentListQuery = Schema.Struct({
  sources: Schema.optional(AnyOf(DocumentSource)),
  tags: Schema.optional(AnyOf(Tag)),
  status: Schema.optional(DocumentStatus),
  collection_ids: Schema.optional(AnyOf(Uuid)),
  updated_after: Schema.optional(DateTime),
  updated_before: Schema.optional(DateTime),
  limit: Schema.optional(PageLimit),
  cursor: Schema.optional(Cursor)
})
export type DocumentListQuery = typeof DocumentListQuery.Type

/** The list's filters, without status and paging: the selection whose progress is asked. */
export const DocumentProgressQuery = Schema.Struct({
  sources: Schema.optional(AnyOf(DocumentSource)),
  tags: Schema.optional(AnyOf(Tag)),
  collection_ids: Schema.optional(AnyOf(Uuid)),
  updated_after: Schema.optional(DateTime),
  updated_before: Schema.optional(DateTime)
})

const Count = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

export const IndexingProgress = contractBody(
  "IndexingProgress",
  Schema.Struct({
    total: Count,
    pending: Count,
    by_status: Schema.Struct({
      queued: Count,
      parsing: Count,
      chunking: Count,
      embedding: Count,
      indexed: Count,
      failed: Count
    }),
    window_seconds: Schema.Int,
    finished_in_window: Count,
    per_minute: Schema.NullOr(Schema.Number),
    estimated_seconds_remaining: Schema.NullOr(Schema.Number),
    estimated_completion_at: Schema.NullOr(Timestamp),
    as_of: Timestamp
  })
)
export type IndexingProgress = typeof IndexingProgress.Type

export const PageQuery = Schema.Struct({
  limit: Schema.optional(PageLimit),
  cursor: Schema.optional(Cursor)
})

export const DocumentUpload = contractBody(
  "DocumentUpload",
  Schema.Struct({
    files: Schema.Array(Schema.String),
    source: Schema.optional(Schema.String),
    tags: Schema.optional(Schema.Array(Schema.String)),
    collection_ids: Schema.optional(Schema.Array(Schema.String)),
    visibility: Schema.optional(Schema.String)
  })
)

export const DocumentStatusEvent = contractBody(
  "DocumentStatusEvent",
  Schema.Struct({
    document_id: Uuid,
    status: DocumentStatus,
    error: Schema.NullOr(Schema.String),
    chunk_count: Schema.Int,
    revision: Schema.Int,
    changed_at: Timestamp
  })
)

export const DocumentDeletedEvent = contractBody(
  "DocumentDeletedEvent",
  Schema.Struct({
    document_id: Uuid,
    revision: Schema.Int,
    deleted_at: Timestamp
  })
)
