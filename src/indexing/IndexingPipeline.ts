/**
 * Indexing one revision of one document: parsing → chunking → embedding → indexed (one
 * transaction), or failed with a reason someone can act on.
 *
 * At most `BASALT_INDEXING_CONCURRENCY` documents go through it at once, whatever the number of
 * entities holding a message: the permits are taken here, not per entity. Failures that may pass
 * (the provider's 429 or 5xx once the embedder's own retries are spent, a dropped database
 * connection) run the whole attempt again with exponential backoff; the rest fail the document
 * at once.
 */
import type { SqlError } from "@effect/sql"
import { type Duration, Effect, Option, Schedule } from "effect"
import { AppConfig } from "../config/AppConfig.ts"
import { DatabaseInfo } from "../database/Database.ts"
import { Embedder, type EmbeddingError } from "../embedding/Embedder.ts"
import { chunkDocument } from "./Chunker.ts"
import { IndexingRepo } from "./IndexingRepo.ts"

/** How a run ended; logged, and what tests look for. */
export type IndexingOutcome = "indexed" | "failed" | "superseded" | "already indexed" | "not found"

/**
 * Documents hold text already (uploads are extracted before they are stored): parsing is
 * reading it as the chunker expects. Offsets stay offsets into `documents.content`, so nothing
 * is rewritten here; the chunker handles line endings itself.
 */
export const parseContent = (content: string): string => content

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

const isTransient = (error: EmbeddingError | SqlError.SqlError) => error._tag === "SqlError" || error.transient

const describeFailure = (error: EmbeddingError | SqlError.SqlError, attempts: number): string => {
  const tries = `gave up after ${attempts} attempt${attempts === 1 ? "" : "s"}`
  if (error._tag === "SqlError") {
    return `the database failed while this document was being indexed (${tries}): check that the database is reachable, then submit the document again`
  }
  return error.transient
    ? `embedding failed: ${error.reason} (indexing ${tries}): submit the document again once the provider answers`
    : `embedding failed: ${error.reason}`
}

export interface IndexingPipelineOptions {
  /** Whole-run attempts after a transient failure. */
  readonly retries: number
  readonly retryBaseDelay: Duration.DurationInput
}

export const defaultPipelineOptions: IndexingPipelineOptions = { retries: 4, retryBaseDelay: "1 second" }

export class IndexingPipeline extends Effect.Service<IndexingPipeline>()("basalt/IndexingPipeline", {
  effect: Effect.gen(function*() {
    const repo = yield* IndexingRepo
    const embedder = yield* Embedder
    const { pgvector } = yield* DatabaseInfo
    const { indexing } = yield* AppConfig
    const permits = yield* Effect.makeSemaphore(indexing.concurrency)
    const chunkerOptions = { targetTokens: indexing.chunkTokens, overlapTokens: indexing.chunkOverlapTokens }
    const options = defaultPipelineOptions

    const attempt = (documentId: string, revision: number) =>
      Effect.gen(function*() {
        const found = yield* repo.load(documentId)
        if (Option.isNone(found)) return "not found" as const
        const document = found.value
        // An older revision's message: the newer one is queued behind it (same entity, in order).
        if (document.revision !== revision) return "superseded" as const
        // This revision was indexed already (a message replayed after a crash, a repeated submit).
        if (document.status === "indexed") return "already indexed" as const

        if (!(yield* repo.setStep(documentId, revision, "parsing"))) return "superseded" as const
        const text = parseContent(document.content)
        if (!(yield* repo.setStep(documentId, revision, "chunking"))) return "superseded" as const
        const chunks = chunkDocument({ title: document.title, text }, chunkerOptions)
        if (!(yield* repo.setStep(documentId, revision, "embedding"))) return "superseded" as const
        // Without pgvector there is nowhere to keep vectors: keyword search needs only the chunks.
        const vectors = pgvector && chunks.length > 0
          ? { model: embedder.model, vectors: yield* embedder.embed(chunks.map((chunk) => chunk.contextualText)) }
          : undefined
        const stored = yield* repo.replaceChunks(documentId, revision, chunks, vectors)
        return stored ? "indexed" as const : "superseded" as const
      })

    const index = (documentId: string, revision: number): Effect.Effect<IndexingOutcome> => {
      if (!uuidPattern.test(documentId)) return Effect.succeed("not found")
      let attempts = 0
      return Effect.suspend(() => {
        attempts++
        return attempt(documentId, revision)
      }).pipe(
        Effect.retry({
          while: isTransient,
          schedule: Schedule.exponential(options.retryBaseDelay).pipe(
            Schedule.jittered,
            Schedule.intersect(Schedule.recurs(options.retries))
          )
        }),
        Effect.tapError((error) =>
          Effect.logWarning("indexing failed").pipe(Effect.annotateLogs({ document_id: documentId, revision, error: error.message }))
        ),
        Effect.catchAll((error) =>
          repo.fail(documentId, revision, describeFailure(error, attempts)).pipe(Effect.as("failed" as const))
        ),
        // Even the failure could not be written (the database is gone): a defect, so the cluster
        // restarts the entity with backoff and the message runs again.
        Effect.orDie,
        permits.withPermits(1),
        Effect.tap((outcome) =>
          Effect.logInfo("indexing run finished").pipe(
            Effect.annotateLogs({ document_id: documentId, revision, outcome, attempts })
          )
        ),
        Effect.withSpan("IndexingPipeline.index", { attributes: { "document.id": documentId, "document.revision": revision } })
      )
    }

    return { index } as const
  }),
  dependencies: [IndexingRepo.Default]
}) {}
