/**
 * An OpenAI-compatible embeddings provider (src/embedding/OpenAiEmbedder.ts) as the Embedder,
 * over the fetch HTTP client (the same under Node and Deno). Building the layer fails with an
 * EmbeddingError when the options are wrong, or when the vector size has to be learnt from the
 * provider and it cannot be reached. Its request fibers end with the layer.
 */
import { Layer } from "effect"
import { FetchHttpClient } from "effect/http"
import { Embedder } from "../src/embedding/Embedder.ts"
import * as OpenAiEmbedder from "../src/embedding/OpenAiEmbedder.ts"

export const OpenAiEmbedderLive = (options: OpenAiEmbedder.OpenAiEmbedderOptions) =>
  Layer.effect(Embedder, OpenAiEmbedder.make(options)).pipe(Layer.provide(FetchHttpClient.layer))
