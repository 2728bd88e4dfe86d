/**
 * A stand-in for an OpenAI-compatible embeddings provider: a real HTTP server on 127.0.0.1
 * answering `POST /v1/embeddings` with OpenAI's request and response shapes (`data[].index`,
 * `data[].embedding`, `model`, `usage`). It records every request, counts the requests in flight and the connections opened,
 * and can be told how to answer the next ones (an error status, no answer at all, a broken body).
 */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"

export interface RecordedRequest {
  readonly method: string
  readonly path: string
  readonly headers: IncomingHttpHeaders
  readonly body: any
  readonly receivedAt: number
}

/** How to answer one request: a canned answer, no answer, or the normal one. */
export type Reply =
  | { readonly status: number; readonly headers?: Record<string, string>; readonly body: string }
  | "hang"
  | "normal"
  | ((body: any) => {
      readonly status: number
      readonly body: string
      readonly delayMs?: number
      /** Answers once this settles (after `delayMs`, if both): holds the request as long as a test needs. */
      readonly until?: Promise<unknown>
    })

export interface FakeEmbeddingsServer {
  /** What to configure as the base URL: http://127.0.0.1:port/v1. */
  readonly baseUrl: string
  readonly requests: Array<RecordedRequest>
  /** The most requests that were in flight at one moment. */
  readonly maxInFlight: () => number
  /** Requests the client gave up on before they were answered. */
  readonly abandoned: () => number
  /** TCP connections opened to it: fewer than requests when the client keeps them alive. */
  readonly connections: () => number
  /** Answers for the next requests, in order; after them, requests get normal answers. */
  readonly queue: (...replies: Array<Reply>) => void
  /** Holds every normal answer this long, so that concurrent requests overlap. */
  setDelay(ms: number): void
  /** Holds normal answers until the returned function is called (then each still takes the delay). */
  readonly pause: () => () => void
  /** Forgets the requests, the counts, the queued answers and the delay. */
  readonly reset: () => void
  readonly close: () => Promise<void>
}

export const defaultDimensions = 8

/** The vector the fake gives `text`: derived from its characters, so tests can check the order. */
export const fakeVector = (text: string, dimensions: number): Array<number> => {
  let seed = 7
  for (let i = 0; i < text.length; i++) seed = (seed * 31 + text.charCodeAt(i)) % 1_000_003
  return Array.from({ length: dimensions }, (_, k) => ((seed * (k + 1)) % 1000) / 1000 - 0.5)
}

/** A normal answer, in OpenAI's shape, its items listed in reverse to prove that `index` is what counts. */
export const embeddingsAnswer = (body: any) => {
  const dimensions = typeof body.dimensions === "number" ? body.dimensions : defaultDimensions
  const inputs: Array<string> = body.input
  const tokens = inputs.reduce((sum, text) => sum + text.split(/\s+/).length, 0)
  return JSON.stringify({
    object: "list",
    data: inputs.map((text, index) => ({ object: "embedding", index, embedding: fakeVector(text, dimensions) })).reverse(),
    model: body.model,
    usage: { prompt_tokens: tokens, total_tokens: tokens }
  })
}

const openAiError = (message: string, type: string, code: string | null) => JSON.stringify({ error: { message, type, param: null, code } })

export const startFakeEmbeddingsServer = async (): Promise<FakeEmbeddingsServer> => {
  const requests: Array<RecordedRequest> = []
  const replies: Array<Reply> = []
  let inFlight = 0
  let maxInFlight = 0
  let abandoned = 0
  let delayMs = 0
  let connections = 0
  let paused: Promise<void> | undefined

  const send = (response: ServerResponse, status: number, body: string, headers: Record<string, string> = {}) => {
    response.writeHead(status, { "content-type": "application/json", ...headers })
    response.end(body)
  }

  const server = createServer((request, response) => {
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => {
      inFlight++
      maxInFlight = Math.max(maxInFlight, inFlight)
      let finished = false
      response.on("close", () => {
        inFlight--
        if (!finished) abandoned++
      })
      response.on("finish", () => {
        finished = true
      })

      const text = Buffer.concat(chunks).toString("utf8")
      let body: any
      try {
        body = JSON.parse(text)
      } catch {
        body = undefined
      }
      requests.push({
        method: request.method ?? "",
        path: request.url ?? "",
        headers: request.headers,
        body,
        receivedAt: performance.now()
      })

      if (request.method !== "POST" || request.url !== "/v1/embeddings") {
        return send(
          response,
          404,
          openAiError(`Unknown request URL: ${request.method} ${request.url}`, "invalid_request_error", "unknown_url")
        )
      }
      const reply = replies.shift() ?? "normal"
      if (reply === "hang") return
      if (typeof reply === "object") return send(response, reply.status, reply.body, reply.headers)
      if (typeof reply === "function") {
        const answer = reply(body)
        void Promise.resolve(answer.until).then(() =>
          setTimeout(() => {
            if (!response.writableEnded && !response.destroyed) send(response, answer.status, answer.body)
          }, answer.delayMs ?? 0)
        )
        return
      }
      // The checks OpenAI makes on the request itself.
      if (
        body === undefined ||
        typeof body.model !== "string" ||
        !Array.isArray(body.input) ||
        !body.input.every((input: unknown) => typeof input === "string" && input !== "")
      ) {
        return send(response, 400, openAiError("'$.input' is invalid. Please check the API reference.", "invalid_request_error", null))
      }
      const authorization = request.headers.authorization
      if (authorization !== undefined && !authorization.startsWith("Bearer sk-")) {
        const key = authorization.replace(/^Bearer /, "")
        // Quotes the whole key back, as a careless provider might.
        return send(response, 401, openAiError(`Incorrect API key provided: ${key}.`, "invalid_request_error", "invalid_api_key"))
      }
      const answer = () => setTimeout(() => send(response, 200, embeddingsAnswer(body)), delayMs)
      if (paused === undefined) answer()
      else void paused.then(answer)
    })
  })

  server.on("connection", () => {
    connections++
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as AddressInfo
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    maxInFlight: () => maxInFlight,
    abandoned: () => abandoned,
    connections: () => connections,
    queue: (...next) => {
      replies.push(...next)
    },
    setDelay: (ms) => {
      delayMs = ms
    },
    pause: () => {
      let resume!: () => void
      paused = new Promise<void>((resolve) => {
        resume = resolve
      })
      return () => {
        paused = undefined
        resume()
      }
    },
    reset: () => {
      requests.length = 0
      replies.length = 0
      maxInFlight = inFlight
      abandoned = 0
      connections = 0
      delayMs = 0
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}
