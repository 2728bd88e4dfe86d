/**
 * Who may do what with a collection. Members read it; owners and editors change its name and its
 * documents; owners manage members and delete it. Admins may do everything. A caller who may not
 * read a collection learns nothing of it: 404, as if it did not exist.
 */
import { Effect } from "effect"
import type { Caller } from "../accounts/SessionsRepo.ts"
import { Forbidden, NotFound } from "../http/ApiError.ts"
import type { CollectionRole } from "./Collections.ts"

export type CollectionAction = "read" | "edit" | "manage"

/** The caller's role in a collection that exists; null when not a member. */
export interface CollectionAccess {
  readonly collectionId: string
  readonly role: CollectionRole | null
}

const allowedRoles: Record<CollectionAction, ReadonlyArray<CollectionRole>> = {
  read: ["owner", "editor", "viewer"],
  edit: ["owner", "editor"],
  manage: ["owner"]
}

export const mayDo = (caller: Caller, access: CollectionAccess, action: CollectionAction): boolean =>
  caller.role === "admin" || (access.role !== null && allowedRoles[action].includes(access.role))

export const collectionNotFound = () => new NotFound({ message: "No such collection" })

/** `access` is undefined when the collection does not exist. */
export const authorizeCollection = (
  caller: Caller,
  access: CollectionAccess | undefined,
  action: CollectionAction
): Effect.Effect<CollectionAccess, NotFound | Forbidden> => {
  if (access === undefined || !mayDo(caller, access, "read")) return Effect.fail(collectionNotFound())
  if (!mayDo(caller, access, action)) {
    return Effect.fail(
      new Forbidden({
        message: action === "edit" ? "Only the collection's owners and editors may do this" : "Only the collection's owners may do this"
      })
    )
  }
  return Effect.succeed(access)
}
