/**
 * Documents in SQL. Every read goes through `visibleTo` in its WHERE clause, so a limit is never
 * applied before the visibility filter; `can_change` is computed in the same statement.
 */
import { timeOrderedUuid } from "../database/TimeOrderedUuid.ts"
import { Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { deleteInBatches } from "../database/Cleanup.ts"
import type { Caller } from "../accounts/SessionsRepo.ts"
import type { Document, DocumentListQuery, DocumentStatus, DocumentVisibility } from "./Documents.ts"
import { exactTime, type PagePosition } from "../http/PageCursor.ts"
import { deletionVisibleTo, visibleTo } from "./Visibility.ts"

// Rows deleted per statement when pruning: a backlog is cleared in short statements, not one long one.
const cleanupBatch = 5_000

export interface DocumentRow extends Omit<Document, "collection_ids"> {
  readonly collection_ids: ReadonlyArray<string>
  readonly can_change: boolean
  readonly updated_at_exact: string
}

export interface ChunkRow {
  readonly id: string
  readonly ordinal: number
  readonly content: string
  readonly heading_path: ReadonlyArray<string>
  readonly start_offset: number
  readonly end_offset: number
  readonly token_count: number
  readonly first_page: number | null
  readonly last_page: number | null
}

/** A change the event stream reports: a status change, or the document's deletion. */
export type DocumentChangeRow = {
  readonly document_id: string
  readonly revision: number
  readonly changed_at: Date
  readonly changed_at_exact: string
} & (
  | { readonly kind: "status"; readonly status: DocumentStatus; readonly error: string | null; readonly chunk_count: number }
  | { readonly kind: "deleted"; readonly status: null; readonly error: null; readonly chunk_count: null }
)

export interface ProgressRow extends Record<DocumentStatus, number> {
  readonly finished_in_window: number
  /** From the first document finished in the window to now; null when none did. */
  readonly finished_over_seconds: number | null
  readonly as_of: Date
}

/** What a create or upsert stores; `undefined` keeps a stored document's value. */
export interface DocumentFields {
  readonly title: string
  readonly content: string
  /** Where each page begins in `content`; undefined when the source has no pages. */
  readonly pageStarts: ReadonlyArray<number> | undefined
  readonly contentHash: string
  readonly source: string
  readonly externalId: string | undefined
  readonly url: string | undefined
  readonly metadata: Readonly<Record<string, unknown>> | undefined
  readonly tags: ReadonlyArray<string> | undefined
  readonly visibility: DocumentVisibility | undefined
}

/** The outcome of storing a document: whether it must be (re-)indexed, at which revision. */
export interface Stored {
  readonly id: string
  readonly revision: number
  readonly reindex: boolean
  readonly created: boolean
}

export class DocumentsRepo extends Context.Service<DocumentsRepo>()("basalt/DocumentsRepo", {
  make: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient

    /** Owner, editor or owner of one of its collections, or admin. */
    const canChange = (caller: Caller) =>
      caller.role === "admin"
        ? sql`true`
        : sql`(d.owner_id = ${caller.id} OR EXISTS (
        SELECT 1 FROM document_collections dc
        JOIN collection_members cm ON cm.collection_id = dc.collection_id
        WHERE dc.document_id = d.id AND cm.user_id = ${caller.id} AND cm.role IN ('owner', 'editor')))`

    // Only the collections the caller may see are named.
    const columns = (caller: Caller) => sql`
      d.id, d.owner_id, d.source, d.external_id, d.url, d.title, d.metadata, d.tags, d.visibility, d.status,
      d.error, d.chunk_count, d.revision, d.content_hash, octet_length(d.content) AS content_length,
      d.created_at, d.updated_at, d.status_changed_at, d.indexed_at,
      ARRAY(
        SELECT dc.collection_id::text FROM document_collections dc
        WHERE dc.document_id = d.id AND ${
          caller.role === "admin"
            ? sql`true`
            : sql`EXISTS (
          SELECT 1 FROM collection_members cm WHERE cm.collection_id = dc.collection_id AND cm.user_id = ${caller.id})`
        }
        ORDER BY dc.collection_id
      ) AS collection_ids,
      ${canChange(caller)} AS can_change,
      ${sql.literal(exactTime("d.updated_at"))} AS updated_at_exact`

    /** The columns of `itemRecord` in `jsonb_to_recordset`. */
    const recordColumns = sql.literal(
      "source text, external_id text, url text, title text, content text, page_starts integer[], content_hash text, metadata jsonb, tags text[], visibility text"
    )

    const find = (caller: Caller, documentId: string) =>
      Effect.map(
        sql<DocumentRow>`SELECT ${columns(caller)} FROM documents d WHERE d.id = ${documentId} AND ${visibleTo(sql, caller, "d")}`,
        (rows) => rows[0]
      )

    /** Several documents in one statement, by id; those the caller may not see are missing. */
    const findMany = (caller: Caller, documentIds: ReadonlyArray<string>) =>
      Effect.map(
        sql<DocumentRow>`
          SELECT ${columns(caller)} FROM documents d
          WHERE d.id IN (SELECT jsonb_array_elements_text(${JSON.stringify(documentIds)}::jsonb)::uuid) AND ${visibleTo(sql, caller, "d")}`,
        (rows) => new Map(rows.map((row) => [row.id, row]))
      )

    const filters = (caller: Caller, query: DocumentListQuery) =>
      sql.and([
        visibleTo(sql, caller, "d"),
        query.sources === undefined ? sql`true` : sql`d.source = ANY(${toTextArray(query.sources)}::text[])`,
        query.tags === undefined ? sql`true` : sql`d.tags && ${toTextArray(query.tags)}::text[]`,
        query.status === undefined ? sql`true` : sql`d.status = ${query.status}`,
        query.collection_ids === undefined
          ? sql`true`
          : sql`EXISTS (SELECT 1 FROM document_collections dc
              WHERE dc.document_id = d.id AND dc.collection_id = ANY(${toTextArray(query.collection_ids)}::uuid[]))`,
        query.updated_after === undefined ? sql`true` : sql`d.updated_at >= ${query.updated_after}`,
        query.updated_before === undefined ? sql`true` : sql`d.updated_at < ${query.updated_before}`
      ])

    const list = (caller: Caller, query: DocumentListQuery, limit: number, after: PagePosition | undefined) =>
      Effect.all(
        {
          rows: sql<DocumentRow>`
          SELECT ${columns(caller)} FROM documents d
          WHERE ${filters(caller, query)}
            AND ${after === undefined ? sql`true` : sql`(d.updated_at, d.id) < (${after.at}::timestamptz, ${after.id}::uuid)`}
          ORDER BY d.updated_at DESC, d.id DESC
          LIMIT ${limit + 1}`,
          total: Effect.map(
            sql<{ total: number }>`SELECT count(*)::int AS total FROM documents d WHERE ${filters(caller, query)}`,
            ([row]) => row?.total ?? 0
          )
        },
        { concurrency: 2 }
      )

    /**
     * The matching documents the caller may see, counted by status, and those that finished
     * (indexed or failed) in the last `windowSeconds`: how many, and how long ago the first did.
     */
    const progress = (caller: Caller, query: DocumentListQuery, windowSeconds: number) =>
      Effect.map(
        sql<ProgressRow>`
          SELECT
            count(*) FILTER (WHERE d.status = 'queued')::int AS queued,
            count(*) FILTER (WHERE d.status = 'parsing')::int AS parsing,
            count(*) FILTER (WHERE d.status = 'chunking')::int AS chunking,
            count(*) FILTER (WHERE d.status = 'embedding')::int AS embedding,
            count(*) FILTER (WHERE d.status = 'indexed')::int AS indexed,
            count(*) FILTER (WHERE d.status = 'failed')::int AS failed,
            count(*) FILTER (WHERE d.status IN ('indexed', 'failed') AND d.status_changed_at >= w.since)::int AS finished_in_window,
            extract(epoch FROM w.now - min(d.status_changed_at)
              FILTER (WHERE d.status IN ('indexed', 'failed') AND d.status_changed_at >= w.since))::float8 AS finished_over_seconds,
            w.now AS as_of
          FROM (SELECT clock_timestamp() AS now, clock_timestamp() - make_interval(secs => ${windowSeconds}) AS since) w
          LEFT JOIN documents d ON ${filters(caller, query)}
          GROUP BY w.now, w.since`,
        ([row]) => row!
      )

    /**
     * Inserts documents, or updates the caller's documents with the same (source, external_id),
     * set-based: one INSERT for every item, one UPDATE for those that already existed. Items
     * naming the same document are applied in their order (one round each), so the last wins.
     * A change of title or content, or a document whose indexing failed, bumps the revision and
     * queues the document again. Results are in the items' order. Run inside a transaction.
     */
    const storeAll = (ownerId: string, items: ReadonlyArray<DocumentFields>) =>
      Effect.gen(function* () {
        const results = new Array<Stored>(items.length)
        for (const round of rounds(items)) {
          let pending = round
          // An item neither inserted nor updated was inserted by a concurrent transaction after
          // this statement's snapshot (its insert waited for it, then did nothing): once more.
          for (let attempt = 0; pending.length > 0; attempt++) {
            if (attempt === 3) return yield* Effect.die(new Error("A document could be neither inserted nor updated"))
            const candidates = pending.map((index) => ({ index, id: timeOrderedUuid() }))
            const inserted = yield* sql<{ id: string; revision: number }>`
              INSERT INTO documents (id, owner_id, source, external_id, url, title, content, page_starts, content_hash, metadata, tags, visibility)
              SELECT i.id, ${ownerId}, i.source, i.external_id, i.url, i.title, i.content, i.page_starts, i.content_hash,
                COALESCE(i.metadata, '{}'), COALESCE(i.tags, '{}'), COALESCE(i.visibility, 'private')
              FROM jsonb_to_recordset(${JSON.stringify(candidates.map(({ index, id }) => ({ id, ...itemRecord(items[index]!) })))}::jsonb)
                AS i(id uuid, ${recordColumns})
              -- Rows in key order, and locked below in id order: two calls naming the same
              -- documents wait for each other instead of deadlocking.
              ORDER BY i.source, i.external_id
              ON CONFLICT (owner_id, source, external_id) WHERE external_id IS NOT NULL DO NOTHING
              RETURNING id, revision`
            const indexOfId = new Map<string, number>(candidates.map(({ id, index }) => [id, index]))
            for (const row of inserted) {
              results[indexOfId.get(row.id)!] = { id: row.id, revision: row.revision, reindex: true, created: true }
            }
            const existing = pending.filter((index) => results[index] === undefined)
            if (existing.length === 0) break
            // Pushing a document whose indexing failed is how a client retries it, content changed or not;
            // the same text paged otherwise (a PDF of it) is re-indexed too, for its chunks' pages.
            const updated = yield* sql<{ id: string; revision: number; ord: number; reindex: boolean }>`
              UPDATE documents d SET
                url = COALESCE(s.url, d.url),
                metadata = COALESCE(s.metadata, d.metadata),
                tags = COALESCE(s.tags, d.tags),
                visibility = COALESCE(s.visibility, d.visibility),
                updated_at = now(),
                title = CASE WHEN s.reindex THEN s.title ELSE d.title END,
                content = CASE WHEN s.reindex THEN s.content ELSE d.content END,
                page_starts = CASE WHEN s.reindex THEN s.page_starts ELSE d.page_starts END,
                content_hash = CASE WHEN s.reindex THEN s.content_hash ELSE d.content_hash END,
                revision = CASE WHEN s.reindex THEN d.revision + 1 ELSE d.revision END,
                status = CASE WHEN s.reindex THEN 'queued' ELSE d.status END,
                error = CASE WHEN s.reindex THEN NULL ELSE d.error END,
                status_changed_at = CASE WHEN s.reindex THEN clock_timestamp() ELSE d.status_changed_at END
              FROM (
                SELECT i.*, e.id,
                  (e.content_hash <> i.content_hash OR e.status = 'failed' OR e.page_starts IS DISTINCT FROM i.page_starts) AS reindex
                FROM jsonb_to_recordset(${JSON.stringify(existing.map((index) => ({ ord: index, ...itemRecord(items[index]!) })))}::jsonb)
                  AS i(ord int, ${recordColumns})
                JOIN documents e ON e.owner_id = ${ownerId} AND e.source = i.source AND e.external_id = i.external_id
                ORDER BY e.id
                FOR UPDATE OF e
              ) s
              WHERE d.id = s.id
              RETURNING d.id, d.revision, s.ord, s.reindex`
            for (const row of updated) {
              results[row.ord] = { id: row.id, revision: row.revision, reindex: row.reindex, created: false }
            }
            pending = existing.filter((index) => results[index] === undefined)
          }
        }
        return results
      })

    /**
     * The collections the caller may see (admins: all) of the caller's own documents named by
     * (source, external_id), by `documentKey`.
     */
    const visibleCollectionsByKey = (caller: Caller, keys: ReadonlyArray<{ readonly source: string; readonly externalId: string }>) =>
      Effect.map(
        sql<{ source: string; external_id: string; ids: ReadonlyArray<string> }>`
          SELECT d.source, d.external_id, ARRAY(
            SELECT dc.collection_id::text FROM document_collections dc
            WHERE dc.document_id = d.id AND ${
              caller.role === "admin"
                ? sql`true`
                : sql`EXISTS (
              SELECT 1 FROM collection_members cm WHERE cm.collection_id = dc.collection_id AND cm.user_id = ${caller.id})`
            }
          ) AS ids
          FROM jsonb_to_recordset(${JSON.stringify(keys.map((key) => ({ source: key.source, external_id: key.externalId })))}::jsonb)
            AS k(source text, external_id text)
          JOIN documents d ON d.owner_id = ${caller.id} AND d.source = k.source AND d.external_id = k.external_id`,
        (rows) => new Map(rows.map((row) => [documentKey(row.source, row.external_id), row.ids]))
      )

    /**
     * Metadata, tags, visibility and url change in place; `retitle` (a new title with the hash it
     * gives) bumps the revision and queues the document again. Returns the revision.
     */
    const update = (
      documentId: string,
      change: {
        readonly url?: string | null | undefined
        readonly metadata?: Readonly<Record<string, unknown>> | undefined
        readonly tags?: ReadonlyArray<string> | undefined
        readonly visibility?: DocumentVisibility | undefined
        readonly retitle?: { readonly title: string; readonly contentHash: string } | undefined
      }
    ) =>
      Effect.map(
        sql<{ revision: number }>`
          UPDATE documents d SET
            url = ${change.url === undefined ? sql`d.url` : sql`${change.url}`},
            metadata = COALESCE(${change.metadata === undefined ? null : JSON.stringify(change.metadata)}::jsonb, d.metadata),
            tags = COALESCE(${change.tags === undefined ? null : toTextArray(change.tags)}::text[], d.tags),
            visibility = COALESCE(${change.visibility ?? null}, d.visibility),
            updated_at = now()
            ${
              change.retitle === undefined
                ? sql``
                : sql`, title = ${change.retitle.title}, content_hash = ${change.retitle.contentHash},
                revision = d.revision + 1, status = 'queued', error = NULL, status_changed_at = clock_timestamp()`
            }
          WHERE d.id = ${documentId}
          RETURNING d.revision`,
        ([row]) => row?.revision ?? 0
      )

    const contentOf = (documentId: string) =>
      Effect.map(sql<{ content: string }>`SELECT content FROM documents WHERE id = ${documentId}`, ([row]) => row?.content ?? "")

    /**
     * Deletes a document and records its deletion for the event stream, with who could see it
     * (the statement's snapshot still has the collection links the delete cascades away).
     */
    const remove = (documentId: string) =>
      Effect.map(
        sql<{ id: string }>`
          WITH gone AS (
            DELETE FROM documents WHERE id = ${documentId} RETURNING id, owner_id, visibility, revision
          ), recorded AS (
            INSERT INTO document_deletions (document_id, owner_id, visibility, collection_ids, revision)
            SELECT g.id, g.owner_id, g.visibility,
              ARRAY(SELECT dc.collection_id FROM document_collections dc WHERE dc.document_id = g.id), g.revision
            FROM gone g
            ON CONFLICT (document_id) DO NOTHING
          )
          SELECT id FROM gone`,
        (rows) => rows.length > 0
      )

    /** Forgets the deletions recorded before `before`, in batches; returns how many. */
    const pruneDeletions = (before: Date) =>
      deleteInBatches(
        cleanupBatch,
        Effect.map(
          sql`
            DELETE FROM document_deletions
            WHERE document_id IN (
              SELECT document_id FROM document_deletions
              WHERE deleted_at < ${before.toISOString()}::timestamptz
              LIMIT ${cleanupBatch}
              FOR UPDATE SKIP LOCKED
            )
            RETURNING 1`,
          (rows) => rows.length
        )
      )

    /** The collections a document is in that the caller may see (admins: all). */
    const visibleCollectionsOf = (caller: Caller, documentId: string) =>
      Effect.map(
        sql<{ id: string }>`
          SELECT dc.collection_id::text AS id FROM document_collections dc
          WHERE dc.document_id = ${documentId} AND ${
            caller.role === "admin"
              ? sql`true`
              : sql`EXISTS (
            SELECT 1 FROM collection_members cm WHERE cm.collection_id = dc.collection_id AND cm.user_id = ${caller.id})`
          }`,
        (rows) => rows.map((row) => row.id)
      )

    const chunks = (documentId: string, limit: number, afterOrdinal: number | undefined) =>
      Effect.all({
        rows: sql<ChunkRow>`
          SELECT id, ordinal, content, heading_path, start_offset, end_offset, token_count,
            first_page, first_page + cardinality(page_breaks) AS last_page
          FROM chunks WHERE document_id = ${documentId} AND ordinal > ${afterOrdinal ?? -1}
          ORDER BY ordinal LIMIT ${limit + 1}`,
        total: Effect.map(
          sql<{ total: number }>`SELECT count(*)::int AS total FROM chunks WHERE document_id = ${documentId}`,
          ([row]) => row?.total ?? 0
        )
      })

    /**
     * Status changes and deletions of the documents the caller may see (or could, when deleted),
     * at or after `since` (exact text), in the order they happened.
     */
    const changesSince = (caller: Caller, since: string, limit: number) =>
      sql<DocumentChangeRow>`
        SELECT * FROM (
          SELECT 'status' AS kind, d.id AS document_id, d.status, d.error, d.chunk_count, d.revision,
            d.status_changed_at AS changed_at, ${sql.literal(exactTime("d.status_changed_at"))} AS changed_at_exact
          FROM documents d
          WHERE d.status_changed_at >= ${since}::timestamptz AND ${visibleTo(sql, caller, "d")}
          UNION ALL
          SELECT 'deleted', t.document_id, NULL, NULL, NULL, t.revision,
            t.deleted_at, ${sql.literal(exactTime("t.deleted_at"))}
          FROM document_deletions t
          WHERE t.deleted_at >= ${since}::timestamptz AND ${deletionVisibleTo(sql, caller, "t")}
        ) changes
        ORDER BY changed_at, document_id
        LIMIT ${limit}`

    const now = Effect.map(sql<{ now: string }>`SELECT ${sql.literal(exactTime("clock_timestamp()"))} AS now`, ([row]) => row!.now)

    return {
      find,
      findMany,
      list,
      progress,
      storeAll,
      visibleCollectionsByKey,
      update,
      remove,
      contentOf,
      visibleCollectionsOf,
      chunks,
      changesSince,
      pruneDeletions,
      now,
      withTransaction: sql.withTransaction
    } as const
  })
}) {
  static readonly layer = Layer.effect(this, this.make)
}

/** A Postgres array literal, so that one parameter carries the whole array on every driver. */
const toTextArray = (values: ReadonlyArray<string>) =>
  `{${values.map((value) => `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`).join(",")}}`

/** The key of a document named by (source, external_id) among one owner's documents. */
export const documentKey = (source: string, externalId: string) => JSON.stringify([source, externalId])

/**
 * The items in rounds (positions, in order) where no two items of a round name the same
 * document: the n-th item naming a document is in round n. An item without external_id is
 * always a new document.
 */
const rounds = (items: ReadonlyArray<DocumentFields>): ReadonlyArray<ReadonlyArray<number>> => {
  const seen = new Map<string, number>()
  const result: Array<Array<number>> = []
  items.forEach((item, index) => {
    const key = item.externalId === undefined ? undefined : documentKey(item.source, item.externalId)
    const round = key === undefined ? 0 : (seen.get(key) ?? 0)
    if (key !== undefined) seen.set(key, round + 1)
    const members = result[round] ?? []
    members.push(index)
    result[round] = members
  })
  return result
}

/** One item as a `jsonb_to_recordset` record (`recordColumns`); an absent field is NULL. */
const itemRecord = (fields: DocumentFields) => ({
  source: fields.source,
  external_id: fields.externalId ?? null,
  url: fields.url ?? null,
  title: fields.title,
  content: fields.content,
  page_starts: fields.pageStarts ?? null,
  content_hash: fields.contentHash,
  metadata: fields.metadata ?? null,
  tags: fields.tags ?? null,
  visibility: fields.visibility ?? null
})
