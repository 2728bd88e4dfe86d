import { Effect, Layer } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { CurrentUser } from "../accounts/Authentication.ts"
import type { Caller } from "../accounts/SessionsRepo.ts"
import { BasaltApi } from "../Api.ts"
import { AuditRepo } from "../audit/AuditRepo.ts"
import { changeable } from "../documents/DocumentPolicy.ts"
import { DocumentsRepo } from "../documents/DocumentsRepo.ts"
import { decodeCursor, encodeCursor, pageOf } from "../http/PageCursor.ts"
import { Conflict, NotFound } from "../http/ApiError.ts"
import { authorizeCollection, type CollectionAction, collectionNotFound } from "./CollectionPolicy.ts"
import type { Collection, CollectionRole } from "./Collections.ts"
import { type CollectionRow, CollectionsRepo, type MembershipChange, type MemberToBe } from "./CollectionsRepo.ts"

const toCollection = ({ created_at_exact: _, ...collection }: CollectionRow): Collection => collection

const lastOwner = () => new Conflict({ message: "A collection keeps at least one owner" })

export const CollectionsHttpLive = HttpApiBuilder.group(BasaltApi, "collections", (handlers) =>
  Effect.gen(function* () {
    const collections = yield* CollectionsRepo
    const documents = yield* DocumentsRepo
    const audit = yield* AuditRepo

    /** The collection, if the caller may do `action` with it (404 when they may not even see it). */
    const authorized = (caller: Caller, collectionId: string, action: CollectionAction, options?: { readonly lock?: boolean }) =>
      Effect.flatMap(collections.access(caller, collectionId, options), (access) => authorizeCollection(caller, access, action))

    const view = (caller: Caller, collectionId: string) =>
      Effect.flatMap(collections.find(caller, collectionId), (row) =>
        row === undefined ? Effect.fail(collectionNotFound()) : Effect.succeed(toCollection(row))
      )

    const membershipResult = (change: MembershipChange) => {
      switch (change._tag) {
        case "NoSuchUser":
          return Effect.fail(new NotFound({ message: "No such active user" }))
        case "LastOwner":
          return Effect.fail(lastOwner())
        case "Done":
          return Effect.succeed(change.member)
      }
    }

    /**
     * Makes `person` a member with `role`. Only who may manage the collection gets as far as the
     * lookup, and every lookup is audited, found or not (outside the transaction, which a refusal
     * would roll back), so that guessing emails shows in the log.
     */
    const setMember = (collectionId: string, person: MemberToBe, role: CollectionRole) =>
      Effect.gen(function* () {
        const caller = yield* CurrentUser
        // The collection is locked: two owners demoting each other at once cannot leave none.
        const change = yield* collections.withTransaction(
          Effect.gen(function* () {
            yield* authorized(caller, collectionId, "manage", { lock: true })
            return yield* collections.setMember(collectionId, person, role)
          })
        )
        if (change._tag === "NoSuchUser") {
          yield* audit.record({
            action: "collection_member_not_found",
            actorId: caller.id,
            subjectId: null,
            details: { collection_id: collectionId, ...person }
          })
        } else if (change._tag === "Done") {
          yield* audit.record({
            action: "collection_member_set",
            actorId: caller.id,
            subjectId: change.member!.user_id,
            details: { collection_id: collectionId, role, ...("email" in person ? { by: "email" } : { by: "user_id" }) }
          })
        }
        return (yield* membershipResult(change))!
      }).pipe(Effect.catchTag("SqlError", Effect.die))

    return handlers
      .handle("createCollection", ({ payload }) =>
        Effect.gen(function* () {
          const caller = yield* CurrentUser
          return toCollection(yield* collections.create(caller, payload.name, payload.description ?? ""))
        }).pipe(Effect.orDie)
      )
      .handle("listCollections", ({ query }) =>
        Effect.gen(function* () {
          const caller = yield* CurrentUser
          const limit = query.limit ?? 50
          const after = yield* decodeCursor(query.cursor)
          const { rows, total } = yield* Effect.orDie(collections.list(caller, limit, after))
          return { ...pageOf(rows, limit, toCollection, (last) => encodeCursor({ at: last.created_at_exact, id: last.id })), total }
        })
      )
      .handle("getCollection", ({ params }) =>
        Effect.gen(function* () {
          const caller = yield* CurrentUser
          yield* authorized(caller, params.collection_id, "read")
          return yield* view(caller, params.collection_id)
        }).pipe(Effect.catchTag("SqlError", Effect.die))
      )
      .handle("updateCollection", ({ params, payload }) =>
        Effect.gen(function* () {
          const caller = yield* CurrentUser
          yield* authorized(caller, params.collection_id, "edit")
          yield* collections.update(params.collection_id, payload)
          return yield* view(caller, params.collection_id)
        }).pipe(Effect.catchTag("SqlError", Effect.die))
      )
      .handle("deleteCollection", ({ params }) =>
        Effect.gen(function* () {
          const caller = yield* CurrentUser
          yield* authorized(caller, params.collection_id, "manage")
          yield* collections.remove(params.collection_id)
        }).pipe(Effect.catchTag("SqlError", Effect.die))
      )
      .handle("listCollectionMembers", ({ params }) =>
        Effect.gen(function* () {
          const caller = yield* CurrentUser
          yield* authorized(caller, params.collection_id, "read")
          return { items: yield* collections.members(params.collection_id) }
        }).pipe(Effect.catchTag("SqlError", Effect.die))
      )
      .handle("addCollectionMember", ({ params, payload }) =>
        setMember(params.collection_id, "email" in payload ? { email: payload.email } : { user_id: payload.user_id }, payload.role)
      )
      .handle("setCollectionMember", ({ params, payload }) => setMember(params.collection_id, { user_id: params.user_id }, payload.role))
      .handle("removeCollectionMember", ({ params }) =>
        Effect.gen(function* () {
          const caller = yield* CurrentUser
          const removed = yield* collections.withTransaction(
            Effect.gen(function* () {
              yield* authorized(caller, params.collection_id, "manage", { lock: true })
              return yield* membershipResult(yield* collections.removeMember(params.collection_id, params.user_id))
            })
          )
          if (removed === undefined) return yield* new NotFound({ message: "No such member of this collection" })
        }).pipe(Effect.catchTag("SqlError", Effect.die))
      )
      .handle("addCollectionDocument", ({ params }) =>
        Effect.gen(function* () {
          const caller = yield* CurrentUser
          yield* authorized(caller, params.collection_id, "edit")
          const document = yield* changeable(yield* documents.find(caller, params.document_id))
          yield* collections.addDocument(params.collection_id, document.id)
        }).pipe(Effect.catchTag("SqlError", Effect.die))
      )
      .handle("removeCollectionDocument", ({ params }) =>
        Effect.gen(function* () {
          const caller = yield* CurrentUser
          yield* authorized(caller, params.collection_id, "edit")
          const document = yield* changeable(yield* documents.find(caller, params.document_id))
          yield* collections.removeDocument(params.collection_id, document.id)
        }).pipe(Effect.catchTag("SqlError", Effect.die))
      )
  })
).pipe(Layer.provide([CollectionsRepo.layer, DocumentsRepo.layer, AuditRepo.layer]))
