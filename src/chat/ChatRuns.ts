/**
 * Asking in a chat session, following an answer and stopping it: the use cases of the message
 * routes. Asking writes the question, its answer-to-be and the conversation entity's message in
 * one transaction (ChatRunsRepo.begin) and answers with the run's events as they are stored
 * (RunEvents), so the request itself never waits on the process that generates.
 */
import { Context, Duration, Effect, Layer, Option, Stream } from "effect"
import type { HttpServerResponse } from "effect/http"
import type { Caller } from "../accounts/SessionsRepo.ts"
import { ClusterWake } from "../cluster/ClusterWake.ts"
import { AppConfig } from "../config/AppConfig.ts"
import { BadGateway, Conflict, NotFound, RateLimited, ServiceUnavailable, ValidationFailed } from "../http/ApiError.ts"
import { frame, sseResponse, withHeartbeat } from "../http/ServerSentEvents.ts"
import { Answerer } from "./Answerer.ts"
import type { ChatAnswer, ChatSource, SendChatMessageRequest } from "./ChatAnswers.ts"
import { ChatConversation } from "./ChatConversation.ts"
import { messageNotFound, sessionNotFound } from "./ChatPolicy.ts"
import { type Placement, ChatRunsRepo } from "./ChatRunsRepo.ts"
import { ChatSessions } from "./ChatSessions.ts"
import { type RunEvent, RunEvents, type RunEventsExpired } from "./RunEvents.ts"

const rejected = (path: string, message: string) => new ValidationFailed({ message, details: [{ path, message }] })

const placementOf = (parent: string | null | undefined): Placement =>
  parent === undefined ? { _tag: "Current" } : parent === null ? { _tag: "First" } : { _tag: "After", messageId: parent }

/** An event as the stream frames it: its position is its id. */
const framed = (event: RunEvent) => frame({ id: String(event.seq), event: event.type, data: event.data })

export class ChatRuns extends Context.Service<ChatRuns>()("basalt/ChatRuns", {
  make: Effect.gen(function* () {
    const repo = yield* ChatRunsRepo
    const events = yield* RunEvents
    const sessions = yield* ChatSessions
    const answerer = yield* Answerer
    const { wake } = yield* ClusterWake
    const conversation = yield* ChatConversation.client
    const config = yield* AppConfig
    // How long a request with `stream` false waits for its answer: the provider's own bound, and a margin.
    const answerBound = Duration.sum(config.chat.totalTimeout, Duration.seconds(30))

    /**
     * An answer's events as `caller` may see them now: a source or a citation of a document they
     * can no longer read (its access changed since, or it was deleted) is left out, the citation's
     * event with it (its id is skipped).
     */
    const readableBy = (caller: Caller) => (stream: Stream.Stream<RunEvent, RunEventsExpired>) =>
      stream.pipe(
        Stream.mapEffect((event): Effect.Effect<Option.Option<RunEvent>> => {
          if (event.type === "citation") {
            const { document_id } = event.data as { readonly document_id: string }
            return Effect.map(repo.readableDocuments(caller, [document_id]), (readable) =>
              readable.has(document_id) ? Option.some(event) : Option.none()
            )
          }
          if (event.type === "message_start") {
            const data = event.data as { readonly retrieved: ReadonlyArray<{ readonly document_id: string }> }
            return Effect.map(
              repo.readableDocuments(
                caller,
                data.retrieved.map((source) => source.document_id)
              ),
              (readable) =>
                Option.some({ ...event, data: { ...data, retrieved: data.retrieved.filter((source) => readable.has(source.document_id)) } })
            )
          }
          return Effect.succeed(Option.some(event))
        }),
        Stream.filter(Option.isSome),
        Stream.map((event) => event.value),
        Stream.catchTag("RunEventsExpired", () => Stream.empty)
      )

    const eventStream = (caller: Caller, answerId: string, afterSeq: number) =>
      sseResponse(withHeartbeat(events.follow(answerId, afterSeq).pipe(readableBy(caller), Stream.map(framed))))

    /** The whole answer as one body, once its run has ended. */
    const completeAnswer = (caller: Caller, sessionId: string, userMessageId: string, answerId: string) =>
      Effect.gen(function* () {
        const all = yield* events.follow(answerId, 0).pipe(readableBy(caller), Stream.runCollect, Effect.timeoutOption(answerBound))
        const list = Option.getOrElse(all, () => [] as ReadonlyArray<RunEvent>)
        const last = list.at(-1)
        if (last?.type === "error") {
          const error = last.data as { code: string; message: string }
          return yield* error.code === "provider_unavailable"
            ? Effect.fail(new ServiceUnavailable({ message: error.message, retryAfterSeconds: 5 }))
            : Effect.fail(new BadGateway({ message: error.message }))
        }
        if (last?.type !== "message_end") {
          return yield* Effect.fail(
            new ServiceUnavailable({ message: "The answer is taking too long; follow it with GET …/stream", retryAfterSeconds: 5 })
          )
        }
        const start = list.find((event) => event.type === "message_start")
        const sources = (start?.data as { retrieved?: ReadonlyArray<ChatSource> } | undefined)?.retrieved ?? []
        const detail = yield* sessions.get(caller, sessionId)
        const user = detail.messages.find((message) => message.id === userMessageId)
        const answer = detail.messages.find((message) => message.id === answerId)
        if (user === undefined || answer === undefined) return yield* Effect.fail(sessionNotFound())
        return { session_id: sessionId, user_message: user, answer, sources } satisfies ChatAnswer
      })

    /** 429 when the asker's daily token budget (as a user, or as an API key) is used up. */
    const withinBudgets = (caller: Caller) =>
      Effect.gen(function* () {
        type Who = { readonly userId: string } | { readonly apiKeyId: string }
        const budgets: Array<{ readonly quota: number; readonly who: Who; readonly of: string }> = []
        if (Option.isSome(config.chatBudgets.perUser)) {
          budgets.push({ quota: config.chatBudgets.perUser.value, who: { userId: caller.id }, of: "this user" })
        }
        if (caller.api_key_id !== undefined && Option.isSome(config.chatBudgets.perApiKey)) {
          budgets.push({ quota: config.chatBudgets.perApiKey.value, who: { apiKeyId: caller.api_key_id }, of: "this API key" })
        }
        for (const { of, quota, who } of budgets) {
          const { resets_in: resetsIn, used } = yield* repo.usedToday(who)
          if (used >= quota) {
            const resetsAt = new Date(Date.now() + resetsIn * 1000).toISOString().replace(/\.\d+Z$/, "Z")
            return yield* Effect.fail(
              new RateLimited({
                message: `The daily chat budget of ${quota} tokens for ${of} is used up (${used} used); it renews at ${resetsAt}`,
                retryAfterSeconds: Math.max(1, resetsIn),
                rateLimit: `"tokens";r=0;t=${Math.max(1, resetsIn)}`,
                rateLimitPolicy: `"tokens";q=${quota};w=86400`
              })
            )
          }
        }
      })

    /** The question asked and its answer queued; the ids of both. */
    const ask = (
      caller: Caller,
      sessionId: string,
      request: Omit<SendChatMessageRequest, "stream">
    ): Effect.Effect<{ readonly userMessageId: string; readonly answerId: string }, NotFound | Conflict | ValidationFailed | RateLimited> =>
      Effect.gen(function* () {
        const model = request.model ?? answerer.models[0]
        if (!answerer.models.includes(model)) {
          return yield* Effect.fail(rejected("model", `Expected one of the configured models: ${answerer.models.join(", ")}`))
        }
        yield* withinBudgets(caller)
        const begun = yield* repo.begin(caller, sessionId, placementOf(request.parent_message_id), request.message, model, (answerId) =>
          conversation(sessionId)
            .RunTurn(
              {
                message_id: answerId,
                role: caller.role,
                ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
                ...(request.max_tokens === undefined ? {} : { max_tokens: request.max_tokens }),
                ...(request.include_citations === undefined ? {} : { include_citations: request.include_citations })
              },
              { discard: true }
            )
            .pipe(Effect.orDie)
        )
        switch (begun._tag) {
          case "NoSession":
            return yield* Effect.fail(sessionNotFound())
          case "Generating":
            return yield* Effect.fail(
              new Conflict({ message: `This session is answering message ${begun.messageId}: wait for it to end, or stop it` })
            )
          case "BadParent":
            return yield* Effect.fail(rejected("parent_message_id", "Expected an assistant message of this session"))
        }
        yield* wake
        return { userMessageId: begun.userMessageId, answerId: begun.answerId }
      })

    const send = (
      caller: Caller,
      sessionId: string,
      request: SendChatMessageRequest
    ): Effect.Effect<
      HttpServerResponse.HttpServerResponse | ChatAnswer,
      NotFound | Conflict | ValidationFailed | RateLimited | BadGateway | ServiceUnavailable
    > =>
      Effect.flatMap(
        ask(caller, sessionId, request),
        ({
          answerId,
          userMessageId
        }): Effect.Effect<HttpServerResponse.HttpServerResponse | ChatAnswer, NotFound | BadGateway | ServiceUnavailable> =>
          request.stream === false
            ? completeAnswer(caller, sessionId, userMessageId, answerId)
            : Effect.succeed(eventStream(caller, answerId, 0))
      )

    /** The events of an answer of the caller's after `afterSeq`, then live ones; NotFound when they are not kept (any more). */
    const answerEvents = (caller: Caller, sessionId: string, messageId: string, afterSeq: number) =>
      Effect.gen(function* () {
        const state = yield* repo.answerState(caller, sessionId, messageId)
        if (state === undefined || state.role !== "assistant") return yield* Effect.fail(messageNotFound())
        if (yield* repo.eventsExpired(messageId)) {
          return yield* Effect.fail(new NotFound({ message: "This answer's events are no longer kept: read it from its session" }))
        }
        return events.follow(messageId, afterSeq).pipe(readableBy(caller))
      })

    /** The answer's events after `lastEventId`, then live ones, as a stream response. */
    const follow = (caller: Caller, sessionId: string, messageId: string, lastEventId: string | undefined) =>
      // An id this stream did not issue replays it from the start: the client tells events apart by their ids.
      Effect.map(
        answerEvents(caller, sessionId, messageId, lastEventId !== undefined && /^[0-9]{1,9}$/.test(lastEventId) ? Number(lastEventId) : 0),
        (stream) => sseResponse(withHeartbeat(stream.pipe(Stream.map(framed))))
      )

    const stop = (caller: Caller, sessionId: string, messageId: string) =>
      Effect.gen(function* () {
        const state = yield* repo.answerState(caller, sessionId, messageId)
        if (state === undefined || state.role !== "assistant") return yield* Effect.fail(messageNotFound())
        const requested = state.status === "generating" && (yield* events.requestStop(messageId))
        if (!requested) return yield* Effect.fail(new Conflict({ message: `This answer has already ended (${state.status})` }))
      })

    return { ask, answerEvents, send, follow, stop } as const
  })
}) {
  static readonly layer = Layer.effect(this, this.make).pipe(Layer.provide([ChatRunsRepo.layer, RunEvents.layer, ChatSessions.layer]))
}
