/**
 * Chat sessions, their messages, citations and feedback, in SQL. Rows are decoded by Schema, and
 * a failing statement or an undecodable row is a defect here, at the boundary: callers see only
 * what the contract can answer.
 */
import { Context, Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import type { Caller } from "../accounts/SessionsRepo.ts"
import { timeOrderedUuid } from "../database/TimeOrderedUuid.ts"
import { visibleTo } from "../documents/Visibility.ts"
import { exactTime, type PagePosition } from "../http/PageCursor.ts"
import { ChatScope, ChatUsage, FeedbackRating, FinishReason, MessageRole, MessageStatus } from "./Chat.ts"
import { ownedBy } from "./ChatPolicy.ts"
import { firstOf, rowsOf } from "../database/Rows.ts"

const SessionRow = Schema.Struct({
  id: Schema.String,
  title: Schema.String,
  scope: ChatScope,
  created_at: Schema.Date,
  updated_at: Schema.Date,
  current_message_id: Schema.NullOr(Schema.String),
  created_at_exact: Schema.String
})
export type SessionRow = typeof SessionRow.Type

const FeedbackRow = Schema.Struct({
  rating: FeedbackRating,
  text: Schema.NullOr(Schema.String),
  created_at: Schema.Date,
  updated_at: Schema.Date
})
export type FeedbackRow = typeof FeedbackRow.Type

const MessageRow = Schema.Struct({
  id: Schema.String,
  parent_message_id: Schema.NullOr(Schema.String),
  role: MessageRole,
  content: Schema.String,
  status: MessageStatus,
  model: Schema.NullOr(Schema.String),
  finish_reason: Schema.NullOr(FinishReason),
  usage: Schema.NullOr(ChatUsage),
  created_at: Schema.Date,
  // Built by jsonb_build_object, in which timestamps are text.
  feedback: Schema.NullOr(Schema.Struct({ ...FeedbackRow.fields, created_at: Schema.DateFromString, updated_at: Schema.DateFromString }))
})
export type MessageRow = typeof MessageRow.Type

const CitationRow = Schema.Struct({
  message_id: Schema.String,
  number: Schema.Int,
  document_id: Schema.String,
  chunk_id: Schema.String,
  revision: Schema.Int,
  answer_start: Schema.Int,
  answer_end: Schema.Int,
  chunk_start: Schema.Int,
  chunk_end: Schema.Int,
  quote: Schema.String,
  page: Schema.NullOr(Schema.Int)
})
export type CitationRow = typeof CitationRow.Type

const MessageRoleRow = Schema.Struct({ role: MessageRole })

export interface SessionChange {
  readonly title?: string | undefined
  readonly scope?: ChatScope | undefined
  /** An answer of the session (checked with `isAnswerOf` first). */
  readonly current_message_id?: string | undefined
}

export class ChatRepo extends Context.Service<ChatRepo>()("basalt/ChatRepo", {
  make: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient

    const sessionColumns = sql`
      s.id, s.title, s.scope, s.created_at, s.updated_at, s.current_message_id,
      ${sql.literal(exactTime("s.created_at"))} AS created_at_exact`

    const create = (caller: Caller, title: string, scope: ChatScope) =>
      firstOf(SessionRow)(sql`
        INSERT INTO chat_sessions AS s (id, owner_id, title, scope)
        VALUES (${timeOrderedUuid()}, ${caller.id}, ${title}, ${JSON.stringify(scope)}::jsonb)
        RETURNING ${sessionColumns}`).pipe(Effect.map((row) => row!))

    /** The caller's sessions, newest first, from after `after`. */
    const list = (caller: Caller, limit: number, after: PagePosition | undefined) =>
      rowsOf(SessionRow)(sql`
        SELECT ${sessionColumns} FROM chat_sessions s
        WHERE ${ownedBy(sql, caller)}
          AND ${after === undefined ? sql`true` : sql`(s.created_at, s.id) < (${after.at}::timestamptz, ${after.id}::uuid)`}
        ORDER BY s.created_at DESC, s.id DESC
        LIMIT ${limit + 1}`)

    const find = (caller: Caller, sessionId: string) =>
      firstOf(SessionRow)(sql`SELECT ${sessionColumns} FROM chat_sessions s WHERE s.id = ${sessionId} AND ${ownedBy(sql, caller)}`)

    /** The session changed; undefined when the caller has no such session. */
    const update = (caller: Caller, sessionId: string, change: SessionChange) =>
      firstOf(SessionRow)(sql`
        UPDATE chat_sessions s SET
          title = COALESCE(${change.title ?? null}, s.title),
          scope = COALESCE(${change.scope === undefined ? null : JSON.stringify(change.scope)}::jsonb, s.scope),
          current_message_id = COALESCE(${change.current_message_id ?? null}::uuid, s.current_message_id),
          updated_at = now()
        WHERE s.id = ${sessionId} AND ${ownedBy(sql, caller)}
        RETURNING ${sessionColumns}`)

    /** Whether there was such a session of the caller's; its messages, citations and feedback go with it. */
    const remove = (caller: Caller, sessionId: string) =>
      Effect.map(
        rowsOf(Schema.Struct({ id: Schema.String }))(
          sql`DELETE FROM chat_sessions s WHERE s.id = ${sessionId} AND ${ownedBy(sql, caller)} RETURNING s.id`
        ),
        (rows) => rows.length > 0
      )

    /** Every message of the session, oldest first, each with the feedback on it. */
    const messages = (caller: Caller, sessionId: string) =>
      rowsOf(MessageRow)(sql`
        SELECT m.id, m.parent_message_id, m.role, m.content, m.status, m.model, m.finish_reason, m.usage, m.created_at,
          CASE WHEN f.message_id IS NULL THEN NULL
            ELSE jsonb_build_object('rating', f.rating, 'text', f.text, 'created_at', f.created_at, 'updated_at', f.updated_at)
          END AS feedback
        FROM chat_messages m
        JOIN chat_sessions s ON s.id = m.session_id
        LEFT JOIN chat_feedback f ON f.message_id = m.id
        WHERE m.session_id = ${sessionId} AND ${ownedBy(sql, caller)}
        -- A question and its answer may share a timestamp (a coarse clock): the question first.
        ORDER BY m.created_at, m.role = 'assistant', m.id`)

    /** The citations of the session's messages, of documents the caller may read now. */
    const citations = (caller: Caller, sessionId: string) =>
      rowsOf(CitationRow)(sql`
        SELECT c.message_id, c.number, c.document_id, c.chunk_id, c.revision,
          c.answer_start, c.answer_end, c.chunk_start, c.chunk_end, c.quote, c.page
        FROM chat_citations c
        JOIN chat_messages m ON m.id = c.message_id
        JOIN chat_sessions s ON s.id = m.session_id
        JOIN documents d ON d.id = c.document_id
        WHERE m.session_id = ${sessionId} AND ${ownedBy(sql, caller)} AND ${visibleTo(sql, caller, "d")}
        ORDER BY c.message_id, c.answer_start, c.number`)

    /** The role of a message of one of the caller's sessions; undefined when there is none. */
    const messageRole = (caller: Caller, messageId: string) =>
      Effect.map(
        firstOf(MessageRoleRow)(sql`
          SELECT m.role FROM chat_messages m JOIN chat_sessions s ON s.id = m.session_id
          WHERE m.id = ${messageId} AND ${ownedBy(sql, caller)}`),
        (row) => row?.role
      )

    /** Whether `messageId` is an answer (an assistant message) of the caller's session `sessionId`. */
    const isAnswerOf = (caller: Caller, sessionId: string, messageId: string) =>
      Effect.map(
        rowsOf(Schema.Struct({ id: Schema.String }))(sql`
          SELECT m.id FROM chat_messages m JOIN chat_sessions s ON s.id = m.session_id
          WHERE m.id = ${messageId} AND m.session_id = ${sessionId} AND m.role = 'assistant' AND ${ownedBy(sql, caller)}`),
        (rows) => rows.length > 0
      )

    /** Sets (or replaces) the caller's feedback on an assistant message of theirs; undefined when there is none. */
    const setFeedback = (caller: Caller, messageId: string, rating: FeedbackRating, text: string | null) =>
      firstOf(FeedbackRow)(sql`
        INSERT INTO chat_feedback (message_id, user_id, rating, text)
        SELECT m.id, ${caller.id}, ${rating}, ${text}
        FROM chat_messages m JOIN chat_sessions s ON s.id = m.session_id
        WHERE m.id = ${messageId} AND m.role = 'assistant' AND ${ownedBy(sql, caller)}
        ON CONFLICT (message_id) DO UPDATE SET
          user_id = EXCLUDED.user_id, rating = EXCLUDED.rating, text = EXCLUDED.text, updated_at = now()
        RETURNING rating, text, created_at, updated_at`)

    /** Whether there was feedback on a message of the caller's to delete. */
    const removeFeedback = (caller: Caller, messageId: string) =>
      Effect.map(
        rowsOf(Schema.Struct({ message_id: Schema.String }))(sql`
          DELETE FROM chat_feedback f USING chat_messages m, chat_sessions s
          WHERE f.message_id = ${messageId} AND m.id = f.message_id AND s.id = m.session_id AND ${ownedBy(sql, caller)}
          RETURNING f.message_id`),
        (rows) => rows.length > 0
      )

    return { create, list, find, update, remove, messages, citations, messageRole, isAnswerOf, setFeedback, removeFeedback } as const
  })
}) {
  static readonly layer = Layer.effect(this, this.make)
}
