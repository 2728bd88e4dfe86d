/**
 * Storing a document from any door (one JSON document, a batch item, an uploaded file): the
 * rights it needs, one transaction for the document and its collections, then the request to
 * index it, made once the transaction has committed (the indexer reads what was committed).
 */
import { createHash } from "node:crypto"
import { Effect } from "effect"
import type { Caller } from "../accounts/SessionsRepo.ts"
import { authorizeCollection } from "../collections/CollectionPolicy.ts"
import { CollectionsRepo } from "../collections/CollectionsRepo.ts"
import type { Forbidden, NotFound } from "../http/ApiError.ts"
import { DocumentIndexer } from "../indexing/DocumentIndexer.ts"
import { mayPublish, readable } from "./DocumentPolicy.ts"
import type { Document, DocumentVisibility } from "./Documents.ts"
import { type DocumentRow, DocumentsRepo } from "./DocumentsRepo.ts"

/** What decides whether a document must be indexed again. */
export const contentHash = (title: string, content: string) =>
  createHash("sha256").update(JSON.stringify([title, content])).digest("hex")

export const toDocument = (row: DocumentRow): Document => ({
  id: row.id,
  owner_id: row.owner_id,
  source: row.source,
  external_id: row.external_id,
  url: row.url,
  title: row.title,
  metadata: row.metadata,
  tags: row.tags,
  collection_ids: row.collection_ids,
  visibility: row.visibility,
  status: row.status,
  error: row.error,
  chunk_count: row.chunk_count,
  revision: row.revision,
  content_hash: row.content_hash,
  content_length: row.content_length,
  created_at: row.created_at,
  updated_at: row.updated_at,
  status_changed_at: row.status_changed_at,
  indexed_at: row.indexed_at
})

/** Indexing requests stored at once for one ingestion call. */
const submitConcurrency = 8

export interface NewDocument {
  readonly title: string
  readonly content: string
  readonly source: string
  readonly external_id?: string | undefined
  readonly url?: string | undefined
  readonly metadata?: Readonly<Record<string, unknown>> | undefined
  readonly tags?: ReadonlyArray<string> | undefined
  readonly collection_ids?: ReadonlyArray<string> | undefined
  readonly visibility?: DocumentVisibility | undefined
}

/** `queued`: created or changed, indexing requested (202); `unchanged`: same content (200). */
export interface Ingested {
  readonly document: Document
  readonly outcome: "queued" | "unchanged"
}

export class DocumentIngestion extends Effect.Service<DocumentIngestion>()("basalt/DocumentIngestion", {
  effect: Effect.gen(function*() {
    const documents = yield* DocumentsRepo
    const collections = yield* CollectionsRepo
    const indexer = yield* DocumentIndexer

    /**
     * Puts the document in exactly `desired` of the collections the caller may see: each one it
     * joins or leaves needs editor or owner there. Collections the caller cannot see are left as
     * they are. Run inside the transaction that changes the document.
     */
    const syncCollections = (caller: Caller, documentId: string, desired: ReadonlyArray<string>) =>
      Effect.gen(function*() {
        const current = new Set(yield* documents.visibleCollectionsOf(caller, documentId))
        const wanted = new Set(desired)
        const joining = [...wanted].filter((id) => !current.has(id))
        const leaving = [...current].filter((id) => !wanted.has(id))
        for (const collectionId of [...joining, ...leaving]) {
          yield* authorizeCollection(caller, yield* collections.access(caller, collectionId), "edit")
        }
        for (const collectionId of joining) yield* collections.addDocument(collectionId, documentId)
        for (const collectionId of leaving) yield* collections.removeDocument(collectionId, documentId)
      })

    const view = (caller: Caller, documentId: string) =>
      Effect.flatMap(documents.find(caller, documentId), readable).pipe(Effect.map(toDocument))

    /** Stores one document and its collections; run inside a transaction. */
    const store = (caller: Caller, request: NewDocument) =>
      Effect.gen(function*() {
        const stored = yield* documents.store(caller.id, {
          title: request.title,
          content: request.content,
          contentHash: contentHash(request.title, request.content),
          source: request.source,
          externalId: request.external_id,
          url: request.url,
          metadata: request.metadata,
          tags: request.tags,
          visibility: request.visibility
        })
        if (request.collection_ids !== undefined) yield* syncCollections(caller, stored.id, request.collection_ids)
        return stored
      })

    /**
     * Stores the documents in one transaction (all or none), then asks for the indexing of each
     * that is new or changed. Nothing of a failed request stays behind.
     */
    const ingestAll = (
      caller: Caller,
      requests: ReadonlyArray<NewDocument>
    ): Effect.Effect<ReadonlyArray<Ingested>, NotFound | Forbidden> =>
      Effect.gen(function*() {
        for (const request of requests) yield* mayPublish(caller, request.visibility)
        const stored = yield* documents.withTransaction(Effect.forEach(requests, (request) => store(caller, request)))
        // Read before indexing is asked for: the answer shows the document as accepted (queued),
        // not whatever step a fast indexer has reached by then.
        const rows = yield* documents.findMany(caller, stored.map((one) => one.id))
        const ingested = yield* Effect.forEach(stored, (one) =>
          Effect.map(readable(rows.get(one.id)), (row): Ingested => ({
            document: toDocument(row),
            outcome: one.reindex ? "queued" : "unchanged"
          })))
        // Each submission is its own insert and commit: a few at once share the database's flushes.
        yield* Effect.forEach(stored.filter((one) => one.reindex), (one) => indexer.submit({ documentId: one.id, revision: one.revision }), {
          concurrency: submitConcurrency,
          discard: true
        })
        return ingested
      }).pipe(Effect.catchTag("SqlError", Effect.die))

    const ingest = (caller: Caller, request: NewDocument) => Effect.map(ingestAll(caller, [request]), (all) => all[0]!)

    return { ingest, ingestAll, syncCollections, view } as const
  }),
  dependencies: [DocumentsRepo.Default, CollectionsRepo.Default]
}) {}
