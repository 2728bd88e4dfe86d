/**
 * GET /api/v1/chat/ws: the message routes' conversation protocol over one WebSocket (asking,
 * following, resuming and stopping answers, several at once), over the same use cases (ChatRuns)
 * and the same stored events as the event streams. Every frame is checked as the routes check
 * their requests (the credential again, the rate limit, the input's Schema), and refused in the
 * same words and status.
 */
import { Context, Effect, Layer, Result, Schema, Stream } from "effect"
import { HttpServerRequest } from "effect/http"
import * as Socket from "effect/socket/Socket"
import { Authenticator } from "../accounts/Authentication.ts"
import { AppConfig } from "../config/AppConfig.ts"
import { Text } from "../contract/Text.ts"
import { Uuid } from "../contract/Uuid.ts"
import { type ApiError, errorCode, errorStatus, Forbidden, MalformedJson, UpgradeRequired } from "../http/ApiError.ts"
import { decodeInput } from "../http/IssueDetails.ts"
import { RateLimiter } from "../ratelimit/RateLimiter.ts"
import { SendChatMessageRequest } from "./ChatAnswers.ts"
import { ChatRuns } from "./ChatRuns.ts"
import type { RunEvent } from "./RunEvents.ts"

/** The largest frame a client may send (a question is at most 4,000 characters); the server refuses larger ones too. */
export const maxChatFrameBytes = 64 * 1024

const Ref = Schema.optionalKey(Text({ maxLength: 100 }))

const { stream: _, ...askFields } = SendChatMessageRequest.fields

const ClientFrame = Schema.Union([
  Schema.Struct({ type: Schema.Literal("ask"), ref: Ref, session_id: Uuid, ...askFields }),
  Schema.Struct({
    type: Schema.Literal("resume"),
    ref: Ref,
    session_id: Uuid,
    message_id: Uuid,
    last_event_id: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)))
  }),
  Schema.Struct({ type: Schema.Literal("stop"), ref: Ref, session_id: Uuid, message_id: Uuid })
])
const decodeFrame = decodeInput(ClientFrame)

/** Whether `origin` is this site (the handshake's Host) or one BASALT_CORS_ORIGINS allows. */
const allowedOrigin = (origin: string, host: string | undefined, allowed: ReadonlyArray<string>) => {
  if (allowed.includes(origin)) return true
  try {
    return host !== undefined && new URL(origin).host === host
  } catch {
    return false
  }
}

export class ChatSocket extends Context.Service<ChatSocket>()("basalt/ChatSocket", {
  make: Effect.gen(function* () {
    const runs = yield* ChatRuns
    const authenticator = yield* Authenticator
    const limiter = yield* RateLimiter
    const config = yield* AppConfig

    /** Serves the protocol on the upgraded connection of `request` until the client closes it. */
    const serve = (request: HttpServerRequest.HttpServerRequest): Effect.Effect<void, UpgradeRequired | Forbidden> =>
      Effect.gen(function* () {
        if (request.headers.upgrade?.toLowerCase() !== "websocket") {
          return yield* Effect.fail(new UpgradeRequired({ message: "This route speaks WebSocket: open it with a WebSocket client" }))
        }
        const origin = request.headers.origin
        if (origin !== undefined && !allowedOrigin(origin, request.headers.host, config.corsOrigins)) {
          return yield* Effect.fail(
            new Forbidden({ message: "A WebSocket opened from another site's page is refused: its origin is not allowed here" })
          )
        }
        yield* Effect.scoped(
          Effect.gen(function* () {
            const socket = yield* Effect.orDie(request.upgrade)
            const writer = yield* socket.writer
            const reader = yield* Effect.orDie(socket.reader)
            const write = (frame: object) => Effect.ignore(writer.write(JSON.stringify(frame)))
            const refuse = (error: ApiError, ref: string | undefined) =>
              write({
                type: "error",
                ...(ref === undefined ? {} : { ref }),
                status: errorStatus(error),
                error: errorCode(error._tag),
                message: error.message,
                ...(error.details !== undefined && error.details.length > 0 ? { details: error.details } : {})
              })
            // Each answer followed is forwarded by a fiber of its own, as long as the socket lives.
            const forward = (messageId: string, ref: string | undefined, events: Stream.Stream<RunEvent>) =>
              Effect.forkScoped(
                Stream.runForEach(events, (event) =>
                  write({
                    type: "event",
                    ...(ref === undefined ? {} : { ref }),
                    message_id: messageId,
                    id: String(event.seq),
                    event: event.type,
                    data: event.data
                  })
                )
              )

            const handle = (raw: string | Uint8Array) =>
              Effect.gen(function* () {
                // Bytes, as the contract counts them (a string frame arrives decoded).
                if ((typeof raw === "string" ? Buffer.byteLength(raw) : raw.byteLength) > maxChatFrameBytes) {
                  yield* Effect.ignore(writer.write(new Socket.CloseEvent(1009, "frame too large")))
                  return false
                }
                const text = typeof raw === "string" ? raw : new TextDecoder().decode(raw)
                // As the routes do for each request: the credential as it is now, then the limit, then the input.
                const current = yield* Effect.result(authenticator.identify(request))
                if (Result.isFailure(current)) {
                  yield* refuse(current.failure, undefined)
                  yield* Effect.ignore(writer.write(new Socket.CloseEvent(1008, "credential no longer valid")))
                  return false
                }
                const caller = current.success
                const parsed = Result.try(() => JSON.parse(text) as unknown)
                const ref =
                  Result.isSuccess(parsed) && typeof (parsed.success as { ref?: unknown } | null)?.ref === "string"
                    ? (parsed.success as { ref: string }).ref
                    : undefined
                const limited = yield* Effect.result(
                  limiter.take("principal", caller.api_key_id === undefined ? `user:${caller.id}` : `key:${caller.api_key_id}`)
                )
                if (Result.isFailure(limited)) {
                  yield* refuse(limited.failure, ref)
                  return true
                }
                if (Result.isFailure(parsed)) {
                  yield* refuse(new MalformedJson({ message: "The frame is not JSON" }), undefined)
                  return true
                }
                const frame = decodeFrame(parsed.success, { subject: "The frame" })
                if (Result.isFailure(frame)) {
                  yield* refuse(frame.failure, ref)
                  return true
                }
                const message = frame.success
                const outcome = yield* Effect.result(
                  message.type === "ask"
                    ? Effect.flatMap(runs.ask(caller, message.session_id, message), ({ answerId }) =>
                        Effect.flatMap(runs.answerEvents(caller, message.session_id, answerId, 0), (events) =>
                          Effect.asVoid(forward(answerId, ref, events))
                        )
                      )
                    : message.type === "resume"
                      ? Effect.flatMap(
                          runs.answerEvents(caller, message.session_id, message.message_id, message.last_event_id ?? 0),
                          (events) => Effect.asVoid(forward(message.message_id, ref, events))
                        )
                      : Effect.andThen(runs.stop(caller, message.session_id, message.message_id), () =>
                          write({ type: "stopped", ...(ref === undefined ? {} : { ref }), message_id: message.message_id })
                        )
                )
                if (Result.isFailure(outcome)) yield* refuse(outcome.failure, ref)
                return true
              }).pipe(Effect.provideService(HttpServerRequest.HttpServerRequest, request))

            // Until the client closes the socket (the reader fails then) or a frame ends it.
            let open = true
            while (open) {
              const frames = yield* Effect.result(reader.pull)
              if (Result.isFailure(frames)) return
              for (const frame of frames.success) {
                if (open) open = yield* handle(frame)
              }
            }
          })
        )
      })

    return { serve } as const
  })
}) {
  static readonly layer = Layer.effect(this, this.make)
}
