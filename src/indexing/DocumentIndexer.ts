/**
 * What ingestion asks of indexing: index this revision of this document, in the background.
 * Submitting is durable (the request is stored before `submit` returns) and idempotent: a
 * revision already indexed or being indexed is not indexed twice, and a newer revision
 * supersedes an older one.
 */
import { Context, Effect, Layer } from "effect"
import { ClusterWake } from "../cluster/ClusterWake.ts"
import { ServiceUnavailable } from "../http/ApiError.ts"
import { DocumentIndexing } from "./DocumentIndexing.ts"

export interface IndexingRequest {
  readonly documentId: string
  /** `documents.revision` at submission: a run for an older revision stops early. */
  readonly revision: number
}

export class DocumentIndexer extends Context.Service<
  DocumentIndexer,
  {
    /**
     * Stores the requests. Inside `sql.withTransaction` they are part of the transaction, so a
     * document is queued for indexing exactly when it is committed: indexing reads them once the
     * transaction commits (call `wake` then, or they wait for the next poll) and never if it
     * rolls back.
     */
    readonly submitAll: (requests: ReadonlyArray<IndexingRequest>) => Effect.Effect<void>
    /** Has indexing read the stored requests now instead of at its next poll. */
    readonly wake: Effect.Effect<void>
    /** One request, outside a transaction: stored, then `wake`. */
    readonly submit: (request: IndexingRequest) => Effect.Effect<void>
  }
>()("basalt/DocumentIndexer") {}

/**
 * A request is stored (the cluster's SQL message storage, on the app's SqlClient: inside the
 * caller's transaction when there is one) and nothing more: no runner is waited on (ClusterLive's
 * outbox). Storing is a few statements, each bounded; the whole is bounded too, so that no
 * request can hang on the cluster: past it, the write fails with 503 and rolls back.
 */
const storeBound = "10 seconds"

export const DocumentIndexerLive = Layer.effect(
  DocumentIndexer,
  Effect.gen(function* () {
    const makeClient = yield* DocumentIndexing.client
    const { wake } = yield* ClusterWake
    const store = ({ documentId, revision }: IndexingRequest) =>
      makeClient(documentId)
        .Index({ revision }, { discard: true })
        .pipe(
          Effect.orDie,
          Effect.timeoutOrElse({
            duration: storeBound,
            orElse: () =>
              Effect.andThen(
                Effect.logWarning(`indexing: storing the request for document ${documentId} took over ${storeBound}`),
                Effect.die(
                  new ServiceUnavailable({ message: "Background indexing is unavailable. Try again in 5 s", retryAfterSeconds: 5 })
                )
              )
          }),
          Effect.withSpan("DocumentIndexer.submit", { attributes: { "document.id": documentId, "document.revision": revision } })
        )
    return DocumentIndexer.of({
      // One after the other: two revisions of one document are stored (and so handled) in order.
      submitAll: (requests) => Effect.forEach(requests, store, { discard: true }),
      wake,
      submit: (request) => Effect.andThen(store(request), wake)
    })
  })
)
