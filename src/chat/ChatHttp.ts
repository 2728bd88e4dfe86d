/** The chat routes: each the caller's use of ChatSessions. */
import { Effect, Layer } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { CurrentUser } from "../accounts/Authentication.ts"
import { BasaltApi } from "../Api.ts"
import { ChatSessions } from "./ChatSessions.ts"

export const ChatHttpLive = HttpApiBuilder.group(BasaltApi, "chat", (handlers) =>
  Effect.gen(function* () {
    const sessions = yield* ChatSessions
    return handlers
      .handle("createChatSession", ({ payload }) => Effect.flatMap(CurrentUser, (caller) => sessions.create(caller, payload)))
      .handle("listChatSessions", ({ query }) => Effect.flatMap(CurrentUser, (caller) => sessions.list(caller, query)))
      .handle("getChatSession", ({ params }) => Effect.flatMap(CurrentUser, (caller) => sessions.get(caller, params.session_id)))
      .handle("updateChatSession", ({ params, payload }) =>
        Effect.flatMap(CurrentUser, (caller) => sessions.update(caller, params.session_id, payload))
      )
      .handle("deleteChatSession", ({ params }) => Effect.flatMap(CurrentUser, (caller) => sessions.remove(caller, params.session_id)))
      .handle("setMessageFeedback", ({ params, payload }) =>
        Effect.flatMap(CurrentUser, (caller) => sessions.setFeedback(caller, params.message_id, payload))
      )
      .handle("deleteMessageFeedback", ({ params }) =>
        Effect.flatMap(CurrentUser, (caller) => sessions.removeFeedback(caller, params.message_id))
      )
  })
).pipe(Layer.provide(ChatSessions.layer))
