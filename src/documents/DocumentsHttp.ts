import { Effect, Layer } from "effect"
import { HttpServerResponse } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import { Authenticator, CurrentUser } from "../accounts/Authentication.ts"
import { BasaltApi } from "../Api.ts"
import { CollectionsRepo } from "../collections/CollectionsRepo.ts"
import { DocumentIndexer } from "../indexing/DocumentIndexer.ts"
import { ingestBatch } from "./DocumentBatch.ts"
import { makeDocumentEvents } from "./DocumentEvents.ts"
import { contentHash, DocumentIngestion, toDocument } from "./DocumentIngestion.ts"
import { changeable, mayPublish, readable } from "./DocumentPolicy.ts"
import { DocumentsRepo } from "./DocumentsRepo.ts"
import { indexingProgress, progressWindowSeconds } from "./IndexingProgress.ts"
import { uploadDocuments } from "./DocumentUpload.ts"
import { decodeCursor, encodeCursor, invalidCursor, pageOf } from "../http/PageCursor.ts"

export const DocumentsHttpLive = HttpApiBuilder.group(BasaltApi, "documents", (handlers) =>
  Effect.gen(function* () {
    const documents = yield* DocumentsRepo
    const ingestion = yield* DocumentIngestion
    const indexer = yield* DocumentIndexer
    const authenticator = yield* Authenticator
    const streamDocumentEvents = yield* makeDocumentEvents

    return handlers
      .handle("createDocument", ({ payload }) =>
        Effect.gen(function* () {
          const { document, outcome } = yield* ingestion.ingest(yield* CurrentUser, payload)
          return HttpServerResponse.jsonUnsafe(document, { status: outcome === "queued" ? 202 : 200 })
        })
      )
      .handle("createDocumentsBatch", ({ payload }) =>
        Effect.flatMap(CurrentUser, (caller) => ingestBatch(ingestion, caller, payload.documents))
      )
      .handle("uploadDocuments", ({ payload }) => Effect.flatMap(CurrentUser, (caller) => uploadDocuments(ingestion, caller, payload)))
      .handle("documentEvents", ({ request }) =>
        Effect.flatMap(CurrentUser, (caller) => streamDocumentEvents(caller, request, Effect.option(authenticator.identify(request))))
      )
      .handle("listDocuments", ({ query }) =>
        Effect.gen(function* () {
          const caller = yield* CurrentUser
          const limit = query.limit ?? 50
          const after = yield* decodeCursor(query.cursor)
          const { rows, total } = yield* Effect.orDie(documents.list(caller, query, limit, after))
          return { ...pageOf(rows, limit, toDocument, (last) => encodeCursor({ at: last.updated_at_exact, id: last.id })), total }
        })
      )
      .handle("getIndexingProgress", ({ query }) =>
        Effect.gen(function* () {
          const row = yield* Effect.orDie(documents.progress(yield* CurrentUser, query, progressWindowSeconds))
          return indexingProgress(row)
        })
      )
      .handle("getDocument", ({ params }) =>
        Effect.gen(function* () {
          const caller = yield* CurrentUser
          return toDocument(yield* readable(yield* Effect.orDie(documents.find(caller, params.document_id))))
        })
      )
      .handle("updateDocument", ({ params, payload }) =>
        Effect.gen(function* () {
          const caller = yield* CurrentUser
          const document = yield* changeable(yield* documents.find(caller, params.document_id))
          yield* mayPublish(caller, payload.visibility)
          const retitled = payload.title !== undefined && payload.title !== document.title
          yield* documents.withTransaction(
            Effect.gen(function* () {
              const retitle = retitled
                ? { title: payload.title!, contentHash: contentHash(payload.title!, yield* documents.contentOf(document.id)) }
                : undefined
              const revision = yield* documents.update(document.id, {
                url: payload.url,
                metadata: payload.metadata,
                tags: payload.tags,
                visibility: payload.visibility,
                retitle
              })
              if (payload.collection_ids !== undefined) {
                yield* ingestion.syncCollections(caller, document.id, payload.collection_ids)
              }
              // The title is carried with every chunk: only a new title needs indexing again.
              if (retitled) yield* indexer.submitAll([{ documentId: document.id, revision }])
            })
          )
          const updated = yield* ingestion.view(caller, document.id)
          if (retitled) yield* indexer.wake
          return updated
        }).pipe(Effect.catchTag("SqlError", Effect.die))
      )
      .handle("deleteDocument", ({ params }) =>
        Effect.gen(function* () {
          const caller = yield* CurrentUser
          const document = yield* changeable(yield* documents.find(caller, params.document_id))
          // Chunks and embeddings go with it (ON DELETE CASCADE).
          yield* documents.remove(document.id)
        }).pipe(Effect.catchTag("SqlError", Effect.die))
      )
      .handle("listDocumentChunks", ({ params, query }) =>
        Effect.gen(function* () {
          const caller = yield* CurrentUser
          const document = yield* readable(yield* documents.find(caller, params.document_id))
          const limit = query.limit ?? 50
          const after = yield* decodeCursor(query.cursor)
          if (after !== undefined && !/^\d{1,9}$/.test(after.at)) return yield* invalidCursor()
          const afterOrdinal = after === undefined ? undefined : Number(after.at)
          const { rows, total } = yield* documents.chunks(document.id, limit, afterOrdinal)
          return {
            ...pageOf(
              rows,
              limit,
              (row) => row,
              (last) => encodeCursor({ at: String(last.ordinal), id: last.id })
            ),
            total
          }
        }).pipe(Effect.catchTag("SqlError", Effect.die))
      )
  })
).pipe(Layer.provide([DocumentIngestion.layer, DocumentsRepo.layer, CollectionsRepo.layer]))
