/**
 * Storing documents from any door (one JSON document, a batch, an upload): the rights each one
 * needs, decided up front, then one transaction for the call with set-based statements: the
 * documents, their collections and the requests to index them. A one-document call is a batch
 * of one.
 */
import { createHash } from "node:crypto"
import { Context, Effect, Layer, Result } from "effect"
import type { Caller } from "../accounts/SessionsRepo.ts"
import { authorizeCollection, type CollectionAccess } from "../collections/CollectionPolicy.ts"
import { CollectionsRepo } from "../collections/CollectionsRepo.ts"
import type { Forbidden, NotFound } from "../http/ApiError.ts"
import { DocumentIndexer } from "../indexing/DocumentIndexer.ts"
import { mayPublish, readable } from "./DocumentPolicy.ts"
import type { Document, DocumentVisibility } from "./Documents.ts"
import { documentKey, type DocumentRow, DocumentsRepo } from "./DocumentsRepo.ts"

/** What decides whether a document must be indexed again. */
export const contentHash = (title: string, content: string) =>
  createHash("sha256")
    .update(JSON.stringify([title, content]))
    .digest("hex")

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

export interface NewDocument {
  readonly title: string
  readonly content: string
  /** Where each page begins in `content`, when the file it came from has pages (see PdfText). */
  readonly page_starts?: ReadonlyArray<number> | undefined
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

/** Why one document of a call is not stored. */
export type Refusal = NotFound | Forbidden

/** What each item of a call may do: refused or not, and the collections it joins and leaves. */
interface Rights {
  readonly refusals: ReadonlyArray<Refusal | undefined>
  /** For each accepted item that names collections: the collections it joins and leaves. */
  readonly changes: ReadonlyMap<number, { readonly joining: ReadonlyArray<string>; readonly leaving: ReadonlyArray<string> }>
}

export class DocumentIngestion extends Context.Service<DocumentIngestion>()("basalt/DocumentIngestion", {
  make: Effect.gen(function* () {
    const documents = yield* DocumentsRepo
    const collections = yield* CollectionsRepo
    const indexer = yield* DocumentIndexer

    /**
     * Puts the document in exactly `desired` of the collections the caller may see: each one it
     * joins or leaves needs editor or owner there. Collections the caller cannot see are left as
     * they are. Run inside the transaction that changes the document.
     */
    const syncCollections = (caller: Caller, documentId: string, desired: ReadonlyArray<string>) =>
      Effect.gen(function* () {
        const current = new Set(yield* documents.visibleCollectionsOf(caller, documentId))
        const wanted = new Set(desired)
        const joining = [...wanted].filter((id) => !current.has(id))
        const leaving = [...current].filter((id) => !wanted.has(id))
        for (const collectionId of [...joining, ...leaving]) {
          yield* authorizeCollection(caller, yield* collections.access(caller, collectionId), "edit")
        }
        yield* collections.changeDocuments({
          add: joining.map((collection_id) => ({ document_id: documentId, collection_id })),
          remove: leaving.map((collection_id) => ({ document_id: documentId, collection_id }))
        })
      })

    /**
     * Every item's rights, decided before anything is written: making it public, and each
     * collection it joins or leaves (two statements for the whole call, only when an item names
     * collections). Items naming one document are followed in order: each sees the collections
     * the accepted ones before it left the document in.
     */
    const decideRights = (caller: Caller, requests: ReadonlyArray<NewDocument>) =>
      Effect.gen(function* () {
        const named = requests.filter((request) => request.collection_ids !== undefined)
        const keys = named.flatMap((request) =>
          request.external_id === undefined ? [] : [{ source: request.source, externalId: request.external_id }]
        )
        const current = new Map<string, ReadonlyArray<string>>(
          keys.length === 0 ? [] : yield* documents.visibleCollectionsByKey(caller, keys)
        )
        const collectionIds = new Set([...named.flatMap((request) => request.collection_ids!), ...[...current.values()].flat()])
        const access =
          collectionIds.size === 0 ? new Map<string, CollectionAccess>() : yield* collections.accessMany(caller, [...collectionIds])
        const changes = new Map<number, { joining: ReadonlyArray<string>; leaving: ReadonlyArray<string> }>()
        const decide = (request: NewDocument, index: number) =>
          Effect.gen(function* () {
            yield* mayPublish(caller, request.visibility)
            if (request.collection_ids === undefined) return
            const key = request.external_id === undefined ? undefined : documentKey(request.source, request.external_id)
            const before = new Set(key === undefined ? [] : (current.get(key) ?? []))
            const wanted = new Set(request.collection_ids)
            const joining = [...wanted].filter((id) => !before.has(id))
            const leaving = [...before].filter((id) => !wanted.has(id))
            for (const collectionId of [...joining, ...leaving]) {
              yield* authorizeCollection(caller, access.get(collectionId), "edit")
            }
            changes.set(index, { joining, leaving })
            if (key !== undefined) current.set(key, [...wanted])
          })
        const refusals = yield* Effect.forEach(requests, (request, index) =>
          Effect.match(decide(request, index), { onFailure: (refusal): Refusal | undefined => refusal, onSuccess: () => undefined })
        )
        return { refusals, changes } satisfies Rights
      })

    const view = (caller: Caller, documentId: string) =>
      Effect.flatMap(documents.find(caller, documentId), readable).pipe(Effect.map(toDocument))

    /**
     * Stores the accepted documents in one transaction, set-based, with their collections and
     * the requests to index those that are new or changed (stored in the same transaction: a
     * committed document is always indexed, a rolled-back one never). `allOrNone`: one refused
     * document refuses the whole call. Nothing of a failed transaction stays behind.
     */
    const store = (caller: Caller, requests: ReadonlyArray<NewDocument>, allOrNone: boolean) =>
      Effect.gen(function* () {
        const { outcomes, queued } = yield* documents.withTransaction(
          Effect.gen(function* () {
            const rights = yield* decideRights(caller, requests)
            const firstRefusal = rights.refusals.find((refusal) => refusal !== undefined)
            if (allOrNone && firstRefusal !== undefined) return yield* Effect.fail(firstRefusal)
            const accepted = requests.flatMap((_request, index) => (rights.refusals[index] === undefined ? [index] : []))
            const stored = yield* documents.storeAll(
              caller.id,
              accepted.map((index) => {
                const request = requests[index]!
                return {
                  title: request.title,
                  content: request.content,
                  pageStarts: request.page_starts,
                  contentHash: contentHash(request.title, request.content),
                  source: request.source,
                  externalId: request.external_id,
                  url: request.url,
                  metadata: request.metadata,
                  tags: request.tags,
                  visibility: request.visibility
                }
              })
            )
            const storedAt = new Map(accepted.map((index, position) => [index, stored[position]!]))
            const pairs = (pick: "joining" | "leaving") =>
              [...rights.changes].flatMap(([index, change]) =>
                change[pick].map((collection_id) => ({ document_id: storedAt.get(index)!.id, collection_id }))
              )
            if (rights.changes.size > 0) yield* collections.changeDocuments({ add: pairs("joining"), remove: pairs("leaving") })
            const queued = stored.filter((one) => one.reindex)
            yield* indexer.submitAll(queued.map((one) => ({ documentId: one.id, revision: one.revision })))
            // Read inside the transaction: the answer shows each document as accepted, not
            // whatever step indexing reaches once the transaction has committed.
            const rows = yield* documents.findMany(
              caller,
              stored.map((one) => one.id)
            )
            const outcomes = yield* Effect.forEach(
              requests,
              (_request, index): Effect.Effect<Result.Result<Ingested, Refusal>, NotFound> => {
                const refusal = rights.refusals[index]
                if (refusal !== undefined) return Effect.succeed(Result.fail(refusal))
                const one = storedAt.get(index)!
                return Effect.map(readable(rows.get(one.id)), (row) =>
                  Result.succeed({ document: toDocument(row), outcome: one.reindex ? "queued" : "unchanged" })
                )
              }
            )
            return { outcomes, queued: queued.length }
          })
        )
        if (queued > 0) yield* indexer.wake
        return outcomes
      }).pipe(Effect.catchTag("SqlError", Effect.die))

    /** Each document on its own: a refused one (per-item 403/404) is not stored, the others are. */
    const ingestEach = (caller: Caller, requests: ReadonlyArray<NewDocument>) => Effect.catch(store(caller, requests, false), Effect.die)

    /** All or none: the first refusal refuses the call and nothing is stored. */
    const ingestAll = (caller: Caller, requests: ReadonlyArray<NewDocument>): Effect.Effect<ReadonlyArray<Ingested>, Refusal> =>
      Effect.flatMap(store(caller, requests, true), (outcomes) => Effect.forEach(outcomes, Effect.fromResult))

    const ingest = (caller: Caller, request: NewDocument) => Effect.map(ingestAll(caller, [request]), (all) => all[0]!)

    return { ingest, ingestAll, ingestEach, syncCollections, view } as const
  })
}) {
  static readonly layer = Layer.effect(this, this.make).pipe(Layer.provide([DocumentsRepo.layer, CollectionsRepo.layer]))
}
