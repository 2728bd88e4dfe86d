/**
 * This process as a cluster runner, as readiness reports it and metrics export it: its address,
 * the shards it holds, how many runners are alive, and the messages waiting over all shards.
 */
import { Context, type Effect, Metric } from "effect"
import type { SqlError } from "effect/sql"

export interface ClusterState {
  /** `host:port`, where the other processes reach this one. */
  readonly runner: string
  readonly shards: number
  /** Runners alive (this one included), as the cluster's storage records them. */
  readonly runners: number
}

export class ClusterStatus extends Context.Service<
  ClusterStatus,
  {
    readonly runner: string
    /** Reads the cluster's storage: fails when it is unreachable. */
    readonly state: Effect.Effect<ClusterState, SqlError.SqlError>
  }
>()("basalt/ClusterStatus") {}

export const shardsHeld = Metric.gauge("basalt.cluster.shards", {
  description: "Shards this process holds as a cluster runner (of 300)"
})

export const messagesPending = Metric.gauge("basalt.cluster.messages.pending", {
  description: "Cluster messages stored and not yet processed, over all shards (background work waiting)"
})
