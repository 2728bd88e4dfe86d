/**
 * A stand-in for an OpenAI-compatible chat provider: a real HTTP server on 127.0.0.1 answering
 * `POST /v1/chat/completions` with `stream: true` the way OpenAI does: `text/event-stream`, one
 * `data: {chunk}` event per token (`choices[0].delta.content`; the first carries the role), a
 * chunk with `finish_reason`, a usage chunk (`choices: []`) when `stream_options.include_usage`
 * asks for one, then `data: [DONE]`.
 *
 * It records every request (body included) and when its connection closed, and can be told how
 * to answer the next ones: an error status, a stream at a given token rate, one that breaks off
 * (the socket destroyed after k chunks), stalls (stops sending, keeps the connection open),
 * carries a malformed chunk, or ends without [DONE].
 */
import { createServer, type IncomingHttpHeaders } from "node:http"
import type { AddressInfo } from "node:net"

export interface RecordedChatRequest {
  readonly method: string
  readonly path: string
  readonly headers: IncomingHttpHeaders
  readonly body: any
  readonly receivedAt: number
  /** Content chunks written before the connection closed or the answer ended. */
  chunksSent: number
  /** Whether the whole answer was written ([DONE] included). */
  completed: boolean
  /** When the connection closed (performance.now()); undefined while open. */
  closedAt: number | undefined
  /** Settles when the connection closes, whoever closed it. */
  readonly closed: Promise<void>
}

/** A streamed answer and how it goes wrong, if it does. */
export interface StreamReply {
  readonly kind: "stream"
  /** The content deltas; default `defaultAnswerTokens`. */
  readonly tokens?: ReadonlyArray<string>
  /** Between two chunks; default the server's token interval. */
  readonly intervalMs?: number
  /** Default "stop". */
  readonly finishReason?: string
  /** Destroys the socket after this many content chunks (a provider crash mid-answer). */
  readonly breakAfter?: number
  /** Stops sending after this many content chunks and leaves the connection open. */
  readonly stallAfter?: number
  /** Sends `malformed` (default `{"choices": [`) in place of the chunk after this many. */
  readonly malformedAfter?: number
  readonly malformed?: string
  /** Leaves out the usage chunk (some servers send none). */
  readonly noUsage?: boolean
}

export type ChatReply =
  | StreamReply
  | { readonly kind: "status"; readonly status: number; readonly body?: string; readonly headers?: Record<string, string> }
  /** Never answers: no status, no headers. */
  | { readonly kind: "hang" }

export interface FakeChatServer {
  /** What to configure as the base URL: http://127.0.0.1:port/v1. */
  readonly baseUrl: string
  readonly requests: Array<RecordedChatRequest>
  /** Answers for the next requests, in order; after them, requests get the normal stream. */
  readonly queue: (...replies: Array<ChatReply>) => void
  /** The pause between two chunks of a normal answer (a fixed token rate). */
  readonly setTokenInterval: (ms: number) => void
  /** Forgets the requests, the queued answers and the token interval. */
  readonly reset: () => void
  readonly close: () => Promise<void>
}

export const fakeChatModel = "fake-chat-1"

/** The normal answer, a token per delta, as a model citing two sources writes it. */
export const defaultAnswerTokens: ReadonlyArray<string> = [
  "Keys",
  " are",
  " rotated",
  " every",
  " 90",
  " days",
  " [1",
  "].",
  " Old",
  " keys",
  " stop",
  " working",
  " after",
  " a",
  " day",
  " [2",
  "]."
]

const openAiError = (message: string, type: string, code: string | null) => JSON.stringify({ error: { message, type, param: null, code } })

const chunk = (model: string, delta: Record<string, unknown>, finishReason: string | null) =>
  JSON.stringify({
    id: "chatcmpl-fake",
    object: "chat.completion.chunk",
    created: 1_700_000_000,
    model,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }]
  })

export const startFakeChatServer = async (): Promise<FakeChatServer> => {
  const requests: Array<RecordedChatRequest> = []
  const replies: Array<ChatReply> = []
  let tokenIntervalMs = 0

  const server = createServer((request, response) => {
    const parts: Array<Buffer> = []
    request.on("data", (part: Buffer) => parts.push(part))
    request.on("end", () => {
      let body: any
      try {
        body = JSON.parse(Buffer.concat(parts).toString("utf8"))
      } catch {
        body = undefined
      }
      let markClosed!: () => void
      const recorded: RecordedChatRequest = {
        method: request.method ?? "",
        path: request.url ?? "",
        headers: request.headers,
        body,
        receivedAt: performance.now(),
        chunksSent: 0,
        completed: false,
        closedAt: undefined,
        closed: new Promise<void>((resolve) => {
          markClosed = resolve
        })
      }
      requests.push(recorded)
      response.on("close", () => {
        recorded.closedAt = performance.now()
        markClosed()
      })

      const sendJson = (status: number, text: string, headers: Record<string, string> = {}) => {
        response.writeHead(status, { "content-type": "application/json", ...headers })
        response.end(text)
      }
      if (request.method !== "POST" || request.url !== "/v1/chat/completions") {
        return sendJson(404, openAiError(`Unknown request URL: ${request.method} ${request.url}`, "invalid_request_error", "unknown_url"))
      }
      // The checks OpenAI makes on the request itself.
      if (body === undefined || typeof body.model !== "string" || !Array.isArray(body.messages) || body.messages.length === 0) {
        return sendJson(400, openAiError("'messages' is a required property", "invalid_request_error", null))
      }
      const authorization = request.headers.authorization
      if (authorization !== undefined && !authorization.startsWith("Bearer sk-")) {
        const key = authorization.replace(/^Bearer /, "")
        return sendJson(401, openAiError(`Incorrect API key provided: ${key}.`, "invalid_request_error", "invalid_api_key"))
      }
      const reply = replies.shift() ?? { kind: "stream" }
      if (reply.kind === "hang") return
      if (reply.kind === "status") return sendJson(reply.status, reply.body ?? openAiError("error", "server_error", null), reply.headers)

      response.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" })
      const model: string = body.model
      const tokens = reply.tokens ?? defaultAnswerTokens
      const interval = reply.intervalMs ?? tokenIntervalMs
      const events: Array<string> = [chunk(model, { role: "assistant", content: "" }, null)]
      for (const token of tokens) events.push(chunk(model, { content: token }, null))
      events.push(chunk(model, {}, reply.finishReason ?? "stop"))
      if (body.stream_options?.include_usage === true && reply.noUsage !== true) {
        const completion = tokens.length
        const prompt = body.messages.reduce((sum: number, message: any) => sum + String(message.content).split(/\s+/).length, 0)
        events.push(
          JSON.stringify({
            id: "chatcmpl-fake",
            object: "chat.completion.chunk",
            created: 1_700_000_000,
            model,
            choices: [],
            usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion }
          })
        )
      }
      events.push("[DONE]")

      // Content chunks are counted from 1: event 0 only carries the role.
      let next = 0
      const write = () => {
        if (response.destroyed || response.writableEnded) return
        const contentSent = Math.max(0, next - 1)
        if (reply.breakAfter !== undefined && contentSent >= reply.breakAfter) {
          response.socket?.destroy()
          return
        }
        if (reply.stallAfter !== undefined && contentSent >= reply.stallAfter) return
        if (reply.malformedAfter !== undefined && contentSent >= reply.malformedAfter) {
          response.write(`data: ${reply.malformed ?? '{"choices": ['}\n\n`)
          // A provider that sent garbage goes on; the client must stop reading.
          next = events.length
          setTimeout(() => response.end(), 50)
          return
        }
        if (next >= events.length) {
          recorded.completed = true
          response.end()
          return
        }
        response.write(`data: ${events[next]}\n\n`)
        if (next >= 1 && next <= tokens.length) recorded.chunksSent++
        next++
        if (interval === 0) setImmediate(write)
        else setTimeout(write, interval)
      }
      write()
    })
  })

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as AddressInfo
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    queue: (...next) => {
      replies.push(...next)
    },
    setTokenInterval: (ms) => {
      tokenIntervalMs = ms
    },
    reset: () => {
      requests.length = 0
      replies.length = 0
      tokenIntervalMs = 0
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}
