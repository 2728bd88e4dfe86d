/** Chat sessions, messages, citations and feedback as the contract names them. */
import { Schema, SchemaTransformation } from "effect"
import { contractBody } from "../contract/Contract.ts"
import { Text, TrimmedText } from "../contract/Text.ts"
import { Uuid } from "../contract/Uuid.ts"

const Tag = TrimmedText({ minLength: 1, maxLength: 64 }).pipe(Schema.decodeTo(Schema.String, SchemaTransformation.toLowerCase()))

const OneToFifty = <S extends Schema.Top>(item: S) => Schema.Array(item).check(Schema.isMinLength(1), Schema.isMaxLength(50))

/** What a session's answers are drawn from, within what the caller may read. */
export const ChatScope = contractBody(
  "ChatScope",
  Schema.Struct({
    collection_ids: Schema.optionalKey(OneToFifty(Uuid)),
    sources: Schema.optionalKey(OneToFifty(Text({ minLength: 1, maxLength: 100 }))),
    tags: Schema.optionalKey(OneToFifty(Tag))
  })
)
export type ChatScope = typeof ChatScope.Type

const sessionFields = {
  id: Uuid,
  title: Schema.String,
  scope: ChatScope,
  created_at: Schema.DateFromString,
  updated_at: Schema.DateFromString,
  current_message_id: Schema.NullOr(Uuid)
}

export const ChatSession = contractBody("ChatSession", Schema.Struct(sessionFields))
export type ChatSession = typeof ChatSession.Type

export const ChatSessionPage = contractBody(
  "ChatSessionPage",
  Schema.Struct({ items: Schema.Array(ChatSession), next_cursor: Schema.NullOr(Schema.String) })
)

export const FeedbackRating = Schema.Literals(["positive", "negative"])
export type FeedbackRating = typeof FeedbackRating.Type

export const Feedback = contractBody(
  "Feedback",
  Schema.Struct({
    rating: FeedbackRating,
    text: Schema.NullOr(Schema.String),
    created_at: Schema.DateFromString,
    updated_at: Schema.DateFromString
  })
)
export type Feedback = typeof Feedback.Type

const Offset = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
const Positive = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))

export const Citation = contractBody(
  "Citation",
  Schema.Struct({
    number: Positive,
    document_id: Uuid,
    chunk_id: Uuid,
    revision: Positive,
    answer_start: Offset,
    answer_end: Offset,
    chunk_start: Offset,
    chunk_end: Offset,
    quote: Schema.String,
    page: Schema.NullOr(Positive)
  })
)
export type Citation = typeof Citation.Type

export const ChatUsage = contractBody("ChatUsage", Schema.Struct({ prompt_tokens: Offset, completion_tokens: Offset }))

export const MessageRole = Schema.Literals(["user", "assistant"])
export const MessageStatus = Schema.Literals(["generating", "complete", "stopped", "failed"])
export const FinishReason = Schema.Literals(["stop", "length", "content_filter", "stopped", "error"])

export const ChatMessage = contractBody(
  "ChatMessage",
  Schema.Struct({
    id: Uuid,
    parent_message_id: Schema.NullOr(Uuid),
    role: MessageRole,
    content: Schema.String,
    status: MessageStatus,
    model: Schema.NullOr(Schema.String),
    finish_reason: Schema.NullOr(FinishReason),
    usage: Schema.NullOr(ChatUsage),
    citations: Schema.Array(Citation),
    feedback: Schema.NullOr(Feedback),
    created_at: Schema.DateFromString
  })
)
export type ChatMessage = typeof ChatMessage.Type

export const ChatSessionDetail = contractBody("ChatSessionDetail", Schema.Struct({ ...sessionFields, messages: Schema.Array(ChatMessage) }))
export type ChatSessionDetail = typeof ChatSessionDetail.Type

const Title = TrimmedText({ minLength: 1, maxLength: 200 })

export const defaultTitle = "New chat"

export const CreateChatSessionRequest = contractBody(
  "CreateChatSessionRequest",
  Schema.Struct({ title: Schema.optionalKey(Title), scope: Schema.optionalKey(ChatScope) })
)

export const UpdateChatSessionRequest = contractBody(
  "UpdateChatSessionRequest",
  Schema.Struct({
    title: Schema.optionalKey(Title),
    scope: Schema.optionalKey(ChatScope),
    current_message_id: Schema.optionalKey(Uuid)
  }).check(
    Schema.makeFilter(
      (change) =>
        change.title !== undefined ||
        change.scope !== undefined ||
        change.current_message_id !== undefined ||
        "Give a title, a scope or a current message"
    )
  )
)
export type UpdateChatSessionRequest = typeof UpdateChatSessionRequest.Type

export const SetFeedbackRequest = contractBody(
  "SetFeedbackRequest",
  Schema.Struct({ rating: FeedbackRating, text: Schema.optionalKey(TrimmedText({ maxLength: 2000 })) })
)
export type SetFeedbackRequest = typeof SetFeedbackRequest.Type
