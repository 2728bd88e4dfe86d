/** Documents as the contract names them. */
import { Schema } from "effect"
import { contractBody } from "../contract/Contract.ts"
import { ErrorBody } from "../http/ApiError.ts"

export const DocumentSource = contractBody(
  "DocumentSource",
  Schema.String.pipe(Schema.pattern(/^[a-z][a-z0-9_]{0,31}$/, {
    message: () => "Expected a source name: a lower-case letter, then up to 31 of a-z, 0-9 and _"
  }))
)

export const DocumentStatus = contractBody(
  "DocumentStatus",
  Schema.Literal("queued", "parsing", "chunking", "embedding", "indexed", "failed")
)
export type DocumentStatus = typeof DocumentStatus.Type

export const DocumentVisibility = contractBody("DocumentVisibility", Schema.Literal("private", "public"))
export type DocumentVisibility = typeof DocumentVisibility.Type

export const maxTags = 10

const Tag = Schema.compose(Schema.Trim, Schema.Lowercase).pipe(Schema.minLength(1), Schema.maxLength(64))

/** Trimmed, lower-cased, repeats dropped: `[" HR", "hr"]` is `["hr"]`. */
export const DocumentTags = contractBody(
  "DocumentTags",
  Schema.transform(
    Schema.Array(Tag).pipe(Schema.maxItems(maxTags, { message: () => `At most ${maxTags} tags` })),
    Schema.Array(Schema.String),
    { strict: true, decode: (tags) => [...new Set(tags)], encode: (tags) => tags }
  )
)

/** Bounded so that one document's metadata cannot bloat every list page. */
export const maxMetadataBytes = 16 * 1024

export const DocumentMetadata = contractBody(
  "DocumentMetadata",
  Schema.Record({ key: Schema.String, value: Schema.Unknown }).pipe(
    Schema.filter((metadata) => Buffer.byteLength(JSON.stringify(metadata)) <= maxMetadataBytes, {
      message: () => `Metadata is at most ${maxMetadataBytes} bytes of JSON`
    })
  )
)

export const Document = contractBody(
  "Document",
  Schema.Struct({
    id: Schema.UUID,
    owner_id: Schema.UUID,
    source: Schema.String,
    external_id: Schema.NullOr(Schema.String),
    url: Schema.NullOr(Schema.String),
    title: Schema.String,
    metadata: Schema.Record({ key: Schema.String, value: Schema.Unknown }),
    tags: Schema.Array(Schema.String),
    collection_ids: Schema.Array(Schema.UUID),
    visibility: DocumentVisibility,
    status: DocumentStatus,
    error: Schema.NullOr(Schema.String),
    chunk_count: Schema.Int,
    revision: Schema.Int,
    content_hash: Schema.String,
    content_length: Schema.Int,
    created_at: Schema.Date,
    updated_at: Schema.Date,
    status_changed_at: Schema.Date,
    indexed_at: Schema.NullOr(Schema.Date)
  })
)
export type Document = typeof Document.Type

const Title = Schema.Trim.pipe(Schema.minLength(1), Schema.maxLength(500))
const Url = Schema.Trim.pipe(Schema.minLength(1), Schema.maxLength(2048))
export const maxContentCharacters = 10_000_000
const CollectionIds = Schema.Array(Schema.UUID).pipe(Schema.maxItems(50))

export const CreateDocumentRequest = contractBody(
  "CreateDocumentRequest",
  Schema.Struct({
    title: Title,
    content: Schema.String.pipe(
      Schema.maxLength(maxContentCharacters),
      Schema.filter((content) => content.trim() !== "", { message: () => "The content is empty" })
    ),
    source: DocumentSource,
    external_id: Schema.optional(Schema.Trim.pipe(Schema.minLength(1), Schema.maxLength(512))),
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
  }).pipe(
    Schema.filter((change) => Object.keys(change).length > 0, { message: () => "Give at least one field to change" })
  )
)
export type UpdateDocumentRequest = typeof UpdateDocumentRequest.Type

export const DocumentPage = contractBody(
  "DocumentPage",
  Schema.Struct({ items: Schema.Array(Document), next_cursor: Schema.NullOr(Schema.String), total: Schema.Int })
)

export const DocumentList = contractBody("DocumentList", Schema.Struct({ items: Schema.Array(Document) }))

export const DocumentBatchRequest = contractBody(
  "DocumentBatchRequest",
  Schema.Struct({ documents: Schema.Array(Schema.Unknown).pipe(Schema.minItems(1), Schema.maxItems(100)) })
)

export const DocumentBatchResult = contractBody(
  "DocumentBatchResult",
  Schema.Struct({
    results: Schema.Array(contractBody(
      "DocumentBatchItemResult",
      Schema.Struct({
        index: Schema.Int,
        status: Schema.Int,
        document: Schema.optional(Document),
        error: Schema.optional(ErrorBody)
      })
    )),
    succeeded: Schema.Int,
    failed: Schema.Int
  })
)
export type DocumentBatchResult = typeof DocumentBatchResult.Type

export const Chunk = contractBody(
  "Chunk",
  Schema.Struct({
    id: Schema.UUID,
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

const PageLimit = Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 100))
const Cursor = Schema.String.pipe(Schema.maxLength(300))

/** Refuses unknown parameters: a misspelt filter must not silently widen the list. */
const strictQuery = { parseOptions: { onExcessProperty: "error", errors: "all" } } as const

export const DocumentListQuery = Schema.Struct({
  source: Schema.optional(DocumentSource),
  tag: Schema.optional(Tag),
  status: Schema.optional(DocumentStatus),
  collection_id: Schema.optional(Schema.UUID),
  updated_after: Schema.optional(Schema.Date),
  updated_before: Schema.optional(Schema.Date),
  limit: Schema.optional(PageLimit),
  cursor: Schema.optional(Cursor)
}).annotations(strictQuery)
export type DocumentListQuery = typeof DocumentListQuery.Type

/** The list's filters, without status and paging: the selection whose progress is asked. */
export const DocumentProgressQuery = Schema.Struct({
  source: Schema.optional(DocumentSource),
  tag: Schema.optional(Tag),
  collection_id: Schema.optional(Schema.UUID),
  updated_after: Schema.optional(Schema.Date),
  updated_before: Schema.optional(Schema.Date)
}).annotations(strictQuery)

const Count = Schema.Int.pipe(Schema.nonNegative())

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
    estimated_completion_at: Schema.NullOr(Schema.Date),
    as_of: Schema.Date
  })
)
export type IndexingProgress = typeof IndexingProgress.Type

export const PageQuery = Schema.Struct({
  limit: Schema.optional(PageLimit),
  cursor: Schema.optional(Cursor)
}).annotations(strictQuery)

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
    document_id: Schema.UUID,
    status: DocumentStatus,
    error: Schema.NullOr(Schema.String),
    chunk_count: Schema.Int,
    revision: Schema.Int,
    changed_at: Schema.Date
  })
)

export const DocumentDeletedEvent = contractBody(
  "DocumentDeletedEvent",
  Schema.Struct({
    document_id: Schema.UUID,
    revision: Schema.Int,
    deleted_at: Schema.Date
  })
)
