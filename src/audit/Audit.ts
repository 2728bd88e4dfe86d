/** The audit log as the contract names it. */
import { Schema } from "effect"
import { contractBody } from "../contract/Contract.ts"
import { Text } from "../contract/Text.ts"
import { DateTime, QueryInt } from "../contract/Formats.ts"
import { Uuid } from "../contract/Uuid.ts"

export const AuditAction = contractBody(
  "AuditAction",
  Schema.Literals([
    "sign_in_succeeded",
    "sign_in_failed",
    "user_created",
    "role_changed",
    "user_deactivated",
    "user_reactivated",
    "password_changed",
    "api_key_created",
    "api_key_revoked",
    "collection_member_set",
    "collection_member_not_found"
  ])
)
export type AuditAction = typeof AuditAction.Type

export const AuditEvent = contractBody(
  "AuditEvent",
  Schema.Struct({
    id: Schema.String,
    at: Schema.DateFromString,
    action: AuditAction,
    actor_id: Schema.NullOr(Schema.String),
    subject_id: Schema.NullOr(Schema.String),
    client_ip: Schema.NullOr(Schema.String),
    details: Schema.Record(Schema.String, Schema.Unknown)
  })
)

export const AuditPage = contractBody(
  "AuditPage",
  Schema.Struct({ items: Schema.Array(AuditEvent), next_cursor: Schema.NullOr(Schema.String) })
)

export const AuditQuery = Schema.Struct({
  action: Schema.optional(AuditAction),
  actor_id: Schema.optional(Uuid),
  since: Schema.optional(DateTime),
  until: Schema.optional(DateTime),
  limit: Schema.optional(QueryInt.check(Schema.isBetween({ minimum: 1, maximum: 100 }))),
  cursor: Schema.optional(Text({ maxLength: 200 }))
})
