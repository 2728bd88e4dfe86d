/**
 * The Answerer the configuration asks for: the extractive answerer when no chat provider URL is
 * set, else the OpenAI-compatible provider with the configured models, key and timeouts.
 */
import { Effect, Layer, Option } from "effect"
import { AppConfig } from "../src/config/AppConfig.ts"
import { ExtractiveAnswererLive } from "./ExtractiveAnswererLive.ts"
import { OpenAiChatLive } from "./OpenAiChatLive.ts"

export const LanguageModelLive = Layer.unwrap(
  Effect.gen(function* () {
    const { chat } = yield* AppConfig
    return Option.match(chat.provider, {
      onNone: () => ExtractiveAnswererLive,
      onSome: (provider) =>
        OpenAiChatLive({
          baseUrl: provider.url,
          models: provider.models,
          apiKey: Option.getOrUndefined(provider.apiKey),
          firstTokenTimeout: chat.timeout,
          idleTimeout: chat.idleTimeout,
          totalTimeout: chat.totalTimeout
        })
    })
  })
)
