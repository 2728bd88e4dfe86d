/**
 * Indexing one revision of one document: parsing → chunking → embedding → indexed (one
 * transaction), or failed with a reason someone can act on.
 *
 * Entities hand their documents to a queue here; `BASALT_INDEXING_CONCURRENCY` workers take them
 * in batches of up to `BASALT_INDEXING_BATCH_SIZE`, whatever the number of entities holding a
 * message: per batch, one status write per step, one embedding call and one transaction instead
 * of as many as documents (what a document costs in round trips was what bounded throughput).
 * Failures that may pass
 * (the provider's 429 or 5xx once the embedder's own retries are spent, a dropped database
 * connection) run the whole attempt again with exponential backoff; the rest fail the document
 * at once.
 */
import { Context, Deferred, type Duration, Effect, Exit, Layer, Option, Queue, Schedule } from "effect"
import type { SqlError } from "effect/sql"
import { AppConfig } from "../config/AppConfig.ts"
import { DatabaseInfo } from "../database/Database.ts"
import { Embedder, type EmbeddingError } from "../embedding/Embedder.ts"
import { chunkDocument } from "./Chunker.ts"
import { type DocumentRevision, type IndexedDocument, IndexingRepo, type IndexingStep } from "./IndexingRepo.ts"

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
  readonly retryBaseDelay: Duration.Input
}

export const defaultPipelineOptions: IndexingPipelineOptions = { retries: 4, retryBaseDelay: "1 second" }

interface Job extends DocumentRevision {
  readonly done: Deferred.Deferred<IndexingOutcome>
}

export class IndexingPipeline extends Context.Service<IndexingPipeline>()("basalt/IndexingPipeline", {
  make: Effect.gen(function* () {
    const repo = yield* IndexingRepo
    const embedder = yield* Embedder
    const { pgvector } = yield* DatabaseInfo
    const { indexing } = yield* AppConfig
    const chunkerOptions = { targetTokens: indexing.chunkTokens, overlapTokens: indexing.chunkOverlapTokens }
    const options = defaultPipelineOptions
    const queue = yield* Queue.unbounded<Job>()

    /**
     * One attempt at a batch: each step is one statement for all its documents, the chunks of
     * all of them go to the embedder in one call, and one transaction swaps them. Documents
     * superseded or gone on the way drop out with their outcome.
     */
    const attempt = (jobs: ReadonlyArray<DocumentRevision>) =>
      Effect.gen(function* () {
        const outcomes = new Map<string, IndexingOutcome>()
        const found = yield* repo.load(jobs.map((job) => job.documentId))
        let live = jobs.filter((job) => {
          const document = found.get(job.documentId)
          if (document === undefined) outcomes.set(job.documentId, "not found")
          // An older revision's message: the newer one is queued behind it (same entity, in order).
          else if (document.revision !== job.revision) outcomes.set(job.documentId, "superseded")
          // This revision was indexed already (a message replayed after a crash, a repeated submit).
          else if (document.status === "indexed") outcomes.set(job.documentId, "already indexed")
          else return true
          return false
        })
        const step = (name: IndexingStep) =>
          Effect.map(repo.setStep(live, name), (current) => {
            live = live.filter((job) => current.has(job.documentId) || !outcomes.set(job.documentId, "superseded"))
          })

        yield* step("parsing")
        const texts = new Map(live.map((job) => [job.documentId, parseContent(found.get(job.documentId)!.content)]))
        yield* step("chunking")
        const chunks = new Map(
          live.map((job) => [
            job.documentId,
            chunkDocument({ title: found.get(job.documentId)!.title, text: texts.get(job.documentId)! }, chunkerOptions)
          ])
        )
        yield* step("embedding")
        // Without pgvector there is nowhere to keep vectors: keyword search needs only the chunks.
        const allChunks = live.flatMap((job) => chunks.get(job.documentId)!)
        const vectors = pgvector && allChunks.length > 0 ? yield* embedder.embed(allChunks.map((chunk) => chunk.contextualText)) : undefined
        let offset = 0
        const indexed = live.map((job): IndexedDocument => {
          const own = chunks.get(job.documentId)!
          offset += own.length
          return {
            ...job,
            chunks: own,
            pageStarts: found.get(job.documentId)!.page_starts,
            vectors: vectors?.slice(offset - own.length, offset)
          }
        })
        const stored = indexed.length === 0 ? new Set<string>() : yield* repo.replaceChunks(indexed, embedder.model)
        for (const job of live) outcomes.set(job.documentId, stored.has(job.documentId) ? "indexed" : "superseded")
        return outcomes
      })

    /**
     * One document alone, retried with backoff while the failure may pass; what still fails is
     * recorded as the document's reason.
     */
    const indexAlone = (job: DocumentRevision): Effect.Effect<IndexingOutcome> => {
      let attempts = 0
      return Effect.suspend(() => {
        attempts++
        return attempt([job])
      }).pipe(
        Effect.map((outcomes) => outcomes.get(job.documentId)!),
        Effect.retry({
          while: isTransient,
          times: options.retries,
          schedule: Schedule.exponential(options.retryBaseDelay).pipe(Schedule.jittered)
        }),
        Effect.tapError((error) =>
          Effect.logWarning("indexing failed").pipe(
            Effect.annotateLogs({ document_id: job.documentId, revision: job.revision, error: error.message })
          )
        ),
        Effect.catch((error) =>
          repo.fail(job.documentId, job.revision, describeFailure(error, attempts)).pipe(Effect.as("failed" as const))
        ),
        // Even the failure could not be written (the database is gone): a defect, so the cluster
        // restarts the entity with backoff and the message runs again.
        Effect.orDie
      )
    }

    /**
     * A batch in one attempt; if it fails, each of its documents again on its own, so that one
     * document the provider refuses fails alone and a passing outage is retried per document.
     */
    const indexBatch = (jobs: ReadonlyArray<Job>) =>
      Effect.gen(function* () {
        // A defect of the batch counts as a failure: each document then goes alone.
        const outcomes =
          jobs.length === 1
            ? Option.none()
            : Option.filter(Option.some(yield* Effect.exit(attempt(jobs))), Exit.isSuccess).pipe(Option.map((exit) => exit.value))
        for (const job of jobs) {
          yield* Deferred.complete(
            job.done,
            Option.match(outcomes, {
              onNone: () => indexAlone(job),
              onSome: (all) => Effect.succeed(all.get(job.documentId)!)
            })
          )
        }
      }).pipe(Effect.withSpan("IndexingPipeline.batch", { attributes: { "indexing.batch.documents": jobs.length } }))

    // BASALT_INDEXING_CONCURRENCY workers, each taking whatever is waiting, up to a batch: under
    // load batches fill up by themselves; a lone document goes at once. The embedder queues the
    // texts of all workers together, so while one worker is in its database steps the other's
    // texts keep the provider busy.
    yield* Effect.forkScoped(
      Effect.forEach(
        Array.from({ length: indexing.concurrency }),
        () => Effect.forever(Effect.flatMap(Queue.takeBetween(queue, 1, indexing.batchSize), indexBatch)),
        { concurrency: "unbounded", discard: true }
      )
    )

    const index = (documentId: string, revision: number): Effect.Effect<IndexingOutcome> => {
      if (!uuidPattern.test(documentId)) return Effect.succeed("not found")
      return Effect.gen(function* () {
        const done = yield* Deferred.make<IndexingOutcome>()
        yield* Queue.offer(queue, { documentId, revision, done })
        return yield* Deferred.await(done)
      }).pipe(
        Effect.tap((outcome) =>
          Effect.logInfo("indexing run finished").pipe(Effect.annotateLogs({ document_id: documentId, revision, outcome }))
        ),
        Effect.withSpan("IndexingPipeline.index", { attributes: { "document.id": documentId, "document.revision": revision } })
      )
    }

    return { index } as const
  })
}) {
  static readonly layer = Layer.effect(this, this.make).pipe(Layer.provide(IndexingRepo.layer))
}
