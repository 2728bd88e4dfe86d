import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "effect/http-api"
import { Authentication } from "../accounts/Authentication.ts"
import { endpoint } from "../contract/Contract.ts"
import { Uuid } from "../contract/Uuid.ts"
import { PageQuery } from "../documents/Documents.ts"
import {
  BadGateway,
  Conflict,
  Forbidden,
  NotFound,
  RateLimited,
  ServiceUnavailable,
  UpgradeRequired,
  ValidationFailed
} from "../http/ApiError.ts"
import { withBody } from "../http/RequestBody.ts"
import { withPath, withQuery } from "../http/RequestParams.ts"
import {
  ChatSession,
  ChatSessionDetail,
  ChatSessionPage,
  CreateChatSessionRequest,
  Feedback,
  SetFeedbackRequest,
  UpdateChatSessionRequest
} from "./Chat.ts"
import { ChatAnswer, SendChatMessageRequest } from "./ChatAnswers.ts"

const SessionPath = Schema.Struct({ session_id: Uuid })
const MessagePath = Schema.Struct({ message_id: Uuid })
const AnswerPath = Schema.Struct({ session_id: Uuid, message_id: Uuid })

export class ChatApi extends HttpApiGroup.make("chat")
  .add(
    endpoint("createChatSession", (op) =>
      HttpApiEndpoint.post(op.name, "/api/v1/chat/sessions", {
        payload: op.payload("application/json", CreateChatSessionRequest),
        success: op.response(201, "application/json", ChatSession),
        error: [NotFound, ValidationFailed]
      }).pipe(withBody())
    )
  )
  .add(
    endpoint("listChatSessions", (op) =>
      HttpApiEndpoint.get(op.name, "/api/v1/chat/sessions", {
        query: op.query(PageQuery),
        success: op.response(200, "application/json", ChatSessionPage),
        error: ValidationFailed
      }).pipe(withQuery())
    )
  )
  .add(
    endpoint("getChatSession", (op) =>
      HttpApiEndpoint.get(op.name, "/api/v1/chat/sessions/:session_id", {
        params: op.path(SessionPath),
        success: op.response(200, "application/json", ChatSessionDetail),
        error: [NotFound, ValidationFailed]
      }).pipe(withPath)
    )
  )
  .add(
    endpoint("updateChatSession", (op) =>
      HttpApiEndpoint.patch(op.name, "/api/v1/chat/sessions/:session_id", {
        params: op.path(SessionPath),
        payload: op.payload("application/json", UpdateChatSessionRequest),
        success: op.response(200, "application/json", ChatSession),
        error: [NotFound, ValidationFailed]
      }).pipe(withPath, withBody())
    )
  )
  .add(
    endpoint("deleteChatSession", (op) =>
      HttpApiEndpoint.delete(op.name, "/api/v1/chat/sessions/:session_id", {
        params: op.path(SessionPath),
        success: op.empty(204),
        error: [NotFound, ValidationFailed]
      }).pipe(withPath)
    )
  )
  .add(
    endpoint("setMessageFeedback", (op) =>
      HttpApiEndpoint.post(op.name, "/api/v1/chat/messages/:message_id/feedback", {
        params: op.path(MessagePath),
        payload: op.payload("application/json", SetFeedbackRequest),
        success: op.response(200, "application/json", Feedback),
        error: [NotFound, ValidationFailed]
      }).pipe(withPath, withBody())
    )
  )
  .add(
    endpoint("deleteMessageFeedback", (op) =>
      HttpApiEndpoint.delete(op.name, "/api/v1/chat/messages/:message_id/feedback", {
        params: op.path(MessagePath),
        success: op.empty(204),
        error: [NotFound, ValidationFailed]
      }).pipe(withPath)
    )
  )
  .add(
    endpoint("sendChatMessage", (op) =>
      HttpApiEndpoint.post(op.name, "/api/v1/chat/sessions/:session_id/messages", {
        params: op.path(SessionPath),
        payload: op.payload("application/json", SendChatMessageRequest),
        success: [op.text(200, "text/event-stream", Schema.String), op.response(200, "application/json", ChatAnswer)],
        error: [NotFound, Conflict, ValidationFailed, RateLimited, BadGateway, ServiceUnavailable]
      }).pipe(withPath, withBody())
    )
  )
  .add(
    endpoint("streamChatMessage", (op) =>
      HttpApiEndpoint.get(op.name, "/api/v1/chat/sessions/:session_id/messages/:message_id/stream", {
        params: op.path(AnswerPath),
        success: op.text(200, "text/event-stream", Schema.String),
        error: [NotFound, ValidationFailed]
      }).pipe(withPath)
    )
  )
  .add(
    endpoint("stopChatMessage", (op) =>
      HttpApiEndpoint.post(op.name, "/api/v1/chat/sessions/:session_id/messages/:message_id/stop", {
        params: op.path(AnswerPath),
        success: op.empty(202),
        error: [NotFound, Conflict, ValidationFailed]
      }).pipe(withPath)
    )
  )
  .add(
    endpoint("chatWebSocket", (op) =>
      HttpApiEndpoint.get(op.name, "/api/v1/chat/ws", {
        success: op.empty(101),
        error: [Forbidden, UpgradeRequired]
      })
    )
  )
  .middleware(Authentication)
  .annotate(OpenApi.Title, "chat") {}
