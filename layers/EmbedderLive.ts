/**
 * The Embedder the configuration asks for: the built-in offline model when no provider URL is
 * set, else the OpenAI-compatible provider with the configured model, size, floor, key, batching,
 * concurrency and timeout. A provider that cannot be used (a wrong URL, or one whose vector
 * size cannot be learnt) stops the server at start with the reason.
 */
import { Effect, Layer, Option } from "effect"
import { AppConfig } from "../src/config/AppConfig.ts"
import { LocalEmbedderLive } from "./LocalEmbedderLive.ts"
import { OpenAiEmbedderLive } from "./OpenAiEmbedderLive.ts"

export const EmbedderLive = Layer.unwrap(
  Effect.gen(function* () {
    const { embeddings } = yield* AppConfig
    return Option.match(embeddings.provider, {
      onNone: () => LocalEmbedderLive,
      onSome: (provider) =>
        OpenAiEmbedderLive({
          baseUrl: provider.url,
          model: provider.model,
          dimensions: Option.getOrUndefined(provider.dimensions),
          minimumSimilarity: Option.getOrUndefined(provider.minimumSimilarity),
          apiKey: Option.getOrUndefined(provider.apiKey),
          batchSize: embeddings.batchSize,
          concurrency: embeddings.concurrency,
          requestTimeout: embeddings.timeout
        })
    })
  })
)
