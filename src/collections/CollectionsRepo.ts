/** Collections, their members and their documents, in SQL. */
import { Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import type { Caller } from "../accounts/SessionsRepo.ts"
import { exactTime, type PagePosition } from "../http/PageCursor.ts"
import type { CollectionAccess } from "./CollectionPolicy.ts"
import type { CollectionRole } from "./Collections.ts"

export interface CollectionRow {
  readonly id: string
  readonly name: string
  readonly description: string
  readonly owner_id: string
  readonly role: CollectionRole | null
  readonly document_count: number
  readonly member_count: number
  readonly created_at: Date
  readonly updated_at: Date
  readonly created_at_exact: string
}

export interface MemberRow {
  readonly user_id: string
  readonly email: string
  readonly display_name: string
  readonly role: CollectionRole
  readonly added_at: Date
}

/** What a membership change would do to the collection's owners. */
/** Who is to be a member: by id, or by email (as accounts store it: trimmed, lower-cased). */
export type MemberToBe = { readonly user_id: string } | { readonly email: string }

export type MembershipChange =
  | { readonly _tag: "Done"; readonly member: MemberRow | undefined }
  | { readonly _tag: "NoSuchUser" }
  | { readonly _tag: "LastOwner" }

export interface DocumentInCollection {
  readonly document_id: string
  readonly collection_id: string
}

export class CollectionsRepo extends Context.Service<CollectionsRepo>()("basalt/CollectionsRepo", {
  make: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient

    const columns = (caller: Caller) => sql`
      c.id, c.name, c.description, c.owner_id,
      (SELECT cm.role FROM collection_members cm WHERE cm.collection_id = c.id AND cm.user_id = ${caller.id}) AS role,
      (SELECT count(*)::int FROM document_collections dc WHERE dc.collection_id = c.id) AS document_count,
      (SELECT count(*)::int FROM collection_members cm WHERE cm.collection_id = c.id) AS member_count,
      c.created_at, c.updated_at, ${sql.literal(exactTime("c.created_at"))} AS created_at_exact`

    /** Whether the collection exists, and the caller's role in it; `lock` holds it for the transaction. */
    const access = (caller: Caller, collectionId: string, options: { readonly lock?: boolean } = {}) =>
      Effect.map(
        sql<{ role: CollectionRole | null }>`
          SELECT (SELECT cm.role FROM collection_members cm WHERE cm.collection_id = c.id AND cm.user_id = ${caller.id}) AS role
          FROM collections c WHERE c.id = ${collectionId}
          ${options.lock === true ? sql`FOR UPDATE` : sql``}`,
        ([row]): CollectionAccess | undefined => (row === undefined ? undefined : { collectionId, role: row.role })
      )

    /** `access` for several collections in one statement; those that do not exist are missing. */
    const accessMany = (caller: Caller, collectionIds: ReadonlyArray<string>) =>
      Effect.map(
        sql<{ id: string; role: CollectionRole | null }>`
          SELECT c.id::text AS id,
            (SELECT cm.role FROM collection_members cm WHERE cm.collection_id = c.id AND cm.user_id = ${caller.id}) AS role
          FROM collections c
          WHERE c.id IN (SELECT jsonb_array_elements_text(${JSON.stringify(collectionIds)}::jsonb)::uuid)`,
        (rows) => new Map(rows.map((row): [string, CollectionAccess] => [row.id, { collectionId: row.id, role: row.role }]))
      )

    const find = (caller: Caller, collectionId: string) =>
      Effect.map(sql<CollectionRow>`SELECT ${columns(caller)} FROM collections c WHERE c.id = ${collectionId}`, (rows) => rows[0])

    const create = (caller: Caller, name: string, description: string) =>
      sql.withTransaction(
        Effect.gen(function* () {
          const [created] = yield* sql<{ id: string }>`
          INSERT INTO collections (name, description, owner_id) VALUES (${name}, ${description}, ${caller.id}) RETURNING id`
          yield* sql`INSERT INTO collection_members (collection_id, user_id, role) VALUES (${created!.id}, ${caller.id}, 'owner')`
          const [row] = yield* sql<CollectionRow>`SELECT ${columns(caller)} FROM collections c WHERE c.id = ${created!.id}`
          return row!
        })
      )

    /** The collections the caller is a member of, newest first. */
    const list = (caller: Caller, limit: number, after: PagePosition | undefined) =>
      Effect.all({
        rows: sql<CollectionRow>`
          SELECT ${columns(caller)} FROM collections c
          JOIN collection_members me ON me.collection_id = c.id AND me.user_id = ${caller.id}
          WHERE ${after === undefined ? sql`true` : sql`(c.created_at, c.id) < (${after.at}::timestamptz, ${after.id}::uuid)`}
          ORDER BY c.created_at DESC, c.id DESC
          LIMIT ${limit + 1}`,
        total: Effect.map(
          sql<{ total: number }>`SELECT count(*)::int AS total FROM collection_members WHERE user_id = ${caller.id}`,
          ([row]) => row?.total ?? 0
        )
      })

    const update = (collectionId: string, change: { readonly name?: string | undefined; readonly description?: string | undefined }) =>
      sql`
        UPDATE collections SET
          name = COALESCE(${change.name ?? null}, name),
          description = COALESCE(${change.description ?? null}, description),
          updated_at = now()
        WHERE id = ${collectionId}`

    const remove = (collectionId: string) => sql`DELETE FROM collections WHERE id = ${collectionId}`

    const members = (collectionId: string) =>
      sql<MemberRow>`
        SELECT u.id AS user_id, u.email, u.display_name, cm.role, cm.added_at
        FROM collection_members cm JOIN users u ON u.id = cm.user_id
        WHERE cm.collection_id = ${collectionId}
        ORDER BY cm.added_at, u.id`

    const otherOwners = (collectionId: string, userId: string) =>
      Effect.map(
        sql<{ n: number }>`
          SELECT count(*)::int AS n FROM collection_members
          WHERE collection_id = ${collectionId} AND role = 'owner' AND user_id <> ${userId}`,
        ([row]) => row?.n ?? 0
      )

    const memberOf = (collectionId: string, userId: string) =>
      Effect.map(
        sql<MemberRow>`
          SELECT u.id AS user_id, u.email, u.display_name, cm.role, cm.added_at
          FROM collection_members cm JOIN users u ON u.id = cm.user_id
          WHERE cm.collection_id = ${collectionId} AND cm.user_id = ${userId}`,
        (rows) => rows[0]
      )

    /** Run inside a transaction that locked the collection (`access` with `lock`). */
    /** An unknown and a deactivated account are the same NoSuchUser, by id or by email alike. */
    const setMember = (collectionId: string, person: MemberToBe, role: CollectionRole) =>
      Effect.gen(function* () {
        const [user] =
          "email" in person
            ? yield* sql<{ id: string }>`SELECT id FROM users WHERE email = ${person.email} AND active`
            : yield* sql<{ id: string }>`SELECT id FROM users WHERE id = ${person.user_id} AND active`
        if (user === undefined) return { _tag: "NoSuchUser" } as MembershipChange
        const userId = user.id
        if (role !== "owner" && (yield* otherOwners(collectionId, userId)) === 0) {
          const current = yield* memberOf(collectionId, userId)
          if (current?.role === "owner") return { _tag: "LastOwner" } as MembershipChange
        }
        yield* sql`
          INSERT INTO collection_members (collection_id, user_id, role) VALUES (${collectionId}, ${userId}, ${role})
          ON CONFLICT (collection_id, user_id) DO UPDATE SET role = EXCLUDED.role`
        return { _tag: "Done", member: yield* memberOf(collectionId, userId) } as MembershipChange
      })

    /** Run inside a transaction that locked the collection. `member` undefined: was not a member. */
    const removeMember = (collectionId: string, userId: string) =>
      Effect.gen(function* () {
        const current = yield* memberOf(collectionId, userId)
        if (current === undefined) return { _tag: "Done", member: undefined } as MembershipChange
        if (current.role === "owner" && (yield* otherOwners(collectionId, userId)) === 0) {
          return { _tag: "LastOwner" } as MembershipChange
        }
        yield* sql`DELETE FROM collection_members WHERE collection_id = ${collectionId} AND user_id = ${userId}`
        return { _tag: "Done", member: current } as MembershipChange
      })

    const addDocument = (collectionId: string, documentId: string) =>
      sql`
        INSERT INTO document_collections (document_id, collection_id) VALUES (${documentId}, ${collectionId})
        ON CONFLICT DO NOTHING`

    const removeDocument = (collectionId: string, documentId: string) =>
      sql`DELETE FROM document_collections WHERE document_id = ${documentId} AND collection_id = ${collectionId}`

    /** Puts documents in and takes them out of collections: (document, collection) pairs. */
    const changeDocuments = (change: {
      readonly add: ReadonlyArray<DocumentInCollection>
      readonly remove: ReadonlyArray<DocumentInCollection>
    }) =>
      Effect.all(
        [
          change.remove.length === 0
            ? Effect.void
            : sql`
          DELETE FROM document_collections dc
          USING jsonb_to_recordset(${JSON.stringify(change.remove)}::jsonb) AS p(document_id uuid, collection_id uuid)
          WHERE dc.document_id = p.document_id AND dc.collection_id = p.collection_id`,
          change.add.length === 0
            ? Effect.void
            : sql`
          INSERT INTO document_collections (document_id, collection_id)
          SELECT p.document_id, p.collection_id
          FROM jsonb_to_recordset(${JSON.stringify(change.add)}::jsonb) AS p(document_id uuid, collection_id uuid)
          ON CONFLICT DO NOTHING`
        ],
        { discard: true }
      )

    return {
      access,
      accessMany,
      changeDocuments,
      find,
      create,
      list,
      update,
      remove,
      members,
      setMember,
      removeMember,
      addDocument,
      removeDocument,
      withTransaction: sql.withTransaction
    } as const
  })
}) {
  static readonly layer = Layer.effect(this, this.make)
}
