/**
 * Who may read a document, as one SQL condition that every read, list and search includes (so
 * that a limit is never applied before the filter): the owner, members of any collection the
 * document is in, anyone for a public document, and admins.
 */
import type { SqlClient } from "effect/sql"
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

/**
 * The same rule for a deleted document (a `document_deletions` row, alias `deletionAlias`): its
 * owner, visibility and collections as they were at deletion, and the collections' members now
 * (someone removed from a collection since is no longer told about its documents).
 */
export const deletionVisibleTo = (sql: SqlClient.SqlClient, caller: Caller, deletionAlias = "t") => {
  if (caller.role === "admin") return sql`true`
  const t = sql(deletionAlias)
  return sql`(${t}.owner_id = ${caller.id} OR ${t}.visibility = 'public' OR EXISTS (
    SELECT 1 FROM collection_members cm
    WHERE cm.collection_id = ANY(${t}.collection_ids) AND cm.user_id = ${caller.id}))`
}

/*
 * Keyword search checks the same rule over the copy of a document's access that it keeps on each
 * posting (migration 0013): `basalt_posting_visible` in migration 0017, called by the keyword
 * search function there, so that the rule is inside the impact-ordered index scan with no join.
 */
