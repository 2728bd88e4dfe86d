/** Documents as the contract names them. */
import { Schema, SchemaTransformation } from "effect"
import { contractBody } from "../contract/Contract.ts"
import { ErrorBody } from "../http/ApiError.ts"
import { Uuid } from "../contract/Uuid.ts"

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

const Tag = Schema.Trim.pipe(
  Schema.decodeTo(Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(64)), SchemaTransformation.toLowerCase())
)

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

export const DocumentMetadata = contractBody(
  "DocumentMetadata",
  Schema.Record(Schema.String, Schema.Unknown).check(
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

const Title = Schema.Trim.check(Schema.isMinLength(1), Schema.isMaxLength(500))
const Url = Schema.Trim.check(Schema.isMinLength(1), Schema.isMaxLength(2048))
export const maxContentCharacters = 10_000_000
const CollectionIds = Schema.Array(Uuid).check(Schema.isMaxLength(50))

export const CreateDocumentRequest = contractBody(
  "CreateDocumentRequest",
  Schema.Struct({
    title: Title,
    content: Schema.String.check(
      Schema.isMaxLength(maxContentCharacters),
      Schema.makeFilter((content) => content.trim() !== "" || "The content is empty")
    ),
    source: DocumentSource,
    external_id: Schema.optional(Schema.Trim.check(Schema.isMinLength(1), Schema.isMaxLength(512))),
    url: Schema.optional(Url),
    metadata: Schema.optional(DocumentMetadata),
    tags: Schema.optional(DocumentTags),
    collection_ids: Schema.optional(CollectionIds),
    visibility: Schema.optional(DocumentVisibility)
  })
)
export type CreateDocumentRequest = typeof CreateDocumentRequest.Type

export const UpdateDocumentRequest = contractBody(
  "UpdateDocumentRequest",
  Schema.Struct({
    title: Schema.optional(Title),
    url: Schema.optional(Schema.NullOr(Url)),
    metadata: Schema.optional(DocumentMetadata),
    tags: Schema.optional(DocumentTags),
    collection_ids: Schema.optional(CollectionIds),
    visibility: Schema.optional(DocumentVisibility)
  }).check(Schema.makeFilter((change) => Object.keys(change).length > 0 || "Give at least one field to change"))
)
export type UpdateDocumentRequest = typeof UpdateDocumentRequest.Type

export const DocumentPage = contractBody(
  "DocumentPage",
  Schema.Struct({ items: Schema.Array(Document), next_cursor: Schema.NullOr(Schema.String), total: Schema.Int })
)

export const DocumentList = contractBody("DocumentList", Schema.Struct({ items: Schema.Array(Document) }))

export const DocumentBatchRequest = contractBody(
  "DocumentBatchRequest",
  Schema.Struct({ documents: Schema.Array(Schema.Unknown).check(Schema.isMinLength(1), Schema.isMaxLength(100)) })
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
    token_count: Schema.Int
  })
)

export const ChunkPage = contractBody(
  "ChunkPage",
  Schema.Struct({ items: Schema.Array(Chunk), next_cursor: Schema.NullOr(Schema.String), total: Schema.Int })
)

const PageLimit = Schema.NumberFromString.check(Schema.isInt(), Schema.isBetween({ minimum: 1, maximum: 100 }))
const Cursor = Schema.String.check(Schema.isMaxLength(300))

export const DocumentListQuery = Schema.Struct({
  source: Schema.optional(DocumentSource),
  tag: Schema.optional(Tag),
  status: Schema.optional(DocumentStatus),
  collection_id: Schema.optional(Uuid),
  updated_after: Schema.optional(Timestamp),
  updated_before: Schema.optional(Timestamp),
  limit: Schema.optional(PageLimit),
  cursor: Schema.optional(Cursor)
})
export type DocumentListQuery = typeof DocumentListQuery.Type

/** The list's filters, without status and paging: the selection whose progress is asked. */
export const DocumentProgressQuery = Schema.Struct({
  source: Schema.optional(DocumentSource),
  tag: Schema.optional(Tag),
  collection_id: Schema.optional(Uuid),
  updated_after: Schema.optional(Timestamp),
  updated_before: Schema.optional(Timestamp)
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
