/**
 * Who may do what with a document. Reading is the visibility rule (Visibility.ts, in the SQL).
 * Changing or deleting it: its owner, an owner or editor of one of its collections, or an admin
 * (`can_change`, computed in the same SQL). Making it public: curators and admins, whose role
 * is to publish for everyone. A document the caller cannot see is 404, never 403: its existence
 * is not revealed.
 */
import { Effect } from "effect"
import type { Caller } from "../accounts/SessionsRepo.ts"
import { Forbidden, NotFound } from "../http/ApiError.ts"
import type { DocumentVisibility } from "./Documents.ts"
import type { DocumentRow } from "./DocumentsRepo.ts"

export const documentNotFound = () => new NotFound({ message: "No such document" })

/** The document, if the caller may see it. */
export const readable = (row: DocumentRow | undefined): Effect.Effect<DocumentRow, NotFound> =>
  row === undefined ? Effect.fail(documentNotFound()) : Effect.succeed(row)

/** The document, if the caller may see and change it. */
export const changeable = (row: DocumentRow | undefined): Effect.Effect<DocumentRow, NotFound | Forbidden> =>
  Effect.flatMap(readable(row), (document) =>
    document.can_change
      ? Effect.succeed(document)
      : Effect.fail(
          new Forbidden({
            message: "Only the document's owner, an editor of one of its collections, or an admin may change it"
          })
        )
  )

export const mayPublish = (caller: Caller, visibility: DocumentVisibility | undefined): Effect.Effect<void, Forbidden> =>
  visibility === "public" && caller.role === "basic"
    ? Effect.fail(new Forbidden({ message: "Only curators and admins may make a document public" }))
    : Effect.void
