/**
 * Embeddings from any provider that speaks OpenAI's `POST /v1/embeddings`: OpenAI itself,
 * Ollama, vLLM, Hugging Face TEI, LiteLLM and the like.
 *
 * Texts from every caller wait in one queue; `concurrency` request slots each take whatever is
 * waiting, up to `batchSize` texts, the moment a slot is free (never waiting to fill a batch), so
 * concurrent callers share full requests instead of each sending its own partial last one, and
 * the provider is not left idle while a caller does something else. Each caller gets its vectors
 * in the order of its texts, whatever order the provider answers in. What cannot succeed by trying again (a refused key, an unknown model, an answer of
 * the wrong shape) fails at once, with a reason that says what to fix; what may (429, 5xx, no
 * connection, no answer within `requestTimeout`) is retried with exponential backoff and jitter,
 * or after the Retry-After the provider asks for, up to `maxRetries` times. A request's failure
 * is the failure of the callers whose texts were in it, and of no other.
 *
 * The API key goes in the Authorization header and nowhere else: it is never logged, and a
 * provider's error message that quotes it is cleaned before it reaches a reason.
 */
import { Data, Deferred, Duration, Effect, Queue, Random, Redacted, Schema, SchemaIssue, type Scope } from "effect"
import { HttpClient, HttpClientRequest } from "effect/http"
import { EmbeddingError, type EmbedderShape } from "./Embedder.ts"
import { describeCause, describeUrl, providerMessage, retryAfterMs } from "../providers/ProviderReplies.ts"

export interface OpenAiEmbedderOptions {
  /**
   * The API root, `/embeddings` is appended: https://api.openai.com/v1, http://localhost:11434/v1
   * (Ollama), http://vllm:8000/v1, http://tei:8080/v1.
   */
  readonly baseUrl: string
  readonly model: string
  /**
   * Sent as `dimensions` (for models that can shorten their vectors, such as text-embedding-3-*).
   * Unset: nothing is sent and the model's own size is learnt from one request when the embedder
   * is made.
   */
  readonly dimensions?: number
  /**
   * The model's floor for semantic search (see EmbedderShape). Default 0: only chunks pointing
   * away from the query are left out, which holds for any model; a model's unrelated texts
   * usually score well above 0, so set it per model (README, Configuration).
   */
  readonly minimumSimilarity?: number
  /** Sent as `Authorization: Bearer …`; local servers (Ollama, vLLM, TEI) usually need none. */
  readonly apiKey?: Redacted.Redacted
  /** Texts per request. Default 64. */
  readonly batchSize?: number
  /** Requests in flight at once, across every caller. Default 4. */
  readonly concurrency?: number
  /** How long one request may take, answer included. Default 60 seconds. */
  readonly requestTimeout?: Duration.Input
  /** Further attempts after a transient failure. Default 4 (so 5 attempts in all). */
  readonly maxRetries?: number
  /** The first backoff; each retry doubles it, with jitter. Default 500 millis. */
  readonly retryBaseDelay?: Duration.Input
  /** The longest wait between attempts, Retry-After included. Default 30 seconds. */
  readonly retryMaxDelay?: Duration.Input
}

/** One vector: checked with a plain loop, as a per-element schema costs ~30 ms for 64 × 1536 numbers. */
const Vector = Schema.declare(
  (input: unknown): input is ReadonlyArray<number> =>
    Array.isArray(input) && input.length > 0 && input.every((value) => typeof value === "number" && Number.isFinite(value)),
  { identifier: "Vector", message: "expected a non-empty array of finite numbers" }
)

/** The parts of OpenAI's answer that matter here; `object`, `model` and `usage` may vary or be absent. */
const EmbeddingsResponse = Schema.Struct({
  data: Schema.Array(Schema.Struct({ index: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)), embedding: Vector })),
  usage: Schema.optional(Schema.Struct({ prompt_tokens: Schema.optional(Schema.Number) }))
})
const decodeEmbeddingsResponse = Schema.decodeUnknownEffect(EmbeddingsResponse)

/** Each failure of a decoding as a path and a message; a missing key reads "is missing". */
const formatIssues = SchemaIssue.makeFormatterStandardSchemaV1({
  leafHook: (issue) => (issue._tag === "MissingKey" ? "is missing" : SchemaIssue.defaultLeafHook(issue))
})

/** One `embed` call waiting for its vectors. */
interface Caller {
  readonly vectors: Array<Float32Array>
  remaining: number
  /** Answered, failed or gone: its texts still queued are skipped and late vectors dropped. */
  settled: boolean
  readonly done: Deferred.Deferred<ReadonlyArray<Float32Array>, EmbeddingError>
}

/** One text in the queue, and where its vector goes. */
interface QueuedText {
  readonly caller: Caller
  readonly index: number
  readonly text: string
}

/** The failure of one attempt, before the retry policy decides what it becomes. */
class AttemptFailed extends Data.TaggedError("AttemptFailed")<{
  readonly transient: boolean
  readonly reason: string
  readonly retryAfterMs?: number
}> {}

const positiveInteger = (name: string, value: number) =>
  Number.isInteger(value) && value >= 1
    ? Effect.void
    : Effect.fail(new EmbeddingError({ transient: false, reason: `${name} must be a whole number of at least 1, got ${value}` }))

/**
 * The embedder over `options` (import this module as `OpenAiEmbedder`: `OpenAiEmbedder.make`).
 * With no `dimensions` it asks the provider once for one vector to learn their size, and fails
 * with the reason when it cannot. Its request fibers live as long as `Scope`; callers still
 * waiting when it closes are interrupted.
 */
export const make = (options: OpenAiEmbedderOptions): Effect.Effect<EmbedderShape, EmbeddingError, HttpClient.HttpClient | Scope.Scope> =>
  Effect.gen(function* () {
    const batchSize = options.batchSize ?? 64
    const concurrency = options.concurrency ?? 4
    const maxRetries = options.maxRetries ?? 4
    yield* positiveInteger("batchSize", batchSize)
    yield* positiveInteger("concurrency", concurrency)
    if (options.dimensions !== undefined) yield* positiveInteger("dimensions", options.dimensions)
    if (!Number.isInteger(maxRetries) || maxRetries < 0) {
      return yield* new EmbeddingError({ transient: false, reason: `maxRetries must be a whole number, got ${maxRetries}` })
    }
    const endpoint = `${options.baseUrl.replace(/\/+$/, "")}/embeddings`
    if (!URL.canParse(endpoint)) {
      return yield* new EmbeddingError({
        transient: false,
        reason: "the embeddings base URL is not a URL: expected one such as https://api.openai.com/v1"
      })
    }
    const where = describeUrl(endpoint)
    const timeout = Duration.fromInputUnsafe(options.requestTimeout ?? "60 seconds")
    const baseDelayMs = Duration.toMillis(options.retryBaseDelay ?? "500 millis")
    const maxDelayMs = Duration.toMillis(options.retryMaxDelay ?? "30 seconds")
    const model = options.model
    const secret = options.apiKey === undefined ? undefined : Redacted.value(options.apiKey)
    // A provider may quote the key back ("Incorrect API key provided: sk-…"): never pass it on.
    const clean = (text: string) => (secret !== undefined && secret !== "" ? text.split(secret).join("[redacted]") : text)

    const client = yield* HttpClient.HttpClient

    const refusal = (status: number, body: string): AttemptFailed => {
      const said = clean(providerMessage(body))
      const quoted = said === "" ? "" : ` (the provider said: ${said})`
      const permanent = (reason: string) => new AttemptFailed({ transient: false, reason: reason + quoted })
      switch (status) {
        case 400:
        case 422:
          return permanent(
            `the embeddings provider rejected the request (${status}): check the model name "${model}", the ` +
              "dimensions setting (not every model accepts one) and that no text is longer than the model takes"
          )
        case 401:
          return permanent(
            options.apiKey === undefined
              ? "the embeddings provider wants an API key (401): configure one"
              : "the embeddings provider refused the API key (401): set a valid key"
          )
        case 403:
          return permanent(
            `the embeddings provider denied access (403): the API key may not use model "${model}", ` +
              "or the account or project is not allowed to"
          )
        case 404:
          return permanent(
            `the embeddings provider has no such endpoint or model (404) at ${where}: check the base URL ` +
              `(it usually ends in /v1) and the model name "${model}"`
          )
        case 413:
          return permanent(`the embeddings provider found the request too large (413): lower the batch size (now ${batchSize})`)
        default:
          return permanent(`the embeddings provider answered ${status}, which this embedder does not expect`)
      }
    }

    /** One request for one batch: the vectors in input order, or why not. */
    const attempt = (texts: ReadonlyArray<string>, expectedDimensions: number | undefined) =>
      Effect.gen(function* () {
        const request = HttpClientRequest.post(endpoint).pipe(
          HttpClientRequest.acceptJson,
          HttpClientRequest.bodyJsonUnsafe({
            model,
            // OpenAI refuses empty strings; a space embeds as "nothing" everywhere.
            input: texts.map((text) => (text === "" ? " " : text)),
            ...(options.dimensions === undefined ? {} : { dimensions: options.dimensions })
          }),
          options.apiKey === undefined ? (request) => request : HttpClientRequest.bearerToken(options.apiKey)
        )
        const response = yield* client.execute(request).pipe(
          Effect.mapError(
            (error) =>
              new AttemptFailed({
                transient: true,
                reason:
                  error.reason._tag === "InvalidUrlError"
                    ? `the embeddings URL ${where} is not valid`
                    : `could not reach the embeddings provider at ${where} (${clean(describeCause(error.reason.cause))})`
              })
          )
        )
        const body = yield* response.text.pipe(
          Effect.mapError(
            (error) =>
              new AttemptFailed({
                transient: true,
                reason: `the connection to the embeddings provider broke during its answer (${clean(describeCause(error.reason.cause))})`
              })
          )
        )
        const status = response.status
        if (status === 429 || status === 408 || status >= 500) {
          if (status === 429 && /insufficient_quota/.test(body)) {
            return yield* new AttemptFailed({
              transient: false,
              reason:
                "the embeddings provider says the account has run out of quota (429 insufficient_quota): add credit or raise the limit"
            })
          }
          // Its words ("model is loading", "rate limit on tokens per min") say what is going on.
          const said = clean(providerMessage(body))
          const detail = said === "" ? `${status}` : `${status}: ${said}`
          return yield* new AttemptFailed({
            transient: true,
            reason: status === 429 ? `the embeddings provider is rate limiting (${detail})` : `the embeddings provider failed (${detail})`,
            retryAfterMs: retryAfterMs(response.headers["retry-after"], Date.now())
          })
        }
        if (status < 200 || status >= 300) return yield* refusal(status, body)

        const malformed = (what: string) =>
          new AttemptFailed({ transient: false, reason: `the embeddings provider's answer is not usable: ${what}` })
        const json = yield* Effect.try({ try: () => JSON.parse(body) as unknown, catch: () => malformed("it is not JSON") })
        const { data } = yield* decodeEmbeddingsResponse(json).pipe(
          Effect.mapError((error) => {
            const [issue] = formatIssues(error.issue).issues
            const path = (issue?.path ?? []).map((key) => (typeof key === "object" ? key.key : key))
            const where = path.length === 0 ? "" : `${path.join(".")}: `
            const what = (issue?.message ?? "").replace(/\s+/g, " ")
            return malformed(
              `it does not have the shape of an embeddings response (${where}${what.length > 120 ? `${what.slice(0, 120)}…` : what})`
            )
          })
        )
        if (data.length !== texts.length) {
          return yield* malformed(`${data.length} embeddings came back for ${texts.length} texts`)
        }
        const vectors: Array<Float32Array | undefined> = new Array(texts.length)
        for (const item of data) {
          if (item.index >= texts.length || vectors[item.index] !== undefined) {
            return yield* malformed(`the embedding indexes are not 0 to ${texts.length - 1}, each once`)
          }
          const dimensions = expectedDimensions ?? item.embedding.length
          if (item.embedding.length !== dimensions) {
            return yield* malformed(
              `vectors of ${item.embedding.length} numbers came back where ${dimensions} were expected: check the ` +
                `model "${model}" and the dimensions setting (vectors of another size cannot sit with the stored ones)`
            )
          }
          vectors[item.index] = Float32Array.from(item.embedding)
        }
        return vectors as Array<Float32Array>
      }).pipe(
        Effect.timeoutOrElse({
          duration: timeout,
          orElse: () =>
            Effect.fail(
              new AttemptFailed({
                transient: true,
                reason: `the embeddings provider did not answer within ${Duration.format(timeout)}`
              })
            )
        }),
        Effect.withSpan("Embedder.request", { attributes: { "embedding.model": model, "embedding.texts": texts.length } })
      )

    /** A batch with retries; while it waits to try again, the other request slots go on. */
    const embedBatch = (texts: ReadonlyArray<string>, expectedDimensions: number | undefined) => {
      const tryFrom = (attemptNumber: number): Effect.Effect<Array<Float32Array>, EmbeddingError> =>
        attempt(texts, expectedDimensions).pipe(
          Effect.catch((failure) => {
            if (!failure.transient) return Effect.fail(new EmbeddingError({ transient: false, reason: failure.reason }))
            if (attemptNumber > maxRetries) {
              return Effect.fail(
                new EmbeddingError({
                  transient: true,
                  reason: `${failure.reason}; gave up after ${attemptNumber} attempt${attemptNumber === 1 ? "" : "s"}`
                })
              )
            }
            if (failure.retryAfterMs !== undefined && failure.retryAfterMs > maxDelayMs) {
              return Effect.fail(
                new EmbeddingError({
                  transient: true,
                  reason:
                    `${failure.reason} and asks to wait ${Math.ceil(failure.retryAfterMs / 1000)} s, longer than ` +
                    `the ${Math.ceil(maxDelayMs / 1000)} s this embedder waits: try again later`
                })
              )
            }
            return Effect.gen(function* () {
              // Exponential, then a random point in its upper half, so that retries spread out.
              const backoff = Math.min(maxDelayMs, baseDelayMs * 2 ** (attemptNumber - 1))
              const delay = failure.retryAfterMs ?? backoff * (0.5 + (yield* Random.next) / 2)
              yield* Effect.logDebug("embeddings request failed, retrying").pipe(
                Effect.annotateLogs({ reason: failure.reason, attempt: attemptNumber, delay_ms: Math.round(delay) })
              )
              yield* Effect.sleep(Duration.millis(delay))
              return yield* tryFrom(attemptNumber + 1)
            })
          })
        )
      return tryFrom(1)
    }

    const dimensions =
      options.dimensions ??
      (yield* embedBatch(["dimension probe"], undefined).pipe(
        Effect.map((vectors) => vectors[0]!.length),
        Effect.mapError(
          (error) =>
            new EmbeddingError({
              transient: error.transient,
              reason: `could not learn the size of model "${model}"'s vectors (set the dimensions to skip this): ${error.reason}`
            })
        )
      ))

    const queue = yield* Queue.unbounded<QueuedText>()
    const waiting = new Set<Caller>()
    let closed = false
    // Registered before the fibers start, so it runs after they are gone: whoever still waits is
    // interrupted, as a queue's takers are when it shuts down.
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        closed = true
        for (const caller of waiting) settle(caller, Effect.interrupt)
      })
    )

    const settle = (caller: Caller, result: Effect.Effect<ReadonlyArray<Float32Array>, EmbeddingError>) => {
      caller.settled = true
      waiting.delete(caller)
      Deferred.doneUnsafe(caller.done, result)
    }

    /** One request's outcome to its callers: each vector to its place, a failure to each of them once. */
    const deliver = (batch: ReadonlyArray<QueuedText>) =>
      Effect.exit(
        embedBatch(
          batch.map((queued) => queued.text),
          dimensions
        )
      ).pipe(
        Effect.flatMap((exit) =>
          Effect.sync(() => {
            if (exit._tag === "Failure") {
              for (const { caller } of batch) if (!caller.settled) settle(caller, Effect.failCause(exit.cause))
              return
            }
            batch.forEach(({ caller, index }, i) => {
              if (caller.settled) return
              caller.vectors[index] = exit.value[i]!
              if (--caller.remaining === 0) settle(caller, Effect.succeed(caller.vectors))
            })
          })
        )
      )

    // `concurrency` request slots, each taking whatever texts wait (at least one, at most a batch)
    // the moment it is free: it never waits for a batch to fill, and while the slots are busy the
    // queue fills the next batches. A slot woken by one text takes the rest of its caller's texts
    // too (they were queued together). Going round in one fiber, a slot sends its next request
    // as soon as it has handed out the last answer, without waiting to be scheduled.
    const slot = Effect.gen(function* () {
      const batch = (yield* Queue.takeBetween(queue, 1, batchSize)).filter((queued) => !queued.caller.settled)
      if (batch.length > 0) yield* deliver(batch)
    })
    yield* Effect.forkScoped(
      Effect.forEach(Array.from({ length: concurrency }), () => Effect.forever(slot), { concurrency: "unbounded", discard: true })
    )

    const embed = (texts: ReadonlyArray<string>): Effect.Effect<ReadonlyArray<Float32Array>, EmbeddingError> =>
      texts.length === 0
        ? Effect.succeed([])
        : Effect.acquireUseRelease(
            Effect.gen(function* () {
              if (closed) return yield* Effect.interrupt
              const caller: Caller = {
                vectors: new Array(texts.length),
                remaining: texts.length,
                settled: false,
                done: yield* Deferred.make<ReadonlyArray<Float32Array>, EmbeddingError>()
              }
              waiting.add(caller)
              yield* Queue.offerAll(
                queue,
                texts.map((text, index) => ({ caller, index, text }))
              )
              return caller
            }),
            (caller) => Deferred.await(caller.done),
            // Interrupted or done: its texts still queued are skipped.
            (caller) =>
              Effect.sync(() => {
                caller.settled = true
                waiting.delete(caller)
              })
          )

    return { model, dimensions, minimumSimilarity: options.minimumSimilarity ?? 0, embed } satisfies EmbedderShape
  })
