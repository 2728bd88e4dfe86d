/**
 * Chat answers' event streams as a client reads them: the body parsed by a real SSE parser
 * (eventsource-parser), every event checked as it arrives against openapi.yaml (the stream's
 * `itemSchema`, and its `data` against the component schema its event name maps to in
 * `x-sse-events`), its `id` one more than the previous one, and nothing after the one terminal
 * event (`message_end` or `error`). A stream can be read to its end, or cut after some events.
 */
import { createParser } from "eventsource-parser"
import { contract, templateOf, validateComponent, validateResponse, validateStreamEvent } from "./contract.ts"
import { receive, type TestResponse } from "./server.ts"

export interface ChatStreamEvent {
  readonly id: number
  readonly event: string
  readonly data: any
}

export const terminalEvents: ReadonlySet<string> = new Set(["message_end", "error"])

/** The component schema of each event name of the stream `method path`, from its `x-sse-events`. */
export const eventSchemas = (method: string, path: string): Record<string, string> => {
  const template = templateOf(path)
  const declared = template && contract.paths[template]?.[method.toLowerCase()]?.responses?.["200"]?.content?.["text/event-stream"]
  const events: Record<string, { $ref: string }> = declared?.["x-sse-events"] ?? {}
  return Object.fromEntries(Object.entries(events).map(([event, schema]) => [event, schema.$ref.split("/").at(-1)!]))
}

export interface ChatStream {
  /** The events received so far. */
  readonly events: ReadonlyArray<ChatStreamEvent>
  /** The next event; undefined once the stream has ended. */
  readonly next: () => Promise<ChatStreamEvent | undefined>
  /** Reads to the end of the stream: checks that its last event, and only that one, is terminal. */
  readonly untilEnd: () => Promise<ReadonlyArray<ChatStreamEvent>>
  /** Reads until `count` events have come (fewer if the stream ends first). */
  readonly take: (count: number) => Promise<ReadonlyArray<ChatStreamEvent>>
  /** Drops the connection, as a client that goes away. */
  readonly cut: () => void
}

export type Opened =
  | { readonly stream: ChatStream; readonly response: undefined }
  | { readonly stream: undefined; readonly response: TestResponse }

/**
 * Sends `init` to `baseUrl + path`. A 200 event stream comes back as a ChatStream (its status and
 * headers validated now, each event as it is read; `afterId` is the Last-Event-ID sent, if any);
 * anything else is read whole and validated by `receive`.
 */
/**
 * `skipping`: ids an event may be missing at (a citation of a document the caller can no longer
 * read is left out of a replay); any other id must follow the one before by exactly 1.
 */
export const openChatStream = async (
  baseUrl: string,
  path: string,
  init: RequestInit = {},
  afterId = 0,
  skipping: ReadonlySet<number> = new Set()
): Promise<Opened> => {
  const method = init.method ?? "GET"
  const abort = new AbortController()
  const response = await fetch(`${baseUrl}${path}`, { ...init, signal: abort.signal })
  if (response.status !== 200 || !response.headers.get("content-type")?.startsWith("text/event-stream")) {
    return { stream: undefined, response: await receive(method, path, response) }
  }
  // The body is checked event by event below; the status and headers here.
  validateResponse(method, path, { status: response.status, headers: response.headers, text: "" })
  const schemas = eventSchemas(method, path)
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
  const received: Array<ChatStreamEvent> = []
  const pending: Array<ChatStreamEvent> = []
  let ended = false
  let terminal: ChatStreamEvent | undefined
  const parser = createParser({
    onEvent: (message) => {
      const fields = { id: message.id ?? "", event: message.event ?? "", data: message.data }
      validateStreamEvent(method, path, fields)
      const schema = schemas[fields.event]
      if (schema === undefined) throw new Error(`${method} ${path}: event ${fields.event} has no schema in x-sse-events`)
      const data = JSON.parse(message.data)
      validateComponent(schema, data)
      let expectedId = (received.at(-1)?.id ?? afterId) + 1
      while (skipping.has(expectedId) && fields.id !== String(expectedId)) expectedId++
      if (fields.id !== String(expectedId)) throw new Error(`${method} ${path}: event id ${fields.id}, expected ${expectedId}`)
      if (terminal !== undefined) throw new Error(`${method} ${path}: event ${fields.event} after the terminal ${terminal.event}`)
      const event = { id: expectedId, event: fields.event, data }
      if (terminalEvents.has(event.event)) terminal = event
      received.push(event)
      pending.push(event)
    },
    onError: (error) => {
      throw error
    }
  })

  const next = async (): Promise<ChatStreamEvent | undefined> => {
    while (pending.length === 0 && !ended) {
      const { done, value } = await reader.read()
      if (done) ended = true
      else parser.feed(value)
    }
    return pending.shift()
  }
  const take = async (count: number) => {
    const taken: Array<ChatStreamEvent> = []
    while (taken.length < count) {
      const event = await next()
      if (event === undefined) break
      taken.push(event)
    }
    return taken
  }
  const stream: ChatStream = {
    events: received,
    next,
    take,
    untilEnd: async () => {
      while ((await next()) !== undefined) {}
      if (terminal === undefined || received.at(-1) !== terminal) {
        throw new Error(`${method} ${path}: the stream ended without a terminal event (last: ${received.at(-1)?.event})`)
      }
      return received
    },
    cut: () => {
      ended = true
      abort.abort()
    }
  }
  return { stream, response: undefined }
}

/** The answer's text as its token events wrote it. */
export const tokenText = (events: ReadonlyArray<ChatStreamEvent>) =>
  events
    .filter((event) => event.event === "token")
    .map((event) => event.data.text)
    .join("")
