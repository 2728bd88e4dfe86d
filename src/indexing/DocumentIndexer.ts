/**
 * What ingestion asks of indexing: index this revision of this document, in the background.
 * Submitting is durable (the request is stored before `submit` returns) and idempotent: a
 * revision already indexed or being indexed is not indexed twice, and a newer revision
 * supersedes an older one.
 */
import { Context, type Effect } from "effect"

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
