/** The chat routes: each the caller's use of ChatSessions. */
import { Effect, Layer } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { CurrentUser } from "../accounts/Authentication.ts"
import { BasaltApi } from "../Api.ts"
import { ChatRuns } from "./ChatRuns.ts"
import { ChatSessions } from "./ChatSessions.ts"
import { ChatSocket } from "./ChatSocket.ts"

export const ChatHttpLive = HttpApiBuilder.group(BasaltApi, "chat", (handlers) =>
  Effect.gen(function* () {
    const sessions = yield* ChatSessions
    const runs = yield* ChatRuns
    const socket = yield* ChatSocket
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
      .handle("sendChatMessage", ({ params, payload }) =>
        Effect.flatMap(CurrentUser, (caller) => runs.send(caller, params.session_id, payload))
      )
      .handle("streamChatMessage", ({ params, request }) =>
        Effect.flatMap(CurrentUser, (caller) => runs.follow(caller, params.session_id, params.message_id, request.headers["last-event-id"]))
      )
      .handle("chatWebSocket", ({ request }) => socket.serve(request))
      .handle("stopChatMessage", ({ params }) =>
        Effect.flatMap(CurrentUser, (caller) => runs.stop(caller, params.session_id, params.message_id))
      )
  })
).pipe(Layer.provide(ChatSocket.layer), Layer.provide([ChatSessions.layer, ChatRuns.layer]))
