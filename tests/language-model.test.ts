/**
 * The language-model layer of chat: the OpenAI-compatible answerer against a real HTTP server
 * that streams real Chat Completions chunks (tests/support/fakeChatServer.ts), and the embedded
 * extractive answerer. No database.
 */
import { ConfigProvider, Effect, Exit, Fiber, Layer, Redacted, Result, Stream } from "effect"
import { FetchHttpClient } from "effect/http"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { AppConfig, describeConfigError, parseAppConfig } from "../src/config/AppConfig.ts"
import { LanguageModelLive } from "../layers/LanguageModelLive.ts"
import {
  type AnswerError,
  Answerer,
  type AnswererShape,
  type AnswerPart,
  type AnswerRequest,
  type NumberedSource,
  ProviderProtocol,
  ProviderRejected,
  ProviderUnavailable
} from "../src/chat/Answerer.ts"
import * as ExtractiveAnswerer from "../src/chat/ExtractiveAnswerer.ts"
import * as OpenAiChat from "../src/chat/OpenAiChat.ts"
import { defaultAnswerTokens, type FakeChatServer, fakeChatModel, startFakeChatServer } from "./support/fakeChatServer.ts"

let fake: FakeChatServer
beforeAll(async () => {
  fake = await startFakeChatServer()
})
afterAll(() => fake.close())
afterEach(() => fake.reset())

const apiKey = Redacted.make("sk-test-chat-0123456789")

const sources: ReadonlyArray<NumberedSource> = [
  {
    n: 1,
    documentId: "doc-keys",
    chunkId: "chunk-keys-1",
    title: "Key rotation policy",
    text: "# Rotation\nAPI keys are rotated every 90 days by the security team. Rotation happens on the first Monday of the quarter.",
    page: 3
  },
  {
    n: 2,
    documentId: "doc-keys",
    chunkId: "chunk-keys-2",
    title: "Key rotation policy",
    text: "After rotation, old API keys keep working for one day. Then requests signed with them are refused."
  },
  {
    n: 3,
    documentId: "doc-lunch",
    chunkId: "chunk-lunch-1",
    title: "Canteen",
    text: "The canteen serves lunch from noon to two. Vegetarian dishes are marked green on the menu."
  }
]

const request = (overrides: Partial<AnswerRequest> = {}): AnswerRequest => ({
  question: "How often are API keys rotated?",
  history: [
    { role: "user", text: "Who looks after security?" },
    { role: "assistant", text: "The security team [1]." }
  ],
  sources,
  options: { model: fakeChatModel, temperature: 0.3, maxTokens: 256 },
  ...overrides
})

/** Options as a test wants them: fast retries and short bounds, so failures show in milliseconds. */
const optionsWith = (overrides: Partial<OpenAiChat.OpenAiChatOptions> = {}): OpenAiChat.OpenAiChatOptions => ({
  baseUrl: fake.baseUrl,
  apiKey,
  models: [fakeChatModel, "fake-chat-2"],
  firstTokenTimeout: "3 seconds",
  idleTimeout: "2 seconds",
  totalTimeout: "20 seconds",
  retryBaseDelay: "5 millis",
  retryMaxDelay: "5 seconds",
  ...overrides
})

const answererWith = (overrides: Partial<OpenAiChat.OpenAiChatOptions> = {}) =>
  Effect.runPromise(OpenAiChat.make(optionsWith(overrides)).pipe(Effect.provide(FetchHttpClient.layer)))

/** Every part until the stream ends, and how it ended. */
const collect = async (stream: Stream.Stream<AnswerPart, AnswerError>) => {
  const parts: Array<AnswerPart> = []
  const exit = await Effect.runPromiseExit(Stream.runForEach(stream, (part) => Effect.sync(() => parts.push(part))))
  const error = Exit.isFailure(exit) ? exit.cause.reasons.find((reason) => reason._tag === "Fail")?.error : undefined
  if (Exit.isFailure(exit) && error === undefined) throw new Error(`the stream died: ${String(exit.cause)}`)
  const text = parts.flatMap((part) => (part._tag === "TextDelta" ? [part.text] : [])).join("")
  const finish = parts.find((part) => part._tag === "Finish")
  return { parts, text, finish, error: error as AnswerError | undefined }
}

const waitFor = async (condition: () => boolean, timeoutMs = 5000) => {
  const start = performance.now()
  while (!condition()) {
    if (performance.now() - start > timeoutMs) throw new Error("condition not met in time")
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

describe("OpenAI-compatible chat", () => {
  it("streams deltas that join to the full answer, then the finish with the provider's usage", async () => {
    const answerer = await answererWith()
    const { error, finish, parts, text } = await collect(answerer.answer(request()))
    expect(error).toBeUndefined()
    expect(text).toBe(defaultAnswerTokens.join(""))
    expect(parts.filter((part) => part._tag === "TextDelta")).toHaveLength(defaultAnswerTokens.length)
    expect(parts.at(-1)).toBe(finish)
    expect(finish).toMatchObject({ _tag: "Finish", reason: "stop", model: fakeChatModel })
    expect(finish?._tag === "Finish" && finish.usage.completionTokens).toBe(defaultAnswerTokens.length)
    expect(finish?._tag === "Finish" && finish.usage.promptTokens).toBeGreaterThan(20)
  })

  it("sends the model, temperature, max_tokens, streaming options, key, and a prompt with the numbered sources", async () => {
    const answerer = await answererWith()
    await collect(answerer.answer(request({ options: { model: "fake-chat-2", temperature: 1.5, maxTokens: 99 } })))
    expect(fake.requests).toHaveLength(1)
    const [sent] = fake.requests
    expect(sent!.path).toBe("/v1/chat/completions")
    expect(sent!.headers.authorization).toBe(`Bearer ${Redacted.value(apiKey)}`)
    expect(sent!.body).toMatchObject({
      model: "fake-chat-2",
      temperature: 1.5,
      max_tokens: 99,
      stream: true,
      stream_options: { include_usage: true }
    })
    const messages: Array<{ role: string; content: string }> = sent!.body.messages
    expect(messages.map((message) => message.role)).toEqual(["system", "user", "assistant", "user"])
    const system = messages[0]!.content
    expect(system).toMatch(/only the numbered sources/)
    expect(system).toMatch(/\[1\]/)
    expect(system).toContain("[1] Key rotation policy (page 3)\n")
    expect(system).toContain("API keys are rotated every 90 days")
    expect(system).toContain("[2] Key rotation policy\nAfter rotation")
    expect(system).toContain("[3] Canteen\nThe canteen serves lunch")
    expect(system.indexOf("[1] Key")).toBeLessThan(system.indexOf("[2] Key"))
    expect(messages[1]!.content).toBe("Who looks after security?")
    expect(messages[2]!.content).toBe("The security team [1].")
    expect(messages[3]!.content).toBe("How often are API keys rotated?")
  })

  it("uses the first model of the allowlist by default, and refuses one outside it without asking", async () => {
    const answerer = await answererWith()
    expect(answerer.models).toEqual([fakeChatModel, "fake-chat-2"])
    await collect(answerer.answer(request({ options: {} })))
    expect(fake.requests[0]!.body.model).toBe(fakeChatModel)
    expect(fake.requests[0]!.body).not.toHaveProperty("temperature")
    expect(fake.requests[0]!.body).not.toHaveProperty("max_tokens")
    const refused = await collect(answerer.answer(request({ options: { model: "gpt-4o" } })))
    expect(refused.error).toBeInstanceOf(ProviderRejected)
    expect(refused.error?.retryable).toBe(false)
    expect(fake.requests).toHaveLength(1)
  })

  it("retries a 429 and a 503 before the first token, then streams the answer", async () => {
    fake.queue(
      { kind: "status", status: 429, headers: { "retry-after": "0" }, body: '{"error":{"message":"Rate limit reached"}}' },
      { kind: "status", status: 503, body: '{"error":{"message":"overloaded"}}' }
    )
    const answerer = await answererWith()
    const { error, finish, text } = await collect(answerer.answer(request()))
    expect(error).toBeUndefined()
    expect(text).toBe(defaultAnswerTokens.join(""))
    expect(finish).toMatchObject({ reason: "stop" })
    expect(fake.requests).toHaveLength(3)
  })

  it("honours Retry-After before trying again", async () => {
    fake.queue({ kind: "status", status: 429, headers: { "retry-after": "1" } })
    const answerer = await answererWith()
    const { error } = await collect(answerer.answer(request()))
    expect(error).toBeUndefined()
    expect(fake.requests).toHaveLength(2)
    expect(fake.requests[1]!.receivedAt - fake.requests[0]!.receivedAt).toBeGreaterThanOrEqual(990)
  })

  it("gives up after the bounded attempts with a retryable ProviderUnavailable", async () => {
    const failing = { kind: "status", status: 502, body: "Bad Gateway" } as const
    fake.queue(failing, failing, failing)
    const answerer = await answererWith({ maxRetries: 2 })
    const { error, parts } = await collect(answerer.answer(request()))
    expect(parts).toEqual([])
    expect(error).toBeInstanceOf(ProviderUnavailable)
    expect(error?.retryable).toBe(true)
    expect(error?.message).toMatch(/502.*gave up after 3 attempts/)
    expect(fake.requests).toHaveLength(3)
  })

  it("retries a connection that breaks before the first token", async () => {
    fake.queue({ kind: "stream", breakAfter: 0 })
    const answerer = await answererWith()
    const { error, text } = await collect(answerer.answer(request()))
    expect(error).toBeUndefined()
    expect(text).toBe(defaultAnswerTokens.join(""))
    expect(fake.requests).toHaveLength(2)
  })

  it("does not retry a refusal, and never repeats the key the provider quotes back", async () => {
    const answerer = await answererWith({ apiKey: Redacted.make("wrong-key-abcdef") })
    const { error } = await collect(answerer.answer(request()))
    expect(error).toBeInstanceOf(ProviderRejected)
    expect(error).toMatchObject({ status: 401 })
    expect(error?.message).toMatch(/refused the API key/)
    expect(error?.message).not.toContain("wrong-key-abcdef")
    expect(fake.requests).toHaveLength(1)

    fake.queue({ kind: "status", status: 400, body: '{"error":{"message":"This model\'s maximum context length is 8192 tokens"}}' })
    const tooLong = await collect((await answererWith()).answer(request()))
    expect(tooLong.error).toBeInstanceOf(ProviderRejected)
    expect(tooLong.error?.message).toMatch(/maximum context length/)
    expect(fake.requests).toHaveLength(2)
  })

  it("surfaces a failure mid-stream as ProviderUnavailable (retryable) after the tokens received, without retrying", async () => {
    fake.queue({ kind: "stream", breakAfter: 3, intervalMs: 5 })
    const answerer = await answererWith()
    const { error, finish, parts, text } = await collect(answerer.answer(request()))
    expect(parts).toHaveLength(3)
    expect(text).toBe(defaultAnswerTokens.slice(0, 3).join(""))
    expect(finish).toBeUndefined()
    expect(error).toBeInstanceOf(ProviderUnavailable)
    expect(error?.retryable).toBe(true)
    expect(error?.message).toMatch(/broke in the middle of the answer/)
    expect(fake.requests).toHaveLength(1)
  })

  it("ends a stalled stream with ProviderUnavailable within the idle bound, and closes its connection", async () => {
    fake.queue({ kind: "stream", stallAfter: 2, intervalMs: 5 })
    const answerer = await answererWith({ idleTimeout: "300 millis" })
    const started = performance.now()
    const { error, parts } = await collect(answerer.answer(request()))
    const elapsed = performance.now() - started
    expect(parts).toHaveLength(2)
    expect(error).toBeInstanceOf(ProviderUnavailable)
    expect(error?.message).toMatch(/sent nothing for 300ms in the middle of the answer/)
    expect(elapsed).toBeGreaterThanOrEqual(290)
    expect(elapsed).toBeLessThan(1500)
    await fake.requests[0]!.closed
    expect(fake.requests[0]!.completed).toBe(false)
  })

  it("bounds the wait for the first token, and closes the connection it gave up on", async () => {
    fake.queue({ kind: "hang" })
    const answerer = await answererWith({ firstTokenTimeout: "300 millis" })
    const started = performance.now()
    const { error } = await collect(answerer.answer(request()))
    expect(error).toBeInstanceOf(ProviderUnavailable)
    expect(error?.message).toMatch(/no answer within 300ms/)
    expect(performance.now() - started).toBeLessThan(1500)
    expect(fake.requests).toHaveLength(1)
    await fake.requests[0]!.closed
  })

  it("refuses a malformed chunk as ProviderProtocol, before or after the first token", async () => {
    fake.queue({ kind: "stream", malformedAfter: 2 })
    const answerer = await answererWith()
    const late = await collect(answerer.answer(request()))
    expect(late.parts).toHaveLength(2)
    expect(late.error).toBeInstanceOf(ProviderProtocol)
    expect(late.error?.message).toMatch(/malformed chunk: it is not JSON/)

    fake.queue({ kind: "stream", malformedAfter: 0, malformed: '{"choices":[{"index":0,"delta":{"content":42}}]}' })
    const early = await collect(answerer.answer(request()))
    expect(early.parts).toEqual([])
    expect(early.error).toBeInstanceOf(ProviderProtocol)
    expect(early.error?.message).toMatch(/delta.content is not a string/)
    // Garbage is not retried: the provider would send it again.
    expect(fake.requests).toHaveLength(2)
  })

  it("aborts the provider's request when the stream's fiber is interrupted", async () => {
    fake.setTokenInterval(40)
    const answerer = await answererWith()
    const received: Array<AnswerPart> = []
    const fiber = Effect.runFork(Stream.runForEach(answerer.answer(request()), (part) => Effect.sync(() => received.push(part))))
    await waitFor(() => received.length >= 2)
    await Effect.runPromise(Fiber.interrupt(fiber))
    const [sent] = fake.requests
    await Promise.race([sent!.closed, new Promise((_, reject) => setTimeout(() => reject(new Error("the connection stayed open")), 2000))])
    expect(sent!.completed).toBe(false)
    expect(sent!.chunksSent).toBeLessThan(defaultAnswerTokens.length)
  })

  it("reports length when the provider stops at max_tokens, and estimates usage a provider does not send", async () => {
    fake.queue({ kind: "stream", tokens: ["Keys", " are", " rotated"], finishReason: "length", noUsage: true })
    const answerer = await answererWith()
    const { finish, text } = await collect(answerer.answer(request({ options: { maxTokens: 3 } })))
    expect(text).toBe("Keys are rotated")
    expect(finish).toMatchObject({ reason: "length" })
    expect(finish?._tag === "Finish" && finish.usage.completionTokens).toBeGreaterThan(0)
    expect(finish?._tag === "Finish" && finish.usage.promptTokens).toBeGreaterThan(20)
  })

  it("rewrites a follow-up into a standalone question, and leaves a first question alone", async () => {
    const answerer = await answererWith()
    expect(await Effect.runPromise(answerer.rewriteQuestion([], "How often are keys rotated?"))).toBe("How often are keys rotated?")
    expect(fake.requests).toHaveLength(0)

    fake.queue({ kind: "stream", tokens: ["How", " often", " are", " API", " keys", " rotated", "?"] })
    const rewritten = await Effect.runPromise(
      answerer.rewriteQuestion(
        [
          { role: "user", text: "Tell me about API keys." },
          { role: "assistant", text: "They authenticate requests [1]." }
        ],
        "How often are they rotated?"
      )
    )
    expect(rewritten).toBe("How often are API keys rotated?")
    const sent = fake.requests[0]!.body
    expect(sent).toMatchObject({ model: fakeChatModel, temperature: 0 })
    expect(sent.messages[1].content).toContain("User: Tell me about API keys.")
    expect(sent.messages[1].content).toContain("Last question: How often are they rotated?")
  })
})

describe("extractive answerer", () => {
  const answerer: AnswererShape = ExtractiveAnswerer.make
  const citations = (text: string) => [...text.matchAll(/\[(\d+)\]/g)].map((match) => Number(match[1]))

  it("answers from the most relevant sentences, citing each with its source", async () => {
    const { error, finish, parts, text } = await collect(answerer.answer(request({ options: {} })))
    expect(error).toBeUndefined()
    expect(text).toContain("API keys are rotated every 90 days by the security team [1].")
    const cited = citations(text)
    expect(cited.length).toBeGreaterThan(0)
    // Every number is a source it was given, and one whose text it used.
    for (const n of cited) {
      const source = sources.find((candidate) => candidate.n === n)
      expect(source).toBeDefined()
    }
    expect(cited).not.toContain(3)
    for (const sentence of text.split(/(?<=\]\.)\s+/)) {
      const [, n] = /\[(\d+)\]\.$/.exec(sentence) ?? []
      const quoted = sentence.replace(/ \[\d+\]\.$/, "")
      expect(sources.find((source) => source.n === Number(n))!.text).toContain(quoted)
    }
    // A word (with the space before it) per delta, then the Finish.
    expect(parts.filter((part) => part._tag === "TextDelta").length).toBe(text.split(" ").length)
    expect(finish).toMatchObject({ reason: "stop", model: ExtractiveAnswerer.extractiveModel })
    expect(finish?._tag === "Finish" && finish.usage.completionTokens).toBeGreaterThan(0)
  })

  it("says plainly when the documents do not answer, citing nothing", async () => {
    const { finish, text } = await collect(answerer.answer(request({ question: "What is the capital of Mongolia?", options: {} })))
    expect(text).toBe(ExtractiveAnswerer.noAnswerText)
    expect(citations(text)).toEqual([])
    expect(finish).toMatchObject({ reason: "stop" })
    expect((await collect(answerer.answer(request({ sources: [], options: {} })))).text).toBe(ExtractiveAnswerer.noAnswerText)
    expect((await collect(answerer.answer(request({ question: "What is it?", options: {} })))).text).toBe(ExtractiveAnswerer.noAnswerText)
  })

  it("is deterministic, takes a sentence repeated by overlapping chunks once, and cuts at max_tokens", async () => {
    const overlapping = [...sources, { ...sources[0]!, n: 4, chunkId: "chunk-keys-1-overlap" }]
    const first = ExtractiveAnswerer.composeAnswer("How often are API keys rotated?", overlapping)
    expect(ExtractiveAnswerer.composeAnswer("How often are API keys rotated?", overlapping)).toEqual(first)
    expect(first.text.match(/rotated every 90 days/g)).toHaveLength(1)
    expect(first.cited).toContain(1)
    expect(first.cited).not.toContain(4)
    // The best match first: the question's words are all in source 2's first sentence.
    const best = ExtractiveAnswerer.composeAnswer("When do old API keys stop working after rotation?", overlapping)
    expect(best.text.startsWith("After rotation, old API keys keep working for one day [2].")).toBe(true)

    const cut = await collect(answerer.answer(request({ options: { maxTokens: 4 } })))
    expect(cut.finish).toMatchObject({ reason: "length" })
    expect(cut.finish?._tag === "Finish" && cut.finish.usage.completionTokens).toBeLessThanOrEqual(4)
    expect(cut.text.length).toBeGreaterThan(0)
  })

  it("knows one model, refuses another, and does not rewrite questions", async () => {
    expect(answerer.models).toEqual([ExtractiveAnswerer.extractiveModel])
    expect((await collect(answerer.answer(request({ options: { model: "gpt-4o" } })))).error).toBeInstanceOf(ProviderRejected)
    expect(await Effect.runPromise(answerer.rewriteQuestion(request().history, "And for Linux?"))).toBe("And for Linux?")
  })
})

describe("configuration", () => {
  const load = (env: Record<string, string>) => Effect.runSync(Effect.result(parseAppConfig(ConfigProvider.fromEnv({ env }))))
  const errorOf = (env: Record<string, string>) => {
    const result = load(env)
    if (Result.isSuccess(result)) throw new Error("expected the configuration to be refused")
    return describeConfigError(result.failure)
  }
  const answererFor = (env: Record<string, string>) =>
    Effect.runPromise(
      Effect.gen(function* () {
        return yield* Answerer
      }).pipe(Effect.provide(LanguageModelLive.pipe(Layer.provide(Layer.succeed(AppConfig, Result.getOrThrow(load(env)))))))
    )

  it("is the extractive answerer by default, and the provider with a URL and models", async () => {
    expect((await answererFor({})).models).toEqual([ExtractiveAnswerer.extractiveModel])
    const provider = await answererFor({
      BASALT_CHAT_URL: fake.baseUrl,
      BASALT_CHAT_MODELS: `${fakeChatModel}, fake-chat-2,${fakeChatModel}`,
      BASALT_CHAT_API_KEY: Redacted.value(apiKey)
    })
    expect(provider.models).toEqual([fakeChatModel, "fake-chat-2"])
    expect((await collect(provider.answer(request({ options: {} })))).text).toBe(defaultAnswerTokens.join(""))
  })

  it("refuses what cannot work, one line per variable", () => {
    expect(errorOf({ BASALT_CHAT_MODELS: "llama3" })).toBe(
      "BASALT_CHAT_MODELS: applies to a provider: set BASALT_CHAT_URL too, or leave it empty for the extractive answerer"
    )
    expect(errorOf({ BASALT_CHAT_URL: "http://localhost:11434/v1" })).toBe("BASALT_CHAT_MODELS: is required when BASALT_CHAT_URL is set")
    expect(errorOf({ BASALT_CHAT_URL: "localhost:11434", BASALT_CHAT_MODELS: "m" })).toBe(
      "BASALT_CHAT_URL: must be an http(s) URL such as https://api.openai.com/v1"
    )
    expect(errorOf({ BASALT_CHAT_IDLE_TIMEOUT: "0 seconds" })).toBe("BASALT_CHAT_IDLE_TIMEOUT: must be longer than 0")
  })
})
