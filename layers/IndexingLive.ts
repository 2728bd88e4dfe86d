/**
 * Background indexing on the actor runtime (ClusterLive): the `DocumentIndexing` entity, the
 * DocumentIndexer that ingestion calls, and the upkeep of the embedding index and of the
 * cluster's processed messages.
 */
import { Duration, Effect, Layer } from "effect"
import { Singleton } from "effect/cluster"
import { cleanUpEvery, olderThan } from "../src/database/Cleanup.ts"
import { ClusterMessagesRepo } from "../src/indexing/ClusterMessagesRepo.ts"
import { DocumentIndexerLive } from "../src/indexing/DocumentIndexer.ts"
import { DocumentIndexingLive } from "../src/indexing/DocumentIndexing.ts"
import { EmbeddingIndex } from "../src/indexing/EmbeddingIndex.ts"
import { IndexingPipeline } from "../src/indexing/IndexingPipeline.ts"
import { withoutStatementTimeout } from "./BoundedPgClient.ts"
import { ClusterLive, underMigrationLock } from "./ClusterLive.ts"

/** Records the model and creates its vector index before any document is indexed with it. */
// Building the index over existing vectors may rightly take long.
const PrepareEmbeddingIndex = underMigrationLock(Layer.effectDiscard(withoutStatementTimeout(EmbeddingIndex.use((index) => index.prepare))))

/** One re-embedding at a time across processes: a singleton runs where its shard is held. */
const ReembedLive = Singleton.make(
  "basalt/Reembed",
  EmbeddingIndex.use((index) => index.reembed)
)

/**
 * How long a processed message is kept. It coalesces a repeated submission of its revision while
 * it exists; after that a repeat is a second, cheap run that ends "already indexed". An hour is
 * far beyond any retry or reply anyone waits for, and short enough that the tables stay small.
 */
export const processedMessageRetention = Duration.hours(1)
/** How often each process deletes the processed messages past their retention. */
const messageCleanupInterval = Duration.minutes(1)

/** Keeps `cluster_messages` and `cluster_replies` from growing by a row per indexing request forever. */
const ClusterMessagesCleanupLive = Layer.effectDiscard(
  Effect.gen(function* () {
    const repo = yield* ClusterMessagesRepo
    yield* cleanUpEvery(messageCleanupInterval, "processed indexing messages", olderThan(processedMessageRetention, repo.deleteProcessed))
  })
).pipe(Layer.provide(ClusterMessagesRepo.layer))

export const IndexingLive = Layer.mergeAll(DocumentIndexerLive, DocumentIndexingLive, ReembedLive, ClusterMessagesCleanupLive).pipe(
  Layer.provide(PrepareEmbeddingIndex),
  Layer.provide([IndexingPipeline.layer, EmbeddingIndex.layer]),
  Layer.provideMerge(ClusterLive)
)
