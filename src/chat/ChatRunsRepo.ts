/**
 * The SQL of asking: a question and its answer-to-be written together, the answers a session is
 * generating, and what a run needs to know (its session, question, history and asker). Rows are
 * decoded by Schema; a failing statement is a defect here, at the boundary.
 */
import { Context, Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import type { Caller } from "../accounts/SessionsRepo.ts"
import { Role } from "../accounts/Accounts.ts"
import { timeOrderedUuid } from "../database/TimeOrderedUuid.ts"
import { visibleTo } from "../documents/Visibility.ts"
import { ChatScope, MessageRole, MessageStatus } from "./Chat.ts"
import { ownedBy } from "./ChatPolicy.ts"
import { rowsOf } from "../database/Rows.ts"

const SessionState = Schema.Struct({
  current_message_id: Schema.NullOr(Schema.String),
  generating: Schema.NullOr(Schema.String)
})

const ParentRow = Schema.Struct({ role: MessageRole })

const AnswerState = Schema.Struct({ role: MessageRole, status: MessageStatus })

const RunRow = Schema.Struct({
  session_id: Schema.String,
  scope: ChatScope,
  status: MessageStatus,
  model: Schema.NullOr(Schema.String),
  user_message_id: Schema.String,
  question: Schema.String,
  owner_id: Schema.String,
  email: Schema.String,
  display_name: Schema.String,
  role: Role,
  active: Schema.Boolean,
  owner_created_at: Schema.Date,
  earlier_events: Schema.Int,
  earlier_content: Schema.String,
  history: Schema.Array(Schema.Struct({ role: MessageRole, content: Schema.String }))
})
export type RunRow = typeof RunRow.Type

/** How a question is placed: after the session's current message, after a given answer, or first. */
export type Placement = { readonly _tag: "Current" } | { readonly _tag: "After"; readonly messageId: string } | { readonly _tag: "First" }

export type Begun =
  | { readonly _tag: "Begun"; readonly userMessageId: string; readonly answerId: string }
  | { readonly _tag: "NoSession" }
  | { readonly _tag: "Generating"; readonly messageId: string }
  | { readonly _tag: "BadParent" }

/** How many earlier messages of the branch a run is given. */
const historyLength = 12

export class ChatRunsRepo extends Context.Service<ChatRunsRepo>()("basalt/ChatRunsRepo", {
  make: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient

    /**
     * The question and its answer (generating) written together, the answer made the session's
     * current message, and `enqueue` run in the same transaction (the run's message to the
     * session's entity): all of it or nothing. The session's row is locked, so that of two
     * questions at once one finds the other generating.
     */
    const begin = <E>(
      caller: Caller,
      sessionId: string,
      placement: Placement,
      question: string,
      model: string,
      enqueue: (answerId: string) => Effect.Effect<void, E>
    ): Effect.Effect<Begun, E> =>
      sql
        .withTransaction(
          Effect.gen(function* () {
            const [session] = yield* rowsOf(SessionState)(sql`
            SELECT s.current_message_id,
              (SELECT m.id FROM chat_messages m WHERE m.session_id = s.id AND m.status = 'generating' LIMIT 1) AS generating
            FROM chat_sessions s WHERE s.id = ${sessionId} AND ${ownedBy(sql, caller)}
            FOR UPDATE`)
            if (session === undefined) return { _tag: "NoSession" } as const
            if (session.generating !== null) return { _tag: "Generating", messageId: session.generating } as const
            const parent = placement._tag === "First" ? null : placement._tag === "After" ? placement.messageId : session.current_message_id
            if (parent !== null) {
              const [row] = yield* rowsOf(ParentRow)(sql`SELECT role FROM chat_messages WHERE id = ${parent} AND session_id = ${sessionId}`)
              if (row === undefined || row.role !== "assistant") return { _tag: "BadParent" } as const
            }
            // clock_timestamp(), not the transaction's now(), and the answer's later than the question's:
            // the answer is listed after its question. One statement for the two rows and the session.
            const userMessageId = timeOrderedUuid()
            const answerId = timeOrderedUuid()
            yield* sql`
            WITH question AS (
              INSERT INTO chat_messages (id, session_id, parent_message_id, role, content, status, created_at)
              VALUES (${userMessageId}, ${sessionId}, ${parent}, 'user', ${question}, 'complete', clock_timestamp())
              RETURNING created_at
            ),
            answer AS (
              INSERT INTO chat_messages (id, session_id, parent_message_id, role, content, status, model, api_key_id, created_at)
              VALUES (${answerId}, ${sessionId}, ${userMessageId}, 'assistant', '', 'generating', ${model}, ${caller.api_key_id ?? null},
                GREATEST(clock_timestamp(), (SELECT created_at FROM question) + interval '1 microsecond'))
            )
            UPDATE chat_sessions SET current_message_id = ${answerId}, updated_at = now() WHERE id = ${sessionId}`
            yield* enqueue(answerId)
            return { _tag: "Begun", userMessageId, answerId } as const
          })
        )
        .pipe(Effect.catchTag("SqlError", Effect.die))

    /** An answer of the caller's session; undefined when there is none. */
    const answerState = (caller: Caller, sessionId: string, messageId: string) =>
      Effect.map(
        rowsOf(AnswerState)(sql`
          SELECT m.role, m.status FROM chat_messages m JOIN chat_sessions s ON s.id = m.session_id
          WHERE m.id = ${messageId} AND m.session_id = ${sessionId} AND ${ownedBy(sql, caller)}`),
        ([row]) => row
      )

    /**
     * What the run of answer `answerId` needs, in one statement: the session, question and asker;
     * what an earlier run of the answer left (how many events, and the text its tokens wrote); and
     * the branch before the question, oldest first, its last `historyLength` messages. Undefined
     * when the answer is gone (its session deleted).
     */
    const runOf = (answerId: string) =>
      Effect.map(
        rowsOf(RunRow)(sql`
          SELECT s.id AS session_id, s.scope, a.status, a.model, q.id AS user_message_id, q.content AS question,
            u.id AS owner_id, u.email, u.display_name, u.role, u.active, u.created_at AS owner_created_at,
            earlier.events AS earlier_events, earlier.content AS earlier_content, branch.turns AS history
          FROM chat_messages a
          JOIN chat_messages q ON q.id = a.parent_message_id
          JOIN chat_sessions s ON s.id = a.session_id
          JOIN users u ON u.id = s.owner_id
          CROSS JOIN LATERAL (
            SELECT count(*)::int AS events,
              COALESCE(string_agg(e.data->>'text', '' ORDER BY e.seq) FILTER (WHERE e.type = 'token'), '') AS content
            FROM chat_run_events e WHERE e.message_id = a.id
          ) AS earlier
          CROSS JOIN LATERAL (
            WITH RECURSIVE branch AS (
              SELECT q.parent_message_id AS id, 1 AS depth
              UNION ALL
              SELECT m.parent_message_id, b.depth + 1 FROM branch b JOIN chat_messages m ON m.id = b.id
              WHERE b.depth < ${historyLength}
            )
            SELECT COALESCE(jsonb_agg(jsonb_build_object('role', m.role, 'content', m.content) ORDER BY b.depth DESC)
              FILTER (WHERE m.content <> ''), '[]'::jsonb) AS turns
            FROM branch b JOIN chat_messages m ON m.id = b.id
          ) AS branch
          WHERE a.id = ${answerId} AND a.role = 'assistant'`),
        ([row]) =>
          row === undefined
            ? undefined
            : {
                ...row,
                earlier: { events: row.earlier_events, content: row.earlier_content },
                history: row.history.map(({ content, role }) => ({ role, text: content }))
              }
      )

    /** Whether the answer's run ended so long ago that its events are no longer kept. */
    const eventsExpired = (answerId: string) =>
      Effect.map(
        rowsOf(Schema.Struct({ expired: Schema.Boolean }))(sql`
          SELECT m.finished_at IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM chat_run_events e WHERE e.message_id = m.id) AS expired
          FROM chat_messages m WHERE m.id = ${answerId}`),
        ([row]) => row?.expired ?? true
      )

    /**
     * Tokens (prompt and answer) the answers asked by `who` used today (UTC), and the seconds
     * until the day ends. An answer still generating has no usage yet.
     */
    const usedToday = (who: { readonly userId: string } | { readonly apiKeyId: string }) =>
      Effect.map(
        rowsOf(Schema.Struct({ used: Schema.Int, resets_in: Schema.Int }))(sql`
          SELECT COALESCE(sum((m.usage->>'prompt_tokens')::int + (m.usage->>'completion_tokens')::int), 0)::int AS used,
            ceil(extract(epoch FROM (date_trunc('day', now() AT TIME ZONE 'UTC') + interval '1 day') - now() AT TIME ZONE 'UTC'))::int AS resets_in
          FROM chat_messages m ${"userId" in who ? sql`JOIN chat_sessions s ON s.id = m.session_id AND s.owner_id = ${who.userId}` : sql``}
          WHERE m.role = 'assistant' AND m.usage IS NOT NULL
            AND m.created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
            ${"apiKeyId" in who ? sql`AND m.api_key_id = ${who.apiKeyId}` : sql``}`),
        ([row]) => row!
      )

    /** Which of `documentIds` the caller may read now. */
    const readableDocuments = (caller: Caller, documentIds: ReadonlyArray<string>) =>
      documentIds.length === 0
        ? Effect.succeed(new Set<string>())
        : Effect.map(
            rowsOf(Schema.Struct({ id: Schema.String }))(
              sql`SELECT d.id::text AS id FROM documents d WHERE d.id IN ${sql.in(documentIds)} AND ${visibleTo(sql, caller, "d")}`
            ),
            (rows) => new Set(rows.map((row) => row.id))
          )

    return { begin, answerState, runOf, eventsExpired, usedToday, readableDocuments } as const
  })
}) {
  static readonly layer = Layer.effect(this, this.make)
}
