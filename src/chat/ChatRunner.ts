/**
 * One answer's run, as the conversation entity performs it: generate the turn (ChatTurn), keep
 * its events in the database as they come (RunEvents, tokens a few at a time), and record the
 * answer (ChatTurnRepo.finish, one transaction) before the final event, so that whoever sees
 * `message_end` finds the answer stored. A stop requested from anywhere interrupts the
 * generation (and with it the provider's request): the answer is kept as `stopped` with its text
 * so far. The run never fails: whatever goes wrong ends the answer as `failed` with an `error`
 * event, so that the entity's message completes and is not run again.
 */
import { Context, Duration, Effect, Layer, Option, Sink, Stream } from "effect"
import { roleRank } from "../accounts/Accounts.ts"
import type { Caller } from "../accounts/SessionsRepo.ts"
import { AppConfig } from "../config/AppConfig.ts"
import { countTokens } from "../indexing/Chunker.ts"
import type { FinishReason } from "./Answerer.ts"
import type { Citation } from "./Chat.ts"
import type { ChatMessageEndEvent, ChatMessageStartEvent } from "./ChatAnswers.ts"
import { ChatRunsRepo } from "./ChatRunsRepo.ts"
import { ChatTurn, type MessageEnd, type RetrievedSource, type TurnError, type TurnEvent } from "./ChatTurn.ts"
import { ChatTurnRepo } from "./ChatTurnRepo.ts"
import { type NewRunEvent, RunEvents } from "./RunEvents.ts"

export interface RunRequest {
  readonly message_id: string
  readonly role: "admin" | "curator" | "basic"
  readonly temperature?: number | undefined
  readonly max_tokens?: number | undefined
  /** Absent: true. */
  readonly include_citations?: boolean | undefined
}

/**
 * Tokens are kept a few at a time: at most this many events, or this long, per write. The window
 * is what a token after the first may wait before anyone sees it.
 */
const batchSize = 64
const batchWindow = "10 millis"

const internalError = (message: string): TurnError => ({ code: "internal", message, retryable: true })

/** Consecutive tokens of a batch as one event: fewer rows and frames, the same text. */
const mergeTokens = (events: ReadonlyArray<NewRunEvent>): Array<NewRunEvent> =>
  events.reduce<Array<NewRunEvent>>((merged, event) => {
    const last = merged.at(-1)
    if (event.type === "token" && last?.type === "token") {
      merged[merged.length - 1] = {
        type: "token",
        data: { text: (last.data as { text: string }).text + (event.data as { text: string }).text }
      }
    } else merged.push(event)
    return merged
  }, [])

export class ChatRunner extends Context.Service<ChatRunner>()("basalt/ChatRunner", {
  make: Effect.gen(function* () {
    const repo = yield* ChatRunsRepo
    const turns = yield* ChatTurn
    const turnRepo = yield* ChatTurnRepo
    const events = yield* RunEvents
    const config = yield* AppConfig
    // The provider's own bounds end a run well before this; it is the bound of last resort.
    const runBound = Duration.sum(config.chat.totalTimeout, Duration.seconds(30))

    const run = (request: RunRequest): Effect.Effect<void> =>
      Effect.gen(function* () {
        const answerId = request.message_id
        const row = yield* repo.runOf(answerId)
        // Gone with its session, or finished by an earlier delivery of this message.
        if (row === undefined || row.status !== "generating") return
        // Its followers in this process take its events from memory until it ends.
        yield* events.generating(answerId)

        // Every event written, and what the answer has said so far.
        let content = ""
        let shown: ReadonlyArray<RetrievedSource> = []
        const citations: Array<Citation> = []
        let end: MessageEnd | undefined
        let failure: TurnError | undefined

        const finish = (
          status: "complete" | "stopped" | "failed",
          terminal: NewRunEvent,
          finishReason: FinishReason | "stopped" | "error",
          usage: MessageEnd["usage"] | null,
          invalid: number
        ) =>
          Effect.andThen(
            turnRepo.finish({
              assistantMessageId: answerId,
              content,
              status,
              finishReason,
              usage,
              model: end?.model ?? row.model,
              metadata: { invalid_citations: invalid },
              shown: shown.map((source) => ({
                position: source.number,
                document_id: source.document_id,
                chunk_id: source.chunk_id,
                revision: source.revision
              })),
              citations: status === "failed" ? [] : citations
            }),
            events.append(answerId, [terminal])
          )

        const fail = (error: TurnError) => finish("failed", { type: "error", data: error }, "error", null, 0)

        const { earlier, history } = row
        if (earlier.events > 0) {
          // A run cut short by a process that stopped: its tokens were sent already, so it is not run again.
          content = earlier.content
          return yield* fail(internalError("The server generating this answer stopped before it ended; ask again"))
        }
        if (!row.active) return yield* fail({ code: "internal", message: "The account that asked is deactivated", retryable: false })

        // As the asker was when asking, and no more than the owner is now.
        const caller: Caller = {
          id: row.owner_id,
          email: row.email,
          display_name: row.display_name,
          role: roleRank[request.role] < roleRank[row.role] ? request.role : row.role,
          active: row.active,
          created_at: row.owner_created_at,
          session_id: null
        }

        const toStored = (event: TurnEvent): ReadonlyArray<NewRunEvent> => {
          switch (event._tag) {
            case "message_start":
              shown = event.data.retrieved
              return [
                {
                  type: "message_start",
                  data: {
                    session_id: row.session_id,
                    user_message_id: row.user_message_id,
                    message_id: answerId,
                    retrieved: event.data.retrieved
                  } satisfies typeof ChatMessageStartEvent.Encoded
                }
              ]
            case "message_end":
              end = event.data
              return []
            case "error":
              failure = event.data
              return []
            default:
              return [{ type: event._tag, data: event.data }]
          }
        }
        // What is stored is what the answer has said: the text and citations advance with each write.
        const stored = (batch: ReadonlyArray<NewRunEvent>) =>
          Effect.andThen(events.append(answerId, mergeTokens(batch)), () =>
            Effect.sync(() => {
              for (const event of batch) {
                if (event.type === "token") content += (event.data as { text: string }).text
                if (event.type === "citation") citations.push(event.data as Citation)
              }
            })
          )

        const generation = Effect.scoped(
          Effect.gen(function* () {
            let rest = turns
              .generate({
                caller,
                scope: row.scope,
                question: row.question,
                history,
                includeCitations: request.include_citations ?? true,
                options: { model: row.model ?? undefined, temperature: request.temperature, maxTokens: request.max_tokens }
              })
              .pipe(Stream.flatMap((event) => Stream.fromIterable(toStored(event))))
            // message_start and the first token are written as they come; only later tokens wait for company.
            for (let urgent = 0; urgent < 2; urgent++) {
              const [head, tail] = yield* Stream.peel(rest, Sink.take<NewRunEvent>(1))
              if (head.length > 0) yield* stored(head)
              rest = tail
            }
            yield* rest.pipe(Stream.groupedWithin(batchSize, batchWindow), Stream.runForEach(stored))
          })
        )

        const outcome = yield* Effect.raceFirst(
          Effect.as(generation, "generated" as const),
          Effect.as(events.stopRequested(answerId), "stopped" as const)
        ).pipe(Effect.timeoutOption(runBound))

        if (Option.isNone(outcome)) return yield* fail(internalError(`The answer did not end within ${Duration.format(runBound)}`))
        if (outcome.value === "stopped") {
          const usage = { prompt_tokens: 0, completion_tokens: countTokens(content) }
          return yield* finish(
            "stopped",
            {
              type: "message_end",
              data: {
                message_id: answerId,
                content,
                finish_reason: "stopped",
                usage,
                model: row.model ?? "",
                invalid_citations: 0
              } satisfies typeof ChatMessageEndEvent.Encoded
            },
            "stopped",
            usage,
            0
          )
        }
        if (end !== undefined) {
          const done = end
          return yield* finish(
            "complete",
            { type: "message_end", data: { message_id: answerId, ...done, content } },
            done.finish_reason,
            done.usage,
            done.invalid_citations
          )
        }
        return yield* fail(failure ?? internalError("The answer ended without a result"))
      }).pipe(
        Effect.scoped,
        Effect.catchCause((cause) =>
          Effect.andThen(
            Effect.logError("chat: a run failed", cause),
            // Recorded if at all possible; otherwise the message's next delivery ends it.
            Effect.ignore(
              Effect.andThen(
                turnRepo.finish({
                  assistantMessageId: request.message_id,
                  content: "",
                  status: "failed",
                  finishReason: "error",
                  usage: null,
                  model: null,
                  metadata: { invalid_citations: 0 },
                  shown: [],
                  citations: []
                }),
                events.append(request.message_id, [{ type: "error", data: internalError("The answer failed on the server; ask again") }])
              )
            )
          )
        ),
        Effect.withSpan("ChatRunner.run", { attributes: { "chat.message.id": request.message_id } })
      )

    return { run } as const
  })
}) {
  static readonly layer = Layer.effect(this, this.make).pipe(Layer.provide([ChatRunsRepo.layer, ChatTurn.layer, ChatTurnRepo.layer]))
}
