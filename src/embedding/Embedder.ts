/**
 * Embeddings: texts in, one vector per text out, in the same order. Two implementations: the
 * embedded hashing model (offline, deterministic, no download; LocalEmbedderLive) and any
 * provider that speaks OpenAI's /v1/embeddings (OpenAI, Ollama, vLLM, TEI; OpenAiEmbedderLive).
 *
 * `model` and `dimensions` are recorded with every stored vector: vectors of two models are not
 * comparable, so a change of either means re-embedding, not mixing. `minimumSimilarity` is the
 * model's floor for semantic search.
 */
import { Context, type Effect, Schema } from "effect"

/**
 * Embedding failed. `transient`: trying again later may succeed (rate limit, timeout, provider
 * down); otherwise the request or the configuration is wrong and retrying is pointless until
 * someone fixes what `reason` names.
 */
export class EmbeddingError extends Schema.TaggedError<EmbeddingError>()("EmbeddingError", {
  transient: Schema.Boolean,
  reason: Schema.String
}) {
  override get message() {
    return this.reason
  }
}

export interface EmbedderShape {
  /** Which model made the vectors, e.g. `basalt-hash-ngram-v1` or `text-embedding-3-small`. */
  readonly model: string
  /** The length of every vector. */
  readonly dimensions: number
  /**
   * The cosine similarity below which a chunk is no match for a query, only noise: semantic
   * search leaves such chunks out. A property of the model (its similarities of unrelated texts).
   */
  readonly minimumSimilarity: number
  /** One vector per text, in the order of `texts`. */
  readonly embed: (texts: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<Float32Array>, EmbeddingError>
}

export class Embedder extends Context.Service<Embedder, EmbedderShape>()("basalt/Embedder") {}
