import { Effect, Exit, Fiber, type Layer, Redacted, Scope } from "effect"
import { FetchHttpClient, type HttpClient } from "effect/http"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { LocalEmbedderLive } from "../layers/LocalEmbedderLive.ts"
import { OpenAiEmbedderLive } from "../layers/OpenAiEmbedderLive.ts"
import { Embedder, EmbeddingError } from "../src/embedding/Embedder.ts"
import * as OpenAiEmbedder from "../src/embedding/OpenAiEmbedder.ts"
import {
  defaultDimensions,
  embeddingsAnswer,
  type FakeEmbeddingsServer,
  fakeVector,
  startFakeEmbeddingsServer
} from "./support/fakeEmbeddingsServer.ts"

let fake: FakeEmbeddingsServer
beforeAll(async () => {
  fake = await startFakeEmbeddingsServer()
})
afterAll(() => fake.close())
afterEach(() => fake.reset())

const apiKey = Redacted.make("sk-test-0123456789abcdef")

/** Options as a test wants them: fast retries, so that failures show up in milliseconds. */
const optionsWith = (overrides: Partial<OpenAiEmbedder.OpenAiEmbedderOptions> = {}): OpenAiEmbedder.OpenAiEmbedderOptions => ({
  baseUrl: fake.baseUrl,
  model: "text-embedding-3-small",
  dimensions: 16,
  apiKey,
  retryBaseDelay: "5 millis",
  retryMaxDelay: "5 seconds",
  requestTimeout: "5 seconds",
  ...overrides
})

/** The embedder's request fibers end with the scope, so everything that uses one runs in it. */
const run = <A, E>(effect: Effect.Effect<A, E, HttpClient.HttpClient | Scope.Scope>) =>
  Effect.runPromise(effect.pipe(Effect.scoped, Effect.provide(FetchHttpClient.layer)))

/** Waits until the fake has received `count` requests (a synchronisation, not a timing). */
const requestsReceived = (count: number) =>
  Effect.gen(function* () {
    while (fake.requests.length < count) yield* Effect.sleep("5 millis")
  })

/**
 * Forks a caller and runs it until it first suspends: waiting for its vectors, its texts queued
 * (it suspends only then). Fibers expose no running/suspended status to wait for instead.
 */
const queuedUp = <A, E>(caller: Effect.Effect<A, E>) => Effect.forkChild(caller, { startImmediately: true })

/** A normal reply held until `release()`: the request keeps its slot busy while others queue up. */
const heldReply = () => {
  let release!: () => void
  const until = new Promise<void>((resolve) => {
    release = resolve
  })
  return { reply: (body: any) => ({ status: 200, body: embeddingsAnswer(body), until }), release: () => release() }
}

const embedWith = (options: OpenAiEmbedder.OpenAiEmbedderOptions, texts: ReadonlyArray<string>) =>
  run(Effect.flatMap(OpenAiEmbedder.make(options), (embedder) => embedder.embed(texts)))

const failureOf = (options: OpenAiEmbedder.OpenAiEmbedderOptions, texts: ReadonlyArray<string>) =>
  run(Effect.flip(Effect.flatMap(OpenAiEmbedder.make(options), (embedder) => embedder.embed(texts))))

const expectVectorsOf = (texts: ReadonlyArray<string>, vectors: ReadonlyArray<Float32Array>, dimensions: number) => {
  expect(vectors).toHaveLength(texts.length)
  vectors.forEach((vector, i) => {
    expect(vector).toBeInstanceOf(Float32Array)
    expect(Array.from(vector)).toEqual(Array.from(Float32Array.from(fakeVector(texts[i]!, dimensions))))
  })
}

describe("OpenAI-compatible embedder", () => {
  it("sends texts in batches of batchSize and returns the vectors in input order", async () => {
    const texts = Array.from({ length: 10 }, (_, i) => `document number ${i}`)
    const vectors = await embedWith(optionsWith({ batchSize: 3, concurrency: 1 }), texts)
    expectVectorsOf(texts, vectors, 16)
    expect(fake.requests.map((request) => request.body.input)).toEqual([
      texts.slice(0, 3),
      texts.slice(3, 6),
      texts.slice(6, 9),
      texts.slice(9)
    ])
    for (const request of fake.requests) {
      expect(request.method).toBe("POST")
      expect(request.path).toBe("/v1/embeddings")
      expect(request.headers["content-type"]).toMatch(/^application\/json/)
      expect(request.body.model).toBe("text-embedding-3-small")
    }
  })

  it("keeps the order when batches run concurrently and answer out of order", async () => {
    const texts = Array.from({ length: 40 }, (_, i) => `passage ${i}`)
    // The first request to arrive is answered last, the last first.
    fake.queue(
      ...Array.from({ length: 8 }, (_, i) => (body: any) => ({
        status: 200,
        body: embeddingsAnswer(body),
        delayMs: (8 - i) * 25
      }))
    )
    const vectors = await embedWith(optionsWith({ batchSize: 5, concurrency: 8 }), texts)
    expectVectorsOf(texts, vectors, 16)
    expect(fake.requests).toHaveLength(8)
  })

  it("sends dimensions only when configured, and otherwise learns the size from the provider", async () => {
    await embedWith(optionsWith({ dimensions: 16 }), ["one"])
    expect(fake.requests).toHaveLength(1)
    expect(fake.requests[0]!.body.dimensions).toBe(16)

    fake.requests.length = 0
    await run(
      Effect.gen(function* () {
        const embedder = yield* OpenAiEmbedder.make(optionsWith({ dimensions: undefined }))
        expect(embedder.dimensions).toBe(defaultDimensions)
        expect(embedder.model).toBe("text-embedding-3-small")
        // One probe at start, with no dimensions field.
        expect(fake.requests).toHaveLength(1)
        expect(fake.requests[0]!.body).not.toHaveProperty("dimensions")
        expect(fake.requests[0]!.body.input).toHaveLength(1)
        const vectors = yield* embedder.embed(["a text", "another"])
        expectVectorsOf(["a text", "another"], vectors, defaultDimensions)
        expect(fake.requests[1]!.body).not.toHaveProperty("dimensions")
      })
    )
  })

  it("sends the API key as a bearer token, and no Authorization header without one", async () => {
    await embedWith(optionsWith(), ["with a key"])
    expect(fake.requests[0]!.headers.authorization).toBe("Bearer sk-test-0123456789abcdef")
    fake.requests.length = 0
    await embedWith(optionsWith({ apiKey: undefined }), ["without a key"])
    expect(fake.requests[0]!.headers).not.toHaveProperty("authorization")
  })

  it("makes no request for no texts, and sends an empty text as a space (OpenAI refuses empty strings)", async () => {
    expect(await embedWith(optionsWith(), [])).toEqual([])
    expect(fake.requests).toHaveLength(0)
    const vectors = await embedWith(optionsWith(), ["", "text"])
    expect(vectors).toHaveLength(2)
    expect(fake.requests[0]!.body.input).toEqual([" ", "text"])
  })

  it("waits as long as a 429's Retry-After asks, then succeeds", async () => {
    fake.queue({ status: 429, headers: { "retry-after": "1" }, body: JSON.stringify({ error: { message: "Rate limit reached" } }) })
    const vectors = await embedWith(optionsWith(), ["rate limited"])
    expectVectorsOf(["rate limited"], vectors, 16)
    expect(fake.requests).toHaveLength(2)
    // The backoff alone would have retried after ~5 ms.
    expect(fake.requests[1]!.receivedAt - fake.requests[0]!.receivedAt).toBeGreaterThanOrEqual(950)
  })

  it("gives up at once when Retry-After asks for longer than it waits", async () => {
    fake.queue({ status: 429, headers: { "retry-after": "3600" }, body: "{}" })
    const error = await failureOf(optionsWith(), ["rate limited"])
    expect(error.transient).toBe(true)
    expect(error.reason).toMatch(/^the embeddings provider is rate limiting \(429\) and asks to wait 3600 s/)
    expect(fake.requests).toHaveLength(1)
  })

  it("retries a 503, then succeeds", async () => {
    fake.queue({ status: 503, body: "Service Unavailable" })
    const vectors = await embedWith(optionsWith(), ["after an outage"])
    expectVectorsOf(["after an outage"], vectors, 16)
    expect(fake.requests).toHaveLength(2)
  })

  it("abandons a request that does not answer within the timeout, and retries it", async () => {
    fake.queue("hang")
    const started = performance.now()
    const vectors = await embedWith(optionsWith({ requestTimeout: "300 millis" }), ["slow provider"])
    expectVectorsOf(["slow provider"], vectors, 16)
    expect(fake.requests).toHaveLength(2)
    expect(performance.now() - started).toBeGreaterThanOrEqual(290)
    // The first connection was closed by the client, not left hanging.
    await Effect.runPromise(Effect.sleep("50 millis"))
    expect(fake.abandoned()).toBeGreaterThanOrEqual(1)
  })

  it("fails with a transient error after maxRetries when the provider keeps failing", async () => {
    fake.queue(...Array.from({ length: 3 }, () => ({ status: 500, body: '{"error":{"message":"internal"}}' })))
    const error = await failureOf(optionsWith({ maxRetries: 2 }), ["doomed"])
    expect(error).toBeInstanceOf(EmbeddingError)
    expect(error.transient).toBe(true)
    expect(error.reason).toBe("the embeddings provider failed (500: internal); gave up after 3 attempts")
    expect(fake.requests).toHaveLength(3)
  })

  it("does not retry a refused API key, says so, and never repeats the key", async () => {
    const wrongKey = "wrong-key-98765"
    const error = await failureOf(optionsWith({ apiKey: Redacted.make(wrongKey) }), ["text"])
    expect(error.transient).toBe(false)
    expect(error.reason).toMatch(/^the embeddings provider refused the API key \(401\)/)
    expect(fake.requests).toHaveLength(1)
    // The fake quotes the key back; the error must not.
    for (const rendered of [error.reason, error.message, String(error), JSON.stringify(error)]) {
      expect(rendered).not.toContain(wrongKey)
    }
    expect(error.reason).toContain("[redacted]")
  })

  it("does not retry 400, 403 and 404, and names what to check", async () => {
    fake.queue({ status: 400, body: JSON.stringify({ error: { message: "This model's maximum context length is 8192 tokens" } }) })
    const badRequest = await failureOf(optionsWith(), ["too long"])
    expect(badRequest.transient).toBe(false)
    expect(badRequest.reason).toMatch(/rejected the request \(400\).*maximum context length is 8192 tokens/)

    fake.queue({ status: 403, body: JSON.stringify({ error: { message: "You are not allowed to sample from this model" } }) })
    const forbidden = await failureOf(optionsWith(), ["text"])
    expect(forbidden.transient).toBe(false)
    expect(forbidden.reason).toMatch(/denied access \(403\)/)

    const notFound = await failureOf(optionsWith({ baseUrl: fake.baseUrl.replace(/\/v1$/, "") }), ["text"])
    expect(notFound.transient).toBe(false)
    expect(notFound.reason).toMatch(/no such endpoint or model \(404\).*ends in \/v1/)
    expect(fake.requests).toHaveLength(3)
  })

  it("does not retry when the account is out of quota, though the status is 429", async () => {
    fake.queue({
      status: 429,
      body: JSON.stringify({
        error: { message: "You exceeded your current quota", type: "insufficient_quota", code: "insufficient_quota" }
      })
    })
    const error = await failureOf(optionsWith(), ["text"])
    expect(error.transient).toBe(false)
    expect(error.reason).toMatch(/run out of quota/)
    expect(fake.requests).toHaveLength(1)
  })

  it("refuses answers of the wrong shape without retrying", async () => {
    const cases: Array<[string, (body: any) => string, RegExp]> = [
      ["not JSON", () => "<html>Bad gateway</html>", /not JSON/],
      [
        "too few vectors",
        (body) => {
          const answer = JSON.parse(embeddingsAnswer(body))
          answer.data.pop()
          return JSON.stringify(answer)
        },
        /1 embeddings came back for 2 texts/
      ],
      [
        "wrong dimension",
        (body) => embeddingsAnswer({ ...body, dimensions: 12 }),
        /vectors of 12 numbers came back where 16 were expected/
      ],
      [
        "base64 instead of numbers",
        (body) => {
          const answer = JSON.parse(embeddingsAnswer(body))
          for (const item of answer.data) item.embedding = "AAAAAAAAAAA="
          return JSON.stringify(answer)
        },
        /shape of an embeddings response \(data\.\d\.embedding: expected a non-empty array of finite numbers\)/
      ],
      [
        "numbers as strings",
        (body) => {
          const answer = JSON.parse(embeddingsAnswer(body))
          answer.data[0].embedding = answer.data[0].embedding.map(String)
          return JSON.stringify(answer)
        },
        /shape of an embeddings response \(data\.\d\.embedding: expected a non-empty array of finite numbers\)/
      ],
      [
        "a repeated index",
        (body) => {
          const answer = JSON.parse(embeddingsAnswer(body))
          answer.data[1].index = answer.data[0].index
          return JSON.stringify(answer)
        },
        /indexes are not 0 to 1, each once/
      ],
      ["no data", () => JSON.stringify({ object: "list", model: "m" }), /shape of an embeddings response \(data: is missing\)/]
    ]
    for (const [name, answer, reason] of cases) {
      fake.requests.length = 0
      fake.queue((body) => ({ status: 200, body: answer(body) }))
      const error = await failureOf(optionsWith(), ["first", "second"])
      expect(error.transient, name).toBe(false)
      expect(error.reason, name).toMatch(/^the embeddings provider's answer is not usable: /)
      expect(error.reason, name).toMatch(reason)
      expect(fake.requests, name).toHaveLength(1)
    }
  })

  it("reports an unreachable provider as transient, after its retries", async () => {
    const closed = await startFakeEmbeddingsServer()
    const baseUrl = closed.baseUrl
    await closed.close()
    const error = await failureOf(optionsWith({ baseUrl, maxRetries: 1 }), ["text"])
    expect(error.transient).toBe(true)
    expect(error.reason).toMatch(
      /^could not reach the embeddings provider at http:\/\/127\.0\.0\.1:\d+\/v1\/embeddings \(.*ECONNREFUSED.*\); gave up after 2 attempts$/
    )
  })

  it("keeps at most `concurrency` requests in flight, across concurrent callers too, over kept-alive connections", async () => {
    fake.setDelay(40)
    const texts = Array.from({ length: 24 }, (_, i) => `text ${i}`)
    const [first, second] = await run(
      Effect.gen(function* () {
        const embedder = yield* OpenAiEmbedder.make(optionsWith({ batchSize: 2, concurrency: 3 }))
        return yield* Effect.all([embedder.embed(texts), embedder.embed(texts.map((text) => `${text}!`))], { concurrency: 2 })
      })
    )
    expectVectorsOf(texts, first!, 16)
    expectVectorsOf(
      texts.map((text) => `${text}!`),
      second!,
      16
    )
    expect(fake.requests).toHaveLength(24)
    expect(fake.requests.every((request) => request.body.input.length === 2)).toBe(true)
    expect(fake.maxInFlight()).toBe(3)
    // Connections are kept alive and reused, not one per request (undici may open a spare one
    // when a socket is not back in its pool yet, so not exactly one per slot).
    expect(fake.connections()).toBeLessThan(fake.requests.length / 2)
  })

  it("serves concurrent callers with full requests, each caller's vectors in its own order", async () => {
    const held = heldReply()
    fake.queue(held.reply)
    const callers = [
      ["a0", "a1", "a2"],
      ["b0", "b1", "b2", "b3", "b4"],
      ["c0", "c1", "c2", "c3", "c4", "c5"]
    ]
    const results = await run(
      Effect.gen(function* () {
        const embedder = yield* OpenAiEmbedder.make(optionsWith({ batchSize: 4, concurrency: 1 }))
        // The one slot is busy: everything the callers send queues up meanwhile.
        const first = yield* Effect.forkChild(embedder.embed(["first"]))
        yield* requestsReceived(1)
        const rest = yield* Effect.forEach(callers, (texts) => queuedUp(embedder.embed(texts)))
        held.release()
        return [yield* Fiber.join(first), ...(yield* Fiber.joinAll(rest))]
      })
    )
    expectVectorsOf(["first"], results[0]!, 16)
    callers.forEach((texts, i) => {
      expectVectorsOf(texts, results[i + 1]!, 16)
    })
    const all = callers.flat()
    expect(fake.requests.map((request) => request.body.input)).toEqual([
      ["first"],
      all.slice(0, 4),
      all.slice(4, 8),
      all.slice(8, 12),
      all.slice(12)
    ])
  })

  it("fails only the callers whose texts were in a refused request", async () => {
    const held = heldReply()
    fake.queue(held.reply, {
      status: 400,
      body: JSON.stringify({ error: { message: "This model's maximum context length is 8192 tokens" } })
    })
    const [a, b, c] = await run(
      Effect.gen(function* () {
        const embedder = yield* OpenAiEmbedder.make(optionsWith({ batchSize: 2, concurrency: 1 }))
        const first = yield* Effect.forkChild(embedder.embed(["first"]))
        yield* requestsReceived(1)
        const callers = yield* Effect.forEach([["a0"], ["b0"], ["c0", "c1"]], (texts) => queuedUp(Effect.result(embedder.embed(texts))))
        held.release()
        yield* Fiber.join(first)
        return yield* Fiber.joinAll(callers)
      })
    )
    expect(fake.requests.map((request) => request.body.input)).toEqual([["first"], ["a0", "b0"], ["c0", "c1"]])
    for (const refused of [a!, b!]) {
      expect(refused._tag).toBe("Failure")
      if (refused._tag === "Failure") {
        expect(refused.failure.transient).toBe(false)
        expect(refused.failure.reason).toMatch(/rejected the request \(400\)/)
      }
    }
    expect(c!._tag).toBe("Success")
    if (c!._tag === "Success") expectVectorsOf(["c0", "c1"], c!.success, 16)
  })

  it("drops an interrupted caller's queued texts and serves the others", async () => {
    const held = heldReply()
    fake.queue(held.reply)
    const [interrupted, other, after] = await run(
      Effect.gen(function* () {
        const embedder = yield* OpenAiEmbedder.make(optionsWith({ batchSize: 2, concurrency: 1 }))
        const first = yield* Effect.forkChild(embedder.embed(["first"]))
        yield* requestsReceived(1)
        const gone = yield* queuedUp(embedder.embed(["gone 0", "gone 1", "gone 2"]))
        const other = yield* queuedUp(embedder.embed(["other"]))
        yield* Fiber.interrupt(gone)
        const interrupted = yield* Fiber.await(gone)
        held.release()
        yield* Fiber.join(first)
        return [interrupted, yield* Fiber.join(other), yield* embedder.embed(["after"])] as const
      })
    )
    expect(Exit.hasInterrupts(interrupted)).toBe(true)
    expectVectorsOf(["other"], other, 16)
    expectVectorsOf(["after"], after, 16)
    expect(fake.requests.map((request) => request.body.input)).toEqual([["first"], ["other"], ["after"]])
  })

  it("interrupts the callers still waiting when its scope closes, and abandons their request", async () => {
    fake.queue("hang")
    const exit = await run(
      Effect.gen(function* () {
        const scope = yield* Scope.make()
        const embedder = yield* OpenAiEmbedder.make(optionsWith()).pipe(Scope.provide(scope))
        const waiting = yield* Effect.forkChild(embedder.embed(["never answered"]))
        yield* requestsReceived(1)
        yield* Scope.close(scope, Exit.void)
        return yield* Fiber.await(waiting)
      })
    )
    expect(Exit.hasInterrupts(exit)).toBe(true)
    while (fake.abandoned() < 1) await new Promise((resolve) => setTimeout(resolve, 5))
    expect(fake.abandoned()).toBe(1)
  })

  it("rejects options that cannot work before sending anything", async () => {
    for (const [overrides, reason] of [
      [{ batchSize: 0 }, /batchSize must be a whole number of at least 1/],
      [{ concurrency: 1.5 }, /concurrency must be/],
      [{ baseUrl: "not a url" }, /base URL is not a URL/]
    ] as const) {
      const error = await run(Effect.flip(OpenAiEmbedder.make(optionsWith(overrides))))
      expect(error.transient).toBe(false)
      expect(error.reason).toMatch(reason)
    }
    expect(fake.requests).toHaveLength(0)
  })
})

describe("the Embedder interface", () => {
  /** What any Embedder must do, whichever is behind the tag. */
  const contract = Effect.gen(function* () {
    const embedder = yield* Embedder
    const texts = ["installing the database server", "", "chocolate cake recipe"]
    const vectors = yield* embedder.embed(texts)
    return { model: embedder.model, dimensions: embedder.dimensions, vectors }
  })

  it("is met by the local model and by the provider alike", async () => {
    const layers = {
      local: LocalEmbedderLive,
      provider: OpenAiEmbedderLive(optionsWith())
    } satisfies Record<string, Layer.Layer<Embedder, EmbeddingError>>
    for (const [name, layer] of Object.entries(layers)) {
      const result = await Effect.runPromise(contract.pipe(Effect.provide(layer)))
      expect(result.model, name).toMatch(/\S/)
      expect(Number.isInteger(result.dimensions) && result.dimensions > 0, name).toBe(true)
      expect(result.vectors, name).toHaveLength(3)
      for (const vector of result.vectors) {
        expect(vector, name).toBeInstanceOf(Float32Array)
        expect(vector.length, name).toBe(result.dimensions)
        expect(vector.every(Number.isFinite), name).toBe(true)
      }
    }
  })

  it("turns a provider that cannot be reached at start into a failed layer, with the reason", async () => {
    const closed = await startFakeEmbeddingsServer()
    const baseUrl = closed.baseUrl
    await closed.close()
    const layer = OpenAiEmbedderLive(optionsWith({ baseUrl, dimensions: undefined, maxRetries: 0 }))
    const error = await Effect.runPromise(Effect.flip(contract.pipe(Effect.provide(layer))))
    expect(error.transient).toBe(true)
    expect(error.reason).toMatch(/^could not learn the size of model "text-embedding-3-small"'s vectors .*could not reach/)
  })
})
