/**
 * Requests Node's HTTP parser refuses before any handler sees them: a malformed request line or
 * header, headers over the limit, a request not received in time. Node would answer them with a
 * bare status line; here they get the one error shape with a request id, like every other
 * answer, and the connection is closed (what follows on it cannot be read as requests).
 */
import { maxHeaderSize, type Server, type ServerResponse } from "node:http"
import type { Socket } from "node:net"
import { errorCode } from "./ApiError.ts"
import { RequestIdHeader } from "./RequestId.ts"

interface ParserError extends Error {
  readonly code?: string
  /** llhttp's words for what it could not parse, such as "Invalid method encountered". */
  readonly reason?: unknown
}

interface Answer {
  readonly status: number
  readonly statusText: string
  /** The error code, as an ApiError tag would name it. */
  readonly tag: string
  readonly message: string
}

/** The statuses Node itself answers these with, in the one shape. */
const answerTo = (error: ParserError, headerLimit: number): Answer => {
  switch (error.code) {
    case "HPE_HEADER_OVERFLOW":
      return {
        status: 431,
        statusText: "Request Header Fields Too Large",
        tag: "HeadersTooLarge",
        message: `The request line and headers are over the limit of ${headerLimit} bytes`
      }
    case "HPE_CHUNK_EXTENSIONS_OVERFLOW":
      return {
        status: 413,
        statusText: "Payload Too Large",
        tag: "PayloadTooLarge",
        message: "The chunk extensions of the request body are over the limit"
      }
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return { status: 408, statusText: "Request Timeout", tag: "RequestTimeout", message: "The request was not received in time" }
    default: {
      const reason = typeof error.reason === "string" && error.reason.length <= 100 ? `: ${error.reason}` : ""
      return { status: 400, statusText: "Bad Request", tag: "MalformedRequest", message: `The request is not valid HTTP/1.1${reason}` }
    }
  }
}

/** The complete HTTP/1.1 response for `answer`, with its own request id. */
export const parserErrorResponse = (answer: Answer, requestId: string, processTime: string): string => {
  const body = JSON.stringify({ error: errorCode(answer.tag), message: answer.message, request_id: requestId })
  return [
    `HTTP/1.1 ${answer.status} ${answer.statusText}`,
    "content-type: application/json",
    `content-length: ${Buffer.byteLength(body)}`,
    `${RequestIdHeader}: ${requestId}`,
    `x-process-time: ${processTime}`,
    `date: ${new Date().toUTCString()}`,
    "connection: close",
    "",
    body
  ].join("\r\n")
}

/**
 * Answers `server`'s parser errors (its 'clientError' event) and reports each to `log` with its
 * request id. Nothing is written when the client is gone or a response on the connection has
 * already begun (a pipelined request after it): the connection is only closed then, as Node does.
 */
export const answerParserErrors = (
  server: Server,
  log: (message: string, annotations: Readonly<Record<string, unknown>>) => void
): void => {
  server.on("clientError", (error: ParserError, socket: Socket) => {
    const started = performance.now()
    // Node's own test (the socket's response in progress is private to it).
    const responding = (socket as Socket & { readonly _httpMessage?: ServerResponse | null })._httpMessage
    if (error.code === "ECONNRESET" || !socket.writable || responding?.headersSent === true) {
      socket.destroy()
      return
    }
    // The server is created without a limit of its own: Node's, or --max-http-header-size.
    const answer = answerTo(error, maxHeaderSize)
    const requestId = crypto.randomUUID()
    socket.end(parserErrorResponse(answer, requestId, (performance.now() - started).toFixed(2)), () => socket.destroy())
    log(`${answer.status} refused by the HTTP parser`, { request_id: requestId, parser_error: error.code ?? "unknown" })
  })
}
