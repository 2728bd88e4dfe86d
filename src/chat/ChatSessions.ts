/**
 * The chat session use cases: sessions of the caller's own, their messages with citations and
 * feedback. Who may see what is ChatPolicy's rule, in every statement of ChatRepo; a scope's
 * collections are admitted by Retrieval's own check, as POST /search admits its filters.
 */
import { Context, Effect, Layer } from "effect"
import type { Caller } from "../accounts/SessionsRepo.ts"
import type { NotFound, ValidationFailed } from "../http/ApiError.ts"
import { decodeCursor, encodeCursor, pageOf } from "../http/PageCursor.ts"
import { Retrieval } from "../search/Retrieval.ts"
import {
  type ChatMessage,
  type ChatScope,
  type ChatSession,
  type ChatSessionDetail,
  defaultTitle,
  type Feedback,
  type SetFeedbackRequest,
  type UpdateChatSessionRequest
} from "./Chat.ts"
import { feedbackNotFound, messageNotFound, notAnAnswer, notCurrentable, sessionNotFound } from "./ChatPolicy.ts"
import { type CitationRow, ChatRepo, type SessionRow } from "./ChatRepo.ts"

const defaultPageSize = 20

const toSession = ({ created_at_exact: _, ...session }: SessionRow): ChatSession => session

const toCitation = ({ message_id: _, ...citation }: CitationRow) => citation

const found = <A>(row: A | undefined, notFound: () => NotFound) => (row === undefined ? Effect.fail(notFound()) : Effect.succeed(row))

export class ChatSessions extends Context.Service<ChatSessions>()("basalt/ChatSessions", {
  make: Effect.gen(function* () {
    const repo = yield* ChatRepo
    const retrieval = yield* Retrieval

    const admitScope = (caller: Caller, scope: ChatScope | undefined) =>
      scope?.collection_ids === undefined ? Effect.void : retrieval.admitCollections(caller, { collection_ids: scope.collection_ids })

    const create = (
      caller: Caller,
      request: { readonly title?: string; readonly scope?: ChatScope }
    ): Effect.Effect<ChatSession, NotFound | ValidationFailed> =>
      Effect.gen(function* () {
        yield* admitScope(caller, request.scope)
        return toSession(yield* repo.create(caller, request.title ?? defaultTitle, request.scope ?? {}))
      })

    const list = (caller: Caller, query: { readonly limit?: number | undefined; readonly cursor?: string | undefined }) =>
      Effect.gen(function* () {
        const limit = query.limit ?? defaultPageSize
        const rows = yield* repo.list(caller, limit, yield* decodeCursor(query.cursor))
        return pageOf(rows, limit, toSession, (last) => encodeCursor({ at: last.created_at_exact, id: last.id }))
      })

    const get = (caller: Caller, sessionId: string): Effect.Effect<ChatSessionDetail, NotFound> =>
      Effect.gen(function* () {
        const session = yield* found(yield* repo.find(caller, sessionId), sessionNotFound)
        const [messages, citations] = yield* Effect.all([repo.messages(caller, sessionId), repo.citations(caller, sessionId)])
        const byMessage = Map.groupBy(citations, (citation) => citation.message_id)
        return {
          ...toSession(session),
          messages: messages.map((message): ChatMessage => ({ ...message, citations: (byMessage.get(message.id) ?? []).map(toCitation) }))
        }
      })

    const update = (
      caller: Caller,
      sessionId: string,
      change: UpdateChatSessionRequest
    ): Effect.Effect<ChatSession, NotFound | ValidationFailed> =>
      Effect.gen(function* () {
        // The session first: a caller without it learns nothing from the scope's check.
        yield* found(yield* repo.find(caller, sessionId), sessionNotFound)
        yield* admitScope(caller, change.scope)
        if (change.current_message_id !== undefined && !(yield* repo.isAnswerOf(caller, sessionId, change.current_message_id))) {
          return yield* notCurrentable()
        }
        return toSession(yield* found(yield* repo.update(caller, sessionId, change), sessionNotFound))
      })

    const remove = (caller: Caller, sessionId: string): Effect.Effect<void, NotFound> =>
      Effect.flatMap(repo.remove(caller, sessionId), (removed) => (removed ? Effect.void : Effect.fail(sessionNotFound())))

    const setFeedback = (
      caller: Caller,
      messageId: string,
      request: SetFeedbackRequest
    ): Effect.Effect<Feedback, NotFound | ValidationFailed> =>
      Effect.gen(function* () {
        const role = yield* found(yield* repo.messageRole(caller, messageId), messageNotFound)
        if (role !== "assistant") return yield* notAnAnswer()
        const text = request.text === undefined || request.text === "" ? null : request.text
        // Undefined only if the session was deleted meanwhile.
        return yield* found(yield* repo.setFeedback(caller, messageId, request.rating, text), messageNotFound)
      })

    const removeFeedback = (caller: Caller, messageId: string): Effect.Effect<void, NotFound> =>
      Effect.flatMap(repo.removeFeedback(caller, messageId), (removed) => (removed ? Effect.void : Effect.fail(feedbackNotFound())))

    return { create, list, get, update, remove, setFeedback, removeFeedback } as const
  })
}) {
  static readonly layer = Layer.effect(this, this.make).pipe(Layer.provide([ChatRepo.layer, Retrieval.layer]))
}
