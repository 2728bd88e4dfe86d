/**
 * The SQL of one chat turn's end: the answer recorded (the message, the chunks shown, the
 * citations) in one transaction. Which revision of each retrieved chunk's document the model is
 * shown, and the chunk's pages, come with the retrieval (SearchRepo.details). Rows are decoded by
 * Schema; a failing statement or an undecodable row is a defect here, at the boundary.
 */
import { Context, Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import type { FinishReason } from "./Answerer.ts"
import type { Citation } from "./Chat.ts"
import { rowsOf } from "../database/Rows.ts"

const UpdatedRow = Schema.Struct({ id: Schema.String })

/** A chunk as the prompt numbered it: `position` is its [n]. */
export interface ShownChunk {
  readonly position: number
  readonly document_id: string
  readonly chunk_id: string
  readonly revision: number
}

export interface FinishedTurn {
  readonly assistantMessageId: string
  readonly content: string
  readonly status: "complete" | "stopped" | "failed"
  /** The answerer's reason, or `stopped` by a user, or `error` for a failed answer. */
  readonly finishReason: FinishReason | "stopped" | "error" | null
  readonly usage: { readonly prompt_tokens: number; readonly completion_tokens: number } | null
  readonly model: string | null
  /** Not the client's business: `invalid_citations` (numbers invented or not shown), and whatever else the run keeps. */
  readonly metadata: { readonly invalid_citations: number } & Record<string, unknown>
  readonly shown: ReadonlyArray<ShownChunk>
  readonly citations: ReadonlyArray<Citation>
}

export class ChatTurnRepo extends Context.Service<ChatTurnRepo>()("basalt/ChatTurnRepo", {
  make: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient

    /**
     * Records the end of a turn: the assistant message's text, status, finish reason, usage,
     * model and metadata, exactly the chunks it was shown and the citations it made (any
     * recorded before are replaced, so that finishing twice leaves the same rows). False, and
     * nothing written, when there is no such message.
     */
    const finish = (turn: FinishedTurn): Effect.Effect<boolean> =>
      sql
        .withTransaction(
          Effect.gen(function* () {
            // The message, and whatever an earlier finish recorded for it removed, in one statement.
            const updated = yield* rowsOf(UpdatedRow)(sql`
              WITH updated AS (
                UPDATE chat_messages SET
                  content = ${turn.content},
                  status = ${turn.status},
                  finish_reason = ${turn.finishReason},
                  usage = ${turn.usage === null ? null : JSON.stringify(turn.usage)}::jsonb,
                  model = ${turn.model},
                  metadata = ${JSON.stringify(turn.metadata)}::jsonb
                WHERE id = ${turn.assistantMessageId} AND role = 'assistant'
                RETURNING id
              ),
              shown_removed AS (DELETE FROM chat_message_chunks WHERE message_id IN (SELECT id FROM updated)),
              citations_removed AS (DELETE FROM chat_citations WHERE message_id IN (SELECT id FROM updated))
              SELECT id::text AS id FROM updated`)
            if (updated.length === 0) return false
            const messageId = turn.assistantMessageId
            const shownRows = sql`
              SELECT ${messageId}::uuid, s.position, s.document_id, s.chunk_id, s.revision
              FROM jsonb_to_recordset(${JSON.stringify(turn.shown)}::jsonb)
                AS s (position integer, document_id uuid, chunk_id uuid, revision integer)`
            const citationRows = sql`
              SELECT ${messageId}::uuid, c.number, c.document_id, c.chunk_id, c.revision,
                c.answer_start, c.answer_end, c.chunk_start, c.chunk_end, c.quote, c.page
              FROM jsonb_to_recordset(${JSON.stringify(turn.citations)}::jsonb)
                AS c (number integer, document_id uuid, chunk_id uuid, revision integer, answer_start integer,
                      answer_end integer, chunk_start integer, chunk_end integer, quote text, page integer)`
            const insertShown = sql`INSERT INTO chat_message_chunks (message_id, position, document_id, chunk_id, revision) ${shownRows}`
            const insertCitations = sql`
              INSERT INTO chat_citations (message_id, number, document_id, chunk_id, revision,
                answer_start, answer_end, chunk_start, chunk_end, quote, page) ${citationRows}`
            // Both tables in one statement when both have rows.
            if (turn.shown.length > 0 && turn.citations.length > 0) {
              yield* sql`WITH shown AS (${insertShown}) ${insertCitations}`
            } else if (turn.shown.length > 0) {
              yield* insertShown
            } else if (turn.citations.length > 0) {
              yield* insertCitations
            }
            return true
          })
        )
        .pipe(Effect.orDie)

    return { finish } as const
  })
}) {
  static readonly layer = Layer.effect(this, this.make)
}
