/** Asking in a chat session, and the answer's events, as the contract names them. */
import { Schema } from "effect"
import { contractBody } from "../contract/Contract.ts"
import { isNotBlank, Text } from "../contract/Text.ts"
import { Uuid } from "../contract/Uuid.ts"
import { ChatMessage, ChatUsage } from "./Chat.ts"

const Positive = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))

export const SendChatMessageRequest = contractBody(
  "SendChatMessageRequest",
  Schema.Struct({
    message: Text({ minLength: 1, maxLength: 4000 }).check(isNotBlank),
    parent_message_id: Schema.optionalKey(Schema.NullOr(Uuid)),
    model: Schema.optionalKey(Text({ minLength: 1, maxLength: 200 })),
    temperature: Schema.optionalKey(Schema.Number.check(Schema.isBetween({ minimum: 0, maximum: 2 }))),
    max_tokens: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 4000 }))),
    include_citations: Schema.optionalKey(Schema.Boolean),
    stream: Schema.optionalKey(Schema.Boolean)
  })
)
export type SendChatMessageRequest = typeof SendChatMessageRequest.Type

/** A passage given to the model, under the number it may cite it by. */
export const ChatSource = contractBody(
  "ChatSource",
  Schema.Struct({
    number: Positive,
    document_id: Uuid,
    chunk_id: Uuid,
    revision: Positive,
    title: Schema.String,
    url: Schema.NullOr(Schema.String),
    page: Schema.NullOr(Positive)
  })
)
export type ChatSource = typeof ChatSource.Type

export const ChatAnswer = contractBody(
  "ChatAnswer",
  Schema.Struct({ session_id: Uuid, user_message: ChatMessage, answer: ChatMessage, sources: Schema.Array(ChatSource) })
)
export type ChatAnswer = typeof ChatAnswer.Type

export const ChatMessageStartEvent = contractBody(
  "ChatMessageStartEvent",
  Schema.Struct({ session_id: Uuid, user_message_id: Uuid, message_id: Uuid, retrieved: Schema.Array(ChatSource) })
)

export const ChatMessageEndEvent = contractBody(
  "ChatMessageEndEvent",
  Schema.Struct({
    message_id: Uuid,
    content: Schema.String,
    finish_reason: Schema.Literals(["stop", "length", "content_filter", "stopped"]),
    usage: ChatUsage,
    model: Schema.String,
    invalid_citations: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
  })
)

export const ChatErrorCode = Schema.Literals([
  "provider_unavailable",
  "provider_rejected",
  "provider_protocol",
  "not_found",
  "validation_failed",
  "internal"
])
export type ChatErrorCode = typeof ChatErrorCode.Type

export const ChatErrorEvent = contractBody(
  "ChatErrorEvent",
  Schema.Struct({ code: ChatErrorCode, message: Schema.String, retryable: Schema.Boolean })
)
