/**
 * Who may read a document, as one SQL condition that every read, list and search includes (so
 * that a limit is never applied before the filter): the owner, members of any collection the
 * document is in, anyone for a public document, and admins.
 */
import type { SqlClient } from "@effect/sql"
import type { Caller } from "../accounts/SessionsRepo.ts"

/** `documentAlias`: the alias of `documents` in the statement. */
export const visibleTo = (sql: SqlClient.SqlClient, caller: Caller, documentAlias = "d") => {
  if (caller.role === "admin") return sql`true`
  const d = sql(documentAlias)
  return sql`(${d}.owner_id = ${caller.id} OR ${d}.visibility = 'public' OR EXISTS (
    SELECT 1 FROM document_collections dc
    JOIN collection_members cm ON cm.collection_id = dc.collection_id
    WHERE dc.document_id = ${d}.id AND cm.user_id = ${caller.id}))`
}
