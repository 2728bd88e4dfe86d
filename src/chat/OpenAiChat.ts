/**
 * The Answerer over any OpenAI-compatible Chat Completions endpoint with streaming: OpenAI,
 * Ollama, vLLM, llama.cpp server, LiteLLM. `POST {baseUrl}/chat/completions` with `stream: true`
 * and `stream_options.include_usage`, read as server-sent events (`data:` lines, `[DONE]` last).
 *
 * Before the first token, a 429, a 408, a 5xx, no connection or a connection that breaks is
 * tried again, with exponential backoff and jitter or after the Retry-After the provider asks
 * for, up to `maxRetries` times: the client has seen nothing yet. After the first token nothing
 * is tried again (the tokens sent cannot be taken back): a broken stream or a stall is
 * ProviderUnavailable (asking again may succeed), a malformed chunk ProviderProtocol. Three bounds: the first token (connecting included), the silence
 * between two chunks, and the whole answer.
 *
 * Each request lives in the answer stream's scope: interrupting the stream's fiber aborts it,
 * and the provider sees the connection close (and stops generating, where it checks).
 *
 * The API key goes in the Authorization header and nowhere else; a provider's message that
 * quotes it is cleaned before it reaches a reason.
 */
import { Cause, Data, Duration, Effect, Exit, Random, Redacted, Scope, Stream } from "effect"
import { HttpClient, HttpClientRequest } from "effect/http"
import * as Pull from "effect/Pull"
import { countTokens } from "../indexing/Chunker.ts"
import {
  type AnswerError,
  type AnswererShape,
  type AnswerPart,
  type AnswerRequest,
  type ConversationTurn,
  type FinishReason,
  ProviderProtocol,
  ProviderRejected,
  ProviderUnavailable,
  textDelta
} from "./Answerer.ts"
import { type ChatMessage, groundedMessages, rewriteMessages } from "./GroundedPrompt.ts"
import { describeCause, describeUrl, providerMessage, retryAfterMs } from "../providers/ProviderReplies.ts"

export interface OpenAiChatOptions {
  /** The API root, `/chat/completions` is appended: https://api.openai.com/v1, http://localhost:11434/v1. */
  readonly baseUrl: string
  /** Sent as `Authorization: Bearer …`; local servers usually need none. */
  readonly apiKey?: Redacted.Redacted | undefined
  /** The allowlist; the first is the default. */
  readonly models: readonly [string, ...Array<string>]
  /** From sending the request to the first token, connecting included. Default 30 seconds. */
  readonly firstTokenTimeout?: Duration.Input | undefined
  /** The longest silence between two chunks once the answer has started. Default 30 seconds. */
  readonly idleTimeout?: Duration.Input | undefined
  /** The whole answer, retries included. Default 5 minutes. */
  readonly totalTimeout?: Duration.Input | undefined
  /** Further attempts before the first token. Default 3 (so 4 attempts in all). */
  readonly maxRetries?: number | undefined
  /** The first backoff; each retry doubles it, with jitter. Default 500 millis. */
  readonly retryBaseDelay?: Duration.Input | undefined
  /** The longest wait between attempts, Retry-After included. Default 10 seconds. */
  readonly retryMaxDelay?: Duration.Input | undefined
}

/** What one attempt failed with when another may succeed. */
class Retryable extends Data.TaggedError("Retryable")<{ readonly reason: string; readonly retryAfterMs?: number | undefined }> {}

/** The response body broke off (a reset, an abort): a retry before the first token, ProviderProtocol after. */
class StreamBroken extends Data.TaggedError("StreamBroken")<{ readonly reason: string }> {}

const finishReasonOf = (providerReason: string | undefined): FinishReason =>
  providerReason === "length" ? "length" : providerReason === "content_filter" ? "content_filter" : "stop"

const isRecord = (value: unknown): value is Record<string, any> => typeof value === "object" && value !== null && !Array.isArray(value)

/** The body of one Chat Completions request. */
interface CompletionRequest {
  readonly model: string
  readonly messages: ReadonlyArray<ChatMessage>
  readonly temperature?: number | undefined
  readonly maxTokens?: number | undefined
}

/**
 * The answerer over `options` (import this module as `OpenAiChat`: `OpenAiChat.make`). Fails
 * with ProviderRejected when the options cannot work; it asks the provider nothing until used.
 */
export const make = (options: OpenAiChatOptions): Effect.Effect<AnswererShape, ProviderRejected, HttpClient.HttpClient> =>
  Effect.gen(function* () {
    const endpoint = `${options.baseUrl.replace(/\/+$/, "")}/chat/completions`
    if (!URL.canParse(endpoint) || !/^https?:$/.test(new URL(endpoint).protocol)) {
      return yield* new ProviderRejected({
        reason: "the chat provider's base URL must be an http(s) URL such as https://api.openai.com/v1"
      })
    }
    const maxRetries = options.maxRetries ?? 3
    if (!Number.isInteger(maxRetries) || maxRetries < 0) {
      return yield* new ProviderRejected({ reason: `maxRetries must be a whole number, got ${maxRetries}` })
    }
    const where = describeUrl(endpoint)
    const firstTokenMs = Duration.toMillis(options.firstTokenTimeout ?? "30 seconds")
    const idleMs = Duration.toMillis(options.idleTimeout ?? "30 seconds")
    const totalMs = Duration.toMillis(options.totalTimeout ?? "5 minutes")
    const baseDelayMs = Duration.toMillis(options.retryBaseDelay ?? "500 millis")
    const maxDelayMs = Duration.toMillis(options.retryMaxDelay ?? "10 seconds")
    const models = options.models
    const secret = options.apiKey === undefined ? undefined : Redacted.value(options.apiKey)
    // A provider may quote the key back ("Incorrect API key provided: sk-…"): never pass it on.
    const clean = (text: string) => (secret !== undefined && secret !== "" ? text.split(secret).join("[redacted]") : text)
    const client = yield* HttpClient.HttpClient

    /** An answer for a non-2xx status: retried, or refused with what to fix. */
    const statusFailure = (status: number, body: string, retryAfter: string | undefined): Retryable | ProviderRejected => {
      const said = clean(providerMessage(body))
      const detail = said === "" ? `${status}` : `${status}: ${said}`
      if (status === 429 && /insufficient_quota/.test(body)) {
        return new ProviderRejected({
          status,
          reason: "the chat provider says the account has run out of quota (429 insufficient_quota): add credit or raise the limit"
        })
      }
      if (status === 429 || status === 408 || status >= 500) {
        return new Retryable({
          reason: status === 429 ? `the chat provider is rate limiting (${detail})` : `the chat provider failed (${detail})`,
          retryAfterMs: retryAfterMs(retryAfter, Date.now())
        })
      }
      const quoted = said === "" ? "" : ` (the provider said: ${said})`
      switch (status) {
        case 401:
          return new ProviderRejected({
            status,
            reason:
              (options.apiKey === undefined
                ? "the chat provider wants an API key (401): configure one"
                : "the chat provider refused the API key (401): set a valid key") + quoted
          })
        case 404:
          return new ProviderRejected({
            status,
            reason: `the chat provider has no such endpoint or model (404) at ${where}: check the base URL (it usually ends in /v1) and the model names${quoted}`
          })
        default:
          return new ProviderRejected({ status, reason: `the chat provider rejected the request (${status})${quoted}` })
      }
    }

    /**
     * The answer's parts, one SSE event at a time, from a response body pulled in the current
     * scope. `idle` bounds each wait for bytes once `answering` is set.
     */
    const makeReader = (body: Stream.Stream<Uint8Array, unknown>, request: CompletionRequest, deadline: number) =>
      Effect.gen(function* () {
        const pullLines = yield* Stream.toPull(body.pipe(Stream.decodeText, Stream.splitLines))
        let lines: ReadonlyArray<string> = []
        let next = 0
        let data: Array<string> = []
        let providerFinish: string | undefined
        let usage: { promptTokens: number; completionTokens: number } | undefined
        const written: Array<string> = []
        let finished = false
        const state = { answering: false }

        /** The next line, undefined at the end of the body. */
        const nextLine: Effect.Effect<string | undefined, StreamBroken | ProviderUnavailable> = Effect.suspend(() => {
          if (next < lines.length) return Effect.succeed(lines[next++]!)
          const pull = pullLines.pipe(
            Effect.map((chunk) => {
              lines = chunk
              next = 1
              return chunk[0] as string | undefined
            }),
            Pull.catchDone(() => Effect.succeed(undefined)),
            Effect.mapError(
              (error: any) => new StreamBroken({ reason: clean(describeCause(error?.reason?.cause ?? error?.cause ?? error)) })
            )
          )
          if (!state.answering) return pull
          const remaining = deadline - Date.now()
          const bound = Math.max(0, Math.min(idleMs, remaining))
          return pull.pipe(
            Effect.timeoutOrElse({
              duration: Duration.millis(bound),
              orElse: () =>
                Effect.fail(
                  new ProviderUnavailable({
                    reason:
                      bound < idleMs
                        ? `the chat provider did not finish the answer within ${Duration.format(Duration.millis(totalMs))}`
                        : `the chat provider sent nothing for ${Duration.format(Duration.millis(idleMs))} in the middle of the answer`
                  })
                )
            })
          )
        })

        const finish = (): AnswerPart => {
          finished = true
          const completion = written.join("")
          return {
            _tag: "Finish",
            reason: finishReasonOf(providerFinish),
            model: request.model,
            usage: usage ?? {
              promptTokens: countTokens(request.messages.map((message) => message.content).join("\n")),
              completionTokens: countTokens(completion)
            }
          }
        }

        const malformed = (what: string) => new ProviderProtocol({ reason: `the chat provider sent a malformed chunk: ${what}` })

        /** The parts of one event's data. */
        const handle = (payload: string): Effect.Effect<Array<AnswerPart>, ProviderProtocol> => {
          if (payload.trim() === "[DONE]") return Effect.succeed([finish()])
          let chunk: unknown
          try {
            chunk = JSON.parse(payload)
          } catch {
            return Effect.fail(malformed(`it is not JSON (${JSON.stringify(payload.slice(0, 80))})`))
          }
          if (!isRecord(chunk)) return Effect.fail(malformed("it is not a JSON object"))
          if (chunk.error !== undefined && chunk.error !== null) {
            const said = clean(providerMessage(payload))
            return Effect.fail(
              new ProviderProtocol({ reason: `the chat provider reported an error in the stream${said === "" ? "" : `: ${said}`}` })
            )
          }
          const parts: Array<AnswerPart> = []
          const choices = chunk.choices ?? []
          if (!Array.isArray(choices)) return Effect.fail(malformed("choices is not an array"))
          const choice = choices.find((candidate) => isRecord(candidate) && (candidate.index ?? 0) === 0)
          if (choice !== undefined) {
            const delta = choice.delta ?? {}
            if (!isRecord(delta)) return Effect.fail(malformed("choices[0].delta is not an object"))
            const content = delta.content
            if (content !== undefined && content !== null && typeof content !== "string") {
              return Effect.fail(malformed("choices[0].delta.content is not a string"))
            }
            if (typeof content === "string" && content !== "") {
              written.push(content)
              parts.push(textDelta(content))
            }
            if (typeof choice.finish_reason === "string") providerFinish = choice.finish_reason
          }
          if (isRecord(chunk.usage)) {
            const { completion_tokens, prompt_tokens } = chunk.usage
            if (typeof prompt_tokens !== "number" || typeof completion_tokens !== "number") {
              return Effect.fail(malformed("usage has no prompt_tokens and completion_tokens"))
            }
            usage = { promptTokens: prompt_tokens, completionTokens: completion_tokens }
          }
          return Effect.succeed(parts)
        }

        /** The next parts, at least one; Done after the Finish. */
        const pull: Effect.Effect<
          readonly [AnswerPart, ...Array<AnswerPart>],
          StreamBroken | ProviderUnavailable | ProviderProtocol | Cause.Done
        > = Effect.gen(function* () {
          while (!finished) {
            const line = yield* nextLine
            if (line === undefined || line === "") {
              if (data.length > 0) {
                const parts = yield* handle(data.join("\n"))
                data = []
                if (parts.length > 0) return parts as [AnswerPart, ...Array<AnswerPart>]
              }
              if (line !== undefined || finished) continue
              // The body ended without [DONE]: complete if the model had finished, broken if not.
              if (providerFinish !== undefined) return [finish()] as const
              return yield* new StreamBroken({ reason: "the stream ended before the answer was finished" })
            }
            if (line.startsWith("data:")) data.push(line.slice(line.startsWith("data: ") ? 6 : 5))
            // Comments (`: keep-alive`), `event:`, `id:` and `retry:` lines carry nothing here.
          }
          return yield* Cause.done()
        })
        return { pull, state }
      })

    /** One attempt: the request, its status, and the answer up to its first part. */
    const connect = (request: CompletionRequest, deadline: number) =>
      Effect.gen(function* () {
        const body = {
          model: request.model,
          messages: request.messages,
          stream: true,
          stream_options: { include_usage: true },
          ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
          ...(request.maxTokens === undefined ? {} : { max_tokens: request.maxTokens })
        }
        const httpRequest = HttpClientRequest.post(endpoint).pipe(
          HttpClientRequest.setHeader("accept", "text/event-stream"),
          HttpClientRequest.bodyJsonUnsafe(body),
          options.apiKey === undefined ? (r) => r : HttpClientRequest.bearerToken(options.apiKey)
        )
        const response = yield* client
          .execute(httpRequest)
          .pipe(
            Effect.mapError((error) =>
              error.reason._tag === "InvalidUrlError"
                ? new ProviderRejected({ reason: `the chat provider's URL ${where} is not valid` })
                : new Retryable({ reason: `could not reach the chat provider at ${where} (${clean(describeCause(error.reason.cause))})` })
            )
          )
        if (response.status < 200 || response.status >= 300) {
          const text = yield* response.text.pipe(Effect.orElseSucceed(() => ""))
          return yield* statusFailure(response.status, text, response.headers["retry-after"])
        }
        const reader = yield* makeReader(response.stream, request, deadline)
        const first = yield* reader.pull.pipe(
          Pull.catchDone(() => Effect.fail(new StreamBroken({ reason: "the stream ended before the answer started" }))),
          Effect.mapError((error) =>
            error._tag === "StreamBroken"
              ? new Retryable({ reason: `the connection to the chat provider broke before the answer started (${error.reason})` })
              : error
          )
        )
        reader.state.answering = true
        return { first, pull: reader.pull }
      }).pipe(
        Effect.timeoutOrElse({
          duration: Duration.millis(Math.max(0, Math.min(firstTokenMs, deadline - Date.now()))),
          orElse: () =>
            Effect.fail(
              new ProviderUnavailable({
                reason: `the chat provider sent no answer within ${Duration.format(Duration.millis(Math.min(firstTokenMs, totalMs)))}`
              })
            )
        })
      )

    /** Attempts in scopes of their own under the stream's, so that a failed one is closed at once. */
    const connectWithRetries = (request: CompletionRequest, deadline: number, scope: Scope.Scope) => {
      const tryFrom = (
        attemptNumber: number
      ): Effect.Effect<Effect.Success<ReturnType<typeof attemptIn>>, ProviderUnavailable | ProviderRejected | ProviderProtocol> =>
        attemptIn(attemptNumber).pipe(
          Effect.catchTag("Retryable", (failure) =>
            Effect.gen(function* () {
              if (attemptNumber > maxRetries) {
                return yield* new ProviderUnavailable({
                  reason: `${failure.reason}; gave up after ${attemptNumber} attempt${attemptNumber === 1 ? "" : "s"}`
                })
              }
              const backoff = Math.min(maxDelayMs, baseDelayMs * 2 ** (attemptNumber - 1))
              // Exponential, then a random point in its upper half, so that retries spread out.
              const delay = failure.retryAfterMs ?? backoff * (0.5 + (yield* Random.next) / 2)
              if (delay > maxDelayMs || Date.now() + delay >= deadline) {
                return yield* new ProviderUnavailable({
                  reason: `${failure.reason} and asks to wait ${Math.ceil(delay / 1000)} s, longer than this answer may wait: try again later`
                })
              }
              yield* Effect.logDebug("chat request failed before the first token, retrying").pipe(
                Effect.annotateLogs({ reason: failure.reason, attempt: attemptNumber, delay_ms: Math.round(delay) })
              )
              yield* Effect.sleep(Duration.millis(delay))
              return yield* tryFrom(attemptNumber + 1)
            })
          )
        )
      const attemptIn = (_attemptNumber: number) =>
        Effect.gen(function* () {
          const attemptScope = yield* Scope.fork(scope)
          return yield* connect(request, deadline).pipe(
            Scope.provide(attemptScope),
            Effect.onError(() => Scope.close(attemptScope, Exit.void))
          )
        })
      return tryFrom(1)
    }

    const complete = (request: CompletionRequest): Stream.Stream<AnswerPart, AnswerError> =>
      Stream.unwrap(
        Effect.gen(function* () {
          const deadline = Date.now() + totalMs
          const { first, pull } = yield* connectWithRetries(request, deadline, yield* Effect.scope)
          const rest = pull.pipe(
            Effect.mapError((error) =>
              error._tag === "StreamBroken"
                ? // A connection lost mid-answer is passing: asking again may well succeed.
                  new ProviderUnavailable({ reason: `the chat provider's stream broke in the middle of the answer (${error.reason})` })
                : error
            )
          )
          return Stream.concat(Stream.fromArray(first), Stream.fromPull(Effect.succeed(rest)))
        })
      ).pipe(Stream.withSpan("Answerer.answer", { attributes: { "chat.model": request.model } }))

    const refuseModel = (model: string) =>
      new ProviderRejected({ reason: `the model "${model}" is not one of the configured models (${models.join(", ")})` })

    const answer = (request: AnswerRequest): Stream.Stream<AnswerPart, AnswerError> => {
      const model = request.options?.model ?? models[0]
      if (!models.includes(model)) return Stream.fail(refuseModel(model))
      return complete({
        model,
        messages: groundedMessages(request.question, request.history, request.sources),
        temperature: request.options?.temperature,
        maxTokens: request.options?.maxTokens
      })
    }

    const rewriteQuestion = (history: ReadonlyArray<ConversationTurn>, question: string): Effect.Effect<string, AnswerError> =>
      history.length === 0
        ? Effect.succeed(question)
        : complete({ model: models[0], messages: rewriteMessages(history, question), temperature: 0, maxTokens: 200 }).pipe(
            Stream.runFold(
              () => "",
              (text, part) => (part._tag === "TextDelta" ? text + part.text : text)
            ),
            Effect.map((rewritten) => {
              const line = rewritten.trim().replace(/^["“]|["”]$/g, "")
              return line === "" ? question : line
            })
          )

    return { models, answer, rewriteQuestion } satisfies AnswererShape
  })
