/**
 * An OpenAI-compatible Chat Completions provider (src/chat/OpenAiChat.ts) as the Answerer, over
 * the fetch HTTP client (the same under Node and Deno). Building the layer fails with a
 * ProviderRejected when the options cannot work; the provider is not asked anything until a
 * question comes.
 */
import { Layer } from "effect"
import { FetchHttpClient } from "effect/http"
import { Answerer } from "../src/chat/Answerer.ts"
import * as OpenAiChat from "../src/chat/OpenAiChat.ts"

export const OpenAiChatLive = (options: OpenAiChat.OpenAiChatOptions) =>
  Layer.effect(Answerer, OpenAiChat.make(options)).pipe(Layer.provide(FetchHttpClient.layer))
