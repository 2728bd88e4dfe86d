/**
 * The embedded embedding model (`basalt-hash-ngram-v1`, src/embedding/HashEmbedding.ts) as the
 * Embedder: offline and deterministic, the default when no provider is configured.
 */
import { Effect, Layer } from "effect"
import { Embedder } from "../src/embedding/Embedder.ts"
import { hashEmbeddingMinimumSimilarity, makeHashEmbedding } from "../src/embedding/HashEmbedding.ts"

// Texts embedded between two yields: a big batch must not hold up the requests being served.
const textsPerSlice = 64

export const LocalEmbedderLive = Layer.sync(Embedder, () => {
  const model = makeHashEmbedding()
  return Embedder.of({
    model: model.model,
    dimensions: model.dimensions,
    minimumSimilarity: hashEmbeddingMinimumSimilarity,
    embed: (texts) =>
      Effect.gen(function* () {
        const vectors: Array<Float32Array> = []
        for (let start = 0; start < texts.length; start += textsPerSlice) {
          if (start > 0) yield* Effect.yieldNow
          for (const text of texts.slice(start, start + textsPerSlice)) vectors.push(model.embed(text))
        }
        return vectors
      })
  })
})
