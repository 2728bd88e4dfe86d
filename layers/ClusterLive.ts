/**
 * The actor runtime (effect/cluster) over the app's database: every Basalt process is a runner,
 * at the address the others reach it by (BASALT_RUNNER_HOST and BASALT_RUNNER_PORT, by default
 * HOST and the port the server listens on), with the runner transport on the API's own server
 * (ClusterTransport). Runners register in Postgres, where the shards (300) are spread over the
 * live ones and held by locks, messages are stored (SqlMessageStorage) and runner health is
 * checked by pinging over the transport: a process that dies loses its locks with its
 * connections, is dropped once it stops answering or stops beating, and the living take its
 * shards; a process that joins is given its share.
 *
 * No request waits on another runner. A message for an entity (persisted, fire-and-forget) is
 * only stored where it is sent, in the sender's transaction when there is one (the outbox), and
 * `ClusterWake` then has every runner read its storage: on Postgres a NOTIFY, delivered on
 * commit, that each process LISTENs for; within a process, its own storage poll. A runner that
 * missed both still reads its storage every `entityMessagePollInterval`.
 *
 * The embedded database is one process by construction (its directory is locked): the same code
 * in its single-runner form, whose predecessors' rows are cleared at start.
 */
import { Context, Duration, Effect, Layer, Metric, Option, Schedule, Stream } from "effect"
import {
  Runners,
  RunnerAddress,
  RunnerHealth,
  Sharding,
  ShardingConfig,
  ShardId,
  Snowflake,
  SqlMessageStorage,
  SqlRunnerStorage
} from "effect/cluster"
import { Persisted } from "effect/cluster/ClusterSchema"
import { Digest } from "effect/crypto"
import { HttpServer } from "effect/http"
import * as NetAddress from "effect/net/NetAddress"
import { PgClient } from "@effect/sql-pg"
import { SqlClient } from "effect/sql"
import { networkInterfaces } from "node:os"
import { ClusterKey, ClusterTransportClientLive } from "../src/cluster/ClusterTransport.ts"
import { ClusterStateRepo } from "../src/cluster/ClusterStateRepo.ts"
import { ClusterStatus, messagesPending, shardsHeld } from "../src/cluster/ClusterStatus.ts"
import { ClusterWake } from "../src/cluster/ClusterWake.ts"
import { AppConfig, type AppConfigShape } from "../src/config/AppConfig.ts"
import { migrationLockKey } from "../src/database/Database.ts"
import { withoutStatementTimeout } from "./BoundedPgClient.ts"

const shardsPerGroup = 300
const shardGroup = "default"

/** A runner that stops beating for this long is taken for dead; its shards go to the living. */
const runnerExpiry = Duration.seconds(15)

const shardingConfig = {
  // Stored with every message: changing it would strand the messages of shards that no longer exist.
  shardsPerGroup,
  // The bound for a message whose wake was missed (the LISTEN connection was down, say).
  entityMessagePollInterval: "2 seconds",
  // One entity per document: let idle ones go soon.
  entityMaxIdleTime: "15 seconds",
  // A dead process's shards move within about these: its heartbeat expires, or a ping fails.
  shardLockRefreshInterval: "5 seconds",
  shardLockExpiration: runnerExpiry,
  runnerHealthCheckInterval: "5 seconds"
} as const

/**
 * On PGlite every connection is the same database session, so the advisory locks the rest of
 * Basalt takes (migrations, registration) look like shard locks to the cluster's advisory-lock
 * reader: there the shard locks are rows. Their refresh waits for that one session, behind every
 * other statement; under load it missed short bounds, the cluster took its locks for lost and
 * fenced the replies of work already done. One process holds the database, so the lease is long.
 */
const embeddedShardLocks = {
  shardLockDisableAdvisory: true,
  shardLockRefreshInterval: "30 seconds",
  shardLockExpiration: "2 minutes"
} as const

const isUnspecified = (host: string) => host === "" || host === "0.0.0.0" || host === "::" || host === "[::]"

/** This machine's first non-loopback IPv4 address: what others on its network reach it by. */
const machineAddress = (): string | undefined =>
  Object.values(networkInterfaces())
    .flatMap((addresses) => addresses ?? [])
    .find((address) => address.family === "IPv4" && !address.internal)?.address

/** Where the other processes reach this one: configured, else derived from where it listens. */
export const runnerAddressOf = (config: AppConfigShape, boundPort: number): RunnerAddress.RunnerAddress =>
  RunnerAddress.make(
    Option.getOrElse(config.cluster.runnerHost, () => (isUnspecified(config.host) ? (machineAddress() ?? "127.0.0.1") : config.host)),
    Option.getOrElse(config.cluster.runnerPort, () => boundPort)
  )

const isEmbedded = (config: AppConfigShape) => Option.isNone(config.database.url)

/**
 * Builds `layer` holding the migrations' advisory lock: the cluster creates its tables when its
 * storage layers are built, and processes starting together on one Postgres would race to
 * create them.
 */
export const underMigrationLock = <A, E, R>(layer: Layer.Layer<A, E, R>) =>
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

/** This runner's address and settings. */
const ShardingConfigLive = Layer.unwrap(
  Effect.gen(function* () {
    const config = yield* AppConfig
    const { address } = yield* HttpServer.HttpServer
    const runnerAddress = runnerAddressOf(config, NetAddress.isInetAddress(address) ? address.port : config.port)
    return ShardingConfig.layer({
      ...shardingConfig,
      ...(isEmbedded(config) ? embeddedShardLocks : {}),
      runnerAddress: Option.some(runnerAddress)
    })
  })
)

/**
 * The runner transport's client, except that a persisted fire-and-forget message for another
 * runner is only stored (in the sender's transaction, when there is one), not sent: the other
 * runner could not read it before the commit anyway, and the request would wait on it. It learns
 * of the message from `ClusterWake`.
 */
const OutboxRunnersLive = Layer.effect(
  Runners.Runners,
  Effect.map(Runners.makeRpc, (runners) =>
    Runners.Runners.of({
      ...runners,
      notify: (options) =>
        options.discard && options.message._tag === "OutgoingRequest" && options.message.rpc.annotations.pipe(Context.get(Persisted))
          ? runners.notify({ ...options, address: Option.none() })
          : runners.notify(options)
    })
  )
).pipe(Layer.provide(Snowflake.layerGenerator))

/** The embedded database's predecessors, cleared before this runner registers. */
const ForgetPredecessorsLive = Layer.effectDiscard(
  Effect.gen(function* () {
    const config = yield* AppConfig
    const sharding = yield* ShardingConfig.ShardingConfig
    if (!isEmbedded(config) || Option.isNone(sharding.runnerAddress)) return
    const { host, port } = sharding.runnerAddress.value
    yield* Effect.orDie(ClusterStateRepo.use((repo) => repo.forgetRunnersOtherThan(`${host}:${port}`)))
  })
)

const StorageLive = Layer.mergeAll(
  SqlMessageStorage.layer,
  ForgetPredecessorsLive.pipe(Layer.provideMerge(Layer.orDie(SqlRunnerStorage.layer)))
)

const wakeChannel = "basalt_cluster_messages"

/**
 * Every runner reads its storage now. On Postgres, a NOTIFY: inside a transaction it is delivered
 * on commit, and not at all on rollback, like the messages it announces.
 */
const ClusterWakeLive = Layer.effect(
  ClusterWake,
  Effect.gen(function* () {
    const config = yield* AppConfig
    const sharding = yield* Sharding.Sharding
    const sql = yield* SqlClient.SqlClient
    if (isEmbedded(config)) return ClusterWake.of({ wake: sharding.pollStorage })
    const notify = sql`SELECT pg_notify(${wakeChannel}, '')`.pipe(
      Effect.asVoid,
      // Only a wake: the runners read their storage at the next poll anyway.
      Effect.catchTag("SqlError", (error) =>
        Effect.logWarning("cluster: could not wake the runners; they read their storage at their next poll").pipe(
          Effect.annotateLogs("reason", error.message)
        )
      )
    )
    return ClusterWake.of({ wake: Effect.andThen(sharding.pollStorage, notify) })
  })
)

/** Reads this runner's storage on every wake from another process (Postgres's LISTEN). */
const WakeListenerLive = Layer.effectDiscard(
  Effect.gen(function* () {
    const config = yield* AppConfig
    if (isEmbedded(config)) return
    const pg = yield* PgClient.PgClient
    const sharding = yield* Sharding.Sharding
    const listen = Effect.scoped(
      Effect.gen(function* () {
        const notifications = yield* pg.listen(wakeChannel)
        // Wakes sent while no connection listened are lost: read once on (re)connecting.
        yield* sharding.pollStorage
        yield* Stream.fromQueue(notifications).pipe(Stream.runForEach(() => sharding.pollStorage))
      })
    )
    yield* listen.pipe(
      // One line, without the stack: during a database outage this says what happens, the outage log the rest.
      Effect.tapError((error) =>
        Effect.logWarning("cluster: the wake listener lost its database connection; listening again in 2 s").pipe(
          Effect.annotateLogs("reason", error.message)
        )
      ),
      Effect.retry(Schedule.spaced("2 seconds")),
      Effect.forkScoped
    )
  })
)

const shardIds = Array.from({ length: shardsPerGroup }, (_, n) => ShardId.make(shardGroup, n + 1))

const ClusterStatusLive = Layer.effect(
  ClusterStatus,
  Effect.gen(function* () {
    const sharding = yield* Sharding.Sharding
    const config = yield* ShardingConfig.ShardingConfig
    const repo = yield* ClusterStateRepo
    const runner = Option.match(config.runnerAddress, { onNone: () => "none", onSome: ({ host, port }) => `${host}:${port}` })
    const expirySeconds = Duration.toSeconds(Duration.fromInputUnsafe(config.shardLockExpiration))
    const countShards = Effect.sync(() => shardIds.filter((shard) => sharding.hasShardId(shard)).length)

    // Shards move when a runner joins or leaves: say so, and export what is held and waiting.
    let logged = -1
    yield* countShards.pipe(
      Effect.tap((shards) => Metric.update(shardsHeld, shards)),
      Effect.tap((shards) => {
        if (shards === logged) return Effect.void
        const was = logged
        logged = shards
        return Effect.logInfo(`cluster: runner ${runner} holds ${shards} of ${shardsPerGroup} shards`).pipe(
          Effect.annotateLogs(was < 0 ? { runner } : { runner, shards_before: was })
        )
      }),
      Effect.repeat(Schedule.spaced("2 seconds")),
      Effect.forkScoped
    )
    yield* repo.pendingMessages.pipe(
      Effect.tap((pending) => Metric.update(messagesPending, pending)),
      Effect.ignore,
      Effect.repeat(Schedule.spaced("15 seconds")),
      // A gauge's upkeep, not work anyone traces: an idle server exports no spans.
      Effect.withTracerEnabled(false),
      Effect.forkScoped
    )

    return ClusterStatus.of({
      runner,
      state: Effect.map(Effect.zip(countShards, repo.liveRunners(expirySeconds)), ([shards, runners]) => ({ runner, shards, runners }))
    })
  })
)

/** Sharding with its storage, its runner transport's client and its health checks. */
const ShardingLive = underMigrationLock(
  Sharding.layer.pipe(
    Layer.provide(RunnerHealth.layerPing),
    Layer.provideMerge(OutboxRunnersLive.pipe(Layer.provide(ClusterTransportClientLive))),
    Layer.provideMerge(StorageLive)
  )
)

/**
 * The cluster: Sharding (with MessageStorage, for the transport's route) and ClusterWake and
 * ClusterStatus over it. The route itself is served with the API (ClusterTransportRouteLive).
 */
export const ClusterLive = Layer.mergeAll(ClusterWakeLive, ClusterStatusLive, WakeListenerLive).pipe(
  Layer.provideMerge(ShardingLive),
  Layer.provide(ClusterStateRepo.layer),
  Layer.provideMerge(ClusterKey.layer),
  Layer.provideMerge(ShardingConfigLive),
  // Hashes message keys too long for their column (never Basalt's: a document id and a revision).
  Layer.provide(Digest.layerWebCrypto)
)
