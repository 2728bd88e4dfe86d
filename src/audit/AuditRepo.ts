/**
 * Writes and reads the audit log. `record` takes the client address from the request being
 * served (through trusted proxies, see ClientIp), so handlers name only what happened.
 */
import { Context, Effect, Layer, Option } from "effect"
import { HttpServerRequest } from "effect/http"
import { SqlClient } from "effect/sql"
import { AppConfig } from "../config/AppConfig.ts"
import { clientIpOf, formatIp } from "../http/ClientIp.ts"
import type { AuditAction } from "./Audit.ts"

export interface AuditEntry {
  readonly action: AuditAction
  readonly actorId: string | null
  readonly subjectId: string | null
  readonly details?: Record<string, unknown>
}

interface AuditRow {
  readonly id: string
  readonly at: Date
  readonly action: AuditAction
  readonly actor_id: string | null
  readonly subject_id: string | null
  readonly client_ip: string | null
  readonly details: Record<string, unknown>
}

export class AuditRepo extends Context.Service<AuditRepo>()("basalt/AuditRepo", {
  make: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const { trustedProxies } = yield* AppConfig

    const record = (entry: AuditEntry) =>
      Effect.gen(function* () {
        const request = yield* Effect.serviceOption(HttpServerRequest.HttpServerRequest)
        const client = Option.flatMapNullishOr(request, (r) => clientIpOf(r, trustedProxies))
        const clientIp = Option.getOrNull(Option.map(client, formatIp))
        yield* sql`
          INSERT INTO audit_events (action, actor_id, subject_id, client_ip, details)
          VALUES (${entry.action}, ${entry.actorId}, ${entry.subjectId}, ${clientIp}, ${JSON.stringify(entry.details ?? {})}::jsonb)`
      }).pipe(Effect.orDie)

    const list = (filter: {
      readonly action: AuditAction | undefined
      readonly actorId: string | undefined
      readonly since: Date | undefined
      readonly until: Date | undefined
      readonly beforeId: string | undefined
      readonly limit: number
    }) =>
      sql<AuditRow>`
        SELECT id::text AS id, at, action, actor_id, subject_id, client_ip, details
        FROM audit_events
        WHERE ${filter.action === undefined ? sql`true` : sql`action = ${filter.action}`}
          AND ${filter.actorId === undefined ? sql`true` : sql`actor_id = ${filter.actorId}`}
          AND ${filter.since === undefined ? sql`true` : sql`at >= ${filter.since}`}
          AND ${filter.until === undefined ? sql`true` : sql`at < ${filter.until}`}
          AND ${filter.beforeId === undefined ? sql`true` : sql`id < ${filter.beforeId}::bigint`}
        ORDER BY id DESC
        LIMIT ${filter.limit + 1}`

    return { record, list } as const
  })
}) {
  static readonly layer = Layer.effect(this, this.make)
}
