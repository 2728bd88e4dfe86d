/**
 * Who may see a chat session: its owner, and no one else (admins included, since a conversation
 * is private). Anyone else learns nothing of it: 404, as for a document they cannot read. Every
 * statement of ChatRepo that reads or changes a session, its messages or their feedback includes
 * `ownedBy`, so the rule is in one place and in the SQL, never applied after a limit.
 */
import type { SqlClient } from "effect/sql"
import type { Caller } from "../accounts/SessionsRepo.ts"
import { NotFound, ValidationFailed } from "../http/ApiError.ts"

/** `sessionAlias`: the alias of `chat_sessions` in the statement. */
export const ownedBy = (sql: SqlClient.SqlClient, caller: Caller, sessionAlias = "s") => sql`${sql(sessionAlias)}.owner_id = ${caller.id}`

export const sessionNotFound = () => new NotFound({ message: "No such chat session" })

export const messageNotFound = () => new NotFound({ message: "No such chat message" })

export const feedbackNotFound = () => new NotFound({ message: "This message has no feedback" })

const onlyAnswers = "message_id names a user message; feedback is for the assistant's answers"

export const notAnAnswer = () => new ValidationFailed({ message: onlyAnswers, details: [{ path: "message_id", message: onlyAnswers }] })

const currentIsAnAnswer = "current_message_id must name an answer (an assistant message) of this session"

export const notCurrentable = () =>
  new ValidationFailed({ message: currentIsAnAnswer, details: [{ path: "current_message_id", message: currentIsAnAnswer }] })
