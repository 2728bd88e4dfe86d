import { Effect, Layer } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import type { SqlError } from "effect/sql"
import { BasaltApi } from "../Api.ts"
import { ClusterStatus } from "../cluster/ClusterStatus.ts"
import { DatabaseInfo } from "../database/Database.ts"
import { databaseOutageOf, reportOutage } from "../database/DatabaseOutage.ts"
import { abandonAfter } from "../database/Deadline.ts"
import { NotReady } from "../http/ApiError.ts"
import { ServerLifecycle } from "../http/ServerLifecycle.ts"
import { HealthRepo } from "./HealthRepo.ts"

const readinessTimeout = "2 seconds"

export const HealthHttpLive = HttpApiBuilder.group(BasaltApi, "operations", (handlers) =>
  Effect.gen(function* () {
    const repo = yield* HealthRepo
    const database = yield* DatabaseInfo
    const lifecycle = yield* ServerLifecycle

    const cluster = yield* ClusterStatus

    const notReady = (path: string, message: string) => new NotReady({ message: "The server is not ready", details: [{ path, message }] })

    /** One readiness query, bounded; a failure is `path` not ready, in words. */
    const probe =
      (path: string, subject: string) =>
      <A>(query: Effect.Effect<A, SqlError.SqlError>) =>
        query.pipe(
          // At the deadline, without waiting for the query to be stopped: a frozen database
          // would hold that up too.
          abandonAfter(readinessTimeout, () => notReady(path, `${subject} did not answer within ${readinessTimeout}`)),
          Effect.catchTag("SqlError", (error) => {
            const outage = databaseOutageOf(error)
            // An outage is logged once for all the probes that meet it, not once per probe.
            return outage === undefined
              ? Effect.andThen(Effect.logWarning("readiness check failed", error), notReady(path, `${subject} is unreachable`))
              : Effect.andThen(reportOutage(outage), notReady(path, `${subject} is unavailable: ${outage.reason}`))
          })
        )

    return handlers
      .handle("getHealth", () => Effect.succeed({ status: "ok" as const }))
      .handle("getReadiness", () =>
        Effect.gen(function* () {
          if (lifecycle.isDraining()) return yield* notReady("server", "The server is shutting down")
          const started = performance.now()
          const state = yield* repo.state.pipe(Effect.catchTag("SchemaError", Effect.die), probe("database", "The database"))
          const latency = performance.now() - started
          const clusterState = yield* cluster.state.pipe(probe("cluster", "The cluster's storage"))
          return {
            status: "ready" as const,
            database: {
              backend: database.backend,
              migration_version: state.migration_version,
              pgvector: state.pgvector,
              latency_ms: Math.round(latency * 100) / 100
            },
            search_mode: state.pgvector ? ("hybrid" as const) : ("lexical_only" as const),
            cluster: clusterState
          }
        })
      )
  })
).pipe(Layer.provide(HealthRepo.layer))
