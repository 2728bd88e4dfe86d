/** Liveness and readiness, as the contract names them. */
import { Schema } from "effect"
import { contractBody } from "../contract/Contract.ts"

export const Health = contractBody("Health", Schema.Struct({ status: Schema.Literal("ok") }))

export const DatabaseBackend = Schema.Literals(["pglite", "postgres"])
export type DatabaseBackend = typeof DatabaseBackend.Type

export const DatabaseStatus = contractBody(
  "DatabaseStatus",
  Schema.Struct({
    backend: DatabaseBackend,
    migration_version: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
    pgvector: Schema.Boolean,
    latency_ms: Schema.Number.check(Schema.isGreaterThanOrEqualTo(0))
  })
)

export const ClusterStatus = contractBody(
  "ClusterStatus",
  Schema.Struct({
    runner: Schema.String,
    shards: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 300 })),
    runners: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
  })
)

export const Readiness = contractBody(
  "Readiness",
  Schema.Struct({
    status: Schema.Literal("ready"),
    database: DatabaseStatus,
    search_mode: Schema.Literals(["hybrid", "lexical_only"]),
    cluster: ClusterStatus
  })
)
export type Readiness = typeof Readiness.Type
