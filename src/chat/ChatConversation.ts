/**
 * The conversation actor: one `ChatConversation` entity per chat session (keyed by its id),
 * whose persisted `RunTurn` messages are the session's answers to generate. An entity handles
 * its messages one at a time, in order, so a session's turns never overlap; sessions run
 * concurrently, spread over the processes by shard. A message is stored in the transaction that
 * writes its question (the cluster's outbox), so no answer is asked for without its question, and
 * a process that dies mid-answer leaves the message to the shard's next owner (ChatRunner ends
 * such an answer as failed, since its tokens were already sent).
 *
 * The entity holds no state: everything a run needs is in the database.
 */
import { Effect, Schema } from "effect"
import { ClusterSchema, Entity } from "effect/cluster"
import { Rpc } from "effect/rpc"
import { Role } from "../accounts/Accounts.ts"
import { ChatRunner } from "./ChatRunner.ts"

export const RunTurn = Rpc.make("RunTurn", {
  payload: {
    message_id: Schema.String,
    /** The asker's role when asking (an API key's may be below its owner's): the run reads no more than it. */
    role: Role,
    temperature: Schema.optionalKey(Schema.Number),
    max_tokens: Schema.optionalKey(Schema.Int),
    /** Absent: true. */
    include_citations: Schema.optionalKey(Schema.Boolean)
  },
  primaryKey: ({ message_id }) => message_id
})

export const ChatConversation = Entity.make("ChatConversation", [RunTurn]).annotateRpcs(ClusterSchema.Persisted, true)

/** The entity's behaviour: run the turn; its outcome is the answer's status and events, and the message always completes. */
export const ChatConversationLive = ChatConversation.toLayer(
  Effect.gen(function* () {
    const runner = yield* ChatRunner
    return ChatConversation.of({ RunTurn: (envelope) => runner.run(envelope.payload) })
  })
)
