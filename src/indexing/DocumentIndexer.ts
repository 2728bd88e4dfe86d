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

export class DocumentIndexer extends Context.Tag("basalt/DocumentIndexer")<DocumentIndexer, {
  readonly submit: (request: IndexingRequest) => Effect.Effect<void>
}>() {}
