/**
 * Background indexing on the actor runtime (@effect/cluster): the runner, the `DocumentIndexing`
 * entity, the DocumentIndexer that ingestion calls, and the embedding index's upkeep.
 *
 * The runner is SingleRunner's composition (SQL message storage and SQL shard locks on the app's
 * own database; no runner-to-runner transport), with its configuration given here instead of
 * read from the environment: `ShardingConfig.layerFromEnv` would take Basalt's own PORT and HOST
 * as the runner's address. Every Basalt process is the same runner, `basalt:0`: nothing is ever
 * sent to an address, and a restarted process (any port, any host) is the runner its
 * predecessor was, so no shard stays assigned to a process that died. Which process works on a
 * shard is decided by its lock (a Postgres advisory lock), so two processes on one database never
 * index the same document at once; the other takes over when the holder goes away.
 */
import { Duration, Effect, Layer, Option } from "effect"
import {
  RunnerAddress,
  RunnerHealth,
  Runners,
  Sharding,
  ShardingConfig,
  Singleton,
  SqlMessageStorage,
  SqlRunnerStorage
} from "effect/cluster"
import { Digest } from "effect/crypto"
import { SqlClient } from "effect/sql"
import { cleanUpEvery, olderThan } from "../src/database/Cleanup.ts"
import { DatabaseInfo, migrationLockKey } from "../src/database/Database.ts"
import { ClusterMessagesRepo } from "../src/indexing/ClusterMessagesRepo.ts"
import { DocumentIndexer, type IndexingRequest } from "../src/indexing/DocumentIndexer.ts"
import { DocumentIndexing } from "../src/indexing/DocumentIndexing.ts"
import { EmbeddingIndex } from "../src/indexing/EmbeddingIndex.ts"
import { withoutStatementTimeout } from "./BoundedPgClient.ts"
import { IndexingPipeline } from "../src/indexing/IndexingPipeline.ts"

export const shardingConfig: Partial<ShardingConfig.ShardingConfig["Service"]> = {
  runnerAddress: Option.some(RunnerAddress.make("basalt", 0)),
  // Stored with every message: changing it would strand the messages of shards that no longer exist.
  shardsPerGroup: 300,
  // How often storage is read even without a notification. Ingestion wakes the reader once its
  // transaction has committed; this is the bound for anything stored without that.
  entityMessagePollInterval: "2 seconds",
  // One entity per document: let idle ones go soon.
  entityMaxIdleTime: "15 seconds"
}

/**
 * Builds `layer` holding the migrations' advisory lock: the cluster creates its tables when its
 * storage layers are built, and processes starting together on one Postgres would race to
 * create them (and the vector index).
 */
const underMigrationLock = <A, E, R>(layer: Layer.Layer<A, E, R>) =>
  Layer.effectContext(
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const layerScope = yield* Effect.scope
      // The lock's connection and the lock itself last only as long as the build.
      return yield* Effect.scoped(
        Effect.gen(function* () {
          const connection = yield* Effect.orDie(sql.reserve)
          // Another process may hold it for as long as its migrations take.
          const lock = withoutStatementTimeout(connection.execute("SELECT pg_advisory_lock($1)", [migrationLockKey], undefined))
          yield* Effect.acquireRelease(Effect.orDie(lock), () =>
            Effect.ignore(connection.execute("SELECT pg_advisory_unlock($1)", [migrationLockKey], undefined))
          )
          return yield* Layer.buildWithScope(layer, layerScope)
        })
      )
    })
  )

/**
 * On PGlite every connection is the same database session, so the advisory locks the rest of
 * Basalt takes (migrations, registration) look like shard locks to the cluster's advisory-lock
 * reader, which then fails on lock numbers it does not know. There the shard locks are rows
 * instead (the cluster's table-based locks); on Postgres, advisory locks as SingleRunner uses.
 *
 * The lock refresh also waits for that one session, behind every other statement and open
 * transaction: under load it missed the default 10 s bound, the cluster took its locks for lost,
 * and fenced the replies of work already done (documents indexed, their messages left for replay).
 * On PGlite the locks guard nothing a longer lease would endanger (one process per data directory,
 * and every runner is `basalt:0`), so the lease is long.
 */
const pgliteShardLocks = {
  shardLockDisableAdvisory: true,
  shardLockRefreshInterval: "30 seconds",
  shardLockExpiration: "2 minutes"
} as const

const shardingConfigLive = Layer.unwrap(
  Effect.map(DatabaseInfo, (database) =>
    ShardingConfig.layer({ ...shardingConfig, ...(database.backend === "pglite" ? pgliteShardLocks : {}) })
  )
)

/** SingleRunner.layer, with `shardingConfig` instead of the environment's. */
export const ClusterLive = underMigrationLock(
  Sharding.layer.pipe(
    Layer.provideMerge(Runners.layerNoop),
    Layer.provideMerge(SqlMessageStorage.layer),
    Layer.provide([Layer.orDie(SqlRunnerStorage.layer), RunnerHealth.layerNoop]),
    // Hashes message keys too long for their column (never Basalt's: a document id and a revision).
    Layer.provide([shardingConfigLive, Digest.layerWebCrypto])
  )
)

const DocumentIndexingLive = DocumentIndexing.toLayer(
  Effect.gen(function* () {
    const pipeline = yield* IndexingPipeline
    return DocumentIndexing.of({
      // The outcome is the document's status; the message itself always completes.
      Index: (envelope) => Effect.asVoid(pipeline.index(envelope.address.entityId, envelope.payload.revision))
    })
  })
)

/**
 * Durable fire-and-forget: a message is stored (by the SqlMessageStorage, on the app's SqlClient,
 * so inside the caller's transaction when there is one) before `submitAll` returns; indexing
 * happens later. The storage loop reads committed messages only, on its own connection: an entity
 * never sees a message before the document row it names is committed.
 */
export const DocumentIndexerLive = Layer.effect(
  DocumentIndexer,
  Effect.gen(function* () {
    const makeClient = yield* DocumentIndexing.client
    const sharding = yield* Sharding.Sharding
    const store = ({ documentId, revision }: IndexingRequest) =>
      makeClient(documentId)
        .Index({ revision }, { discard: true })
        .pipe(
          Effect.orDie,
          Effect.withSpan("DocumentIndexer.submit", { attributes: { "document.id": documentId, "document.revision": revision } })
        )
    return DocumentIndexer.of({
      // One after the other: two revisions of one document are stored (and so handled) in order.
      submitAll: (requests) => Effect.forEach(requests, store, { discard: true }),
      wake: sharding.pollStorage,
      submit: (request) => Effect.andThen(store(request), sharding.pollStorage)
    })
  })
)

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
  Layer.provide(ClusterLive)
)
