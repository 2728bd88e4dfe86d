/**
 * What Basalt reads of the cluster's own tables (SqlRunnerStorage's `cluster_runners` and
 * SqlMessageStorage's `cluster_messages`), for readiness, metrics and the embedded start.
 */
import { Context, Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"

const Count = Schema.Struct({ n: Schema.Int })
const decodeCount = Schema.decodeUnknownEffect(Count)

export class ClusterStateRepo extends Context.Service<ClusterStateRepo>()("basalt/ClusterStateRepo", {
  make: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const count = (rows: ReadonlyArray<unknown>) => Effect.map(Effect.orDie(decodeCount(rows[0])), (row) => row.n)

    /** Runners registered and alive: healthy, with a heartbeat within `expirySeconds`. */
    const liveRunners = (expirySeconds: number) =>
      Effect.flatMap(
        sql`
          SELECT count(*)::int AS n FROM cluster_runners
          WHERE healthy AND last_heartbeat > now()::timestamp - make_interval(secs => ${expirySeconds})`,
        count
      )

    /** Messages stored and not yet processed, over every shard. */
    const pendingMessages = Effect.flatMap(sql`SELECT count(*)::int AS n FROM cluster_messages WHERE NOT processed`, count)

    /**
     * Forgets every runner but `address`, and the shard locks they held. Only for a database one
     * process holds by construction (the embedded one, its directory locked): any other runner
     * there is a predecessor that died without unregistering, whose table locks would otherwise
     * keep its shards until they expire.
     */
    const forgetRunnersOtherThan = (address: string) =>
      sql.withTransaction(
        Effect.andThen(
          sql`DELETE FROM cluster_locks WHERE address <> ${address}`,
          sql`DELETE FROM cluster_runners WHERE address <> ${address}`
        )
      )

    return { liveRunners, pendingMessages, forgetRunnersOtherThan } as const
  })
}) {
  static readonly layer = Layer.effect(this, this.make)
}
