/**
 * The language-model layer of chat: a question, the conversation so far and the numbered sources
 * retrieval found in, a stream of text deltas and one final part out. Two implementations: the
 * extractive answerer (offline, deterministic, no model; ExtractiveAnswererLive) and any
 * OpenAI-compatible Chat Completions endpoint with streaming (OpenAI, Ollama, vLLM, llama.cpp
 * server; OpenAiChatLive). `layers/LanguageModelLive.ts` picks one from the configuration.
 *
 * The answer cites sources as `[n]`; checking every number against the sources shown is the
 * caller's work (a model may invent one). The caller also refuses a model outside `models`
 * before it calls (a 422 for the client); the answerer refuses one too, as ProviderRejected.
 */
import { Context, type Effect, Schema, type Stream } from "effect"

/** One earlier message of the conversation. */
export interface ConversationTurn {
  readonly role: "user" | "assistant"
  readonly text: string
}

/** A retrieved chunk as shown to the model, cited as `[n]`. */
export interface NumberedSource {
  /** 1, 2, 3, … as the answer cites it. */
  readonly n: number
  readonly documentId: string
  readonly chunkId: string
  readonly title: string
  readonly text: string
  readonly page?: number | undefined
}

export interface AnswerOptions {
  /** One of `models`; unset: the first (the default). */
  readonly model?: string | undefined
  /** 0 to 2; unset: the provider's default. The extractive answerer has no use for it. */
  readonly temperature?: number | undefined
  /** 1 to 4,000: the longest answer; past it the answer ends with finish reason `length`. */
  readonly maxTokens?: number | undefined
}

export interface AnswerRequest {
  readonly question: string
  readonly history: ReadonlyArray<ConversationTurn>
  readonly sources: ReadonlyArray<NumberedSource>
  readonly options?: AnswerOptions | undefined
}

/**
 * How an answer ended: `stop`, complete; `length`, cut at `maxTokens`; `content_filter`, the
 * provider withheld the rest. (A user's stop is the caller's to record: an answerer's stream
 * simply ends when its fiber is interrupted.)
 */
export type FinishReason = "stop" | "length" | "content_filter"

/** As the provider reports them; estimated with the chunker's token count when it reports none. */
export interface TokenUsage {
  readonly promptTokens: number
  readonly completionTokens: number
}

/** What an answer's stream carries: text deltas, then exactly one Finish, then nothing. */
export type AnswerPart =
  | { readonly _tag: "TextDelta"; readonly text: string }
  | { readonly _tag: "Finish"; readonly reason: FinishReason; readonly usage: TokenUsage; readonly model: string }

export const textDelta = (text: string): AnswerPart => ({ _tag: "TextDelta", text })

/**
 * The provider could not answer now: a 429, a 5xx, no connection, or a timeout (first token,
 * idle between chunks, or the whole answer). Trying again later may succeed. Before the first
 * token the OpenAI-compatible answerer has already retried; after it, nothing is retried (the
 * tokens sent cannot be taken back).
 */
export class ProviderUnavailable extends Schema.TaggedError<ProviderUnavailable>()("ProviderUnavailable", {
  reason: Schema.String
}) {
  get retryable(): boolean {
    return true
  }
  override get message() {
    return this.reason
  }
}

/**
 * The provider refused the request (a 4xx other than 429: a wrong key, an unknown model, a
 * prompt too long), or the model is not in the allowlist. Retrying cannot help until someone
 * fixes what `reason` names.
 */
export class ProviderRejected extends Schema.TaggedError<ProviderRejected>()("ProviderRejected", {
  reason: Schema.String,
  /** The provider's status; absent when the answerer refused without asking. */
  status: Schema.optional(Schema.Number)
}) {
  get retryable(): boolean {
    return false
  }
  override get message() {
    return this.reason
  }
}

/**
 * The provider's stream is not Chat Completions streaming: a chunk that is not JSON or has not
 * the shape, an error object in the stream, or a stream that broke or ended before the answer did.
 */
export class ProviderProtocol extends Schema.TaggedError<ProviderProtocol>()("ProviderProtocol", {
  reason: Schema.String
}) {
  get retryable(): boolean {
    return false
  }
  override get message() {
    return this.reason
  }
}

export type AnswerError = ProviderUnavailable | ProviderRejected | ProviderProtocol

export interface AnswererShape {
  /** The model allowlist, the default first. A request naming another model is refused. */
  readonly models: readonly [string, ...Array<string>]
  /** The answer as it is written: TextDelta parts, then one Finish. Interrupting it aborts the provider's request. */
  readonly answer: (request: AnswerRequest) => Stream.Stream<AnswerPart, AnswerError>
  /**
   * The question made standalone with the conversation so far ("and for Linux?" → "How do I
   * install Basalt on Linux?"), for retrieval. Unchanged with no history, and always from the
   * extractive answerer (it has no model to rewrite with).
   */
  readonly rewriteQuestion: (history: ReadonlyArray<ConversationTurn>, question: string) => Effect.Effect<string, AnswerError>
}

export class Answerer extends Context.Service<Answerer, AnswererShape>()("basalt/Answerer") {}
