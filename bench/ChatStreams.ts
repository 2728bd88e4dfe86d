/**
 * bench/chat.ts's client: one chat question per session, its text/event-stream parsed
 * (eventsource-parser) and timed; with a second Basalt, cut after a few events and resumed there by
 * Last-Event-ID, every event to arrive exactly once.
 */
import { createParser } from "eventsource-parser"

export const question = (n: number) => `How often are signing keys rotated, and when do old keys stop working? (bench question ${n})`

export interface StreamOutcome {
  status: number | undefined
  requestedAt: number
  /** Streams open at this client when this one was requested (its own not counted). */
  openAtStart: number
  headersAt: number | undefined
  startAt: number | undefined
  firstTokenAt: number | undefined
  final: "message_end" | "error" | undefined
  errorText: string | undefined
  messageId: string | undefined
  ids: Array<number>
  firstEvent: string | undefined
  resumed: boolean
}

export interface StreamOptions {
  /** The question's number: it goes into the text, where the provider's relay reads it. */
  readonly n: number
  readonly first: string
  /** A second Basalt to resume on, after `cutAfter` events on the first. */
  readonly second: string | undefined
  readonly cutAfter: number
  readonly sessionId: string
  readonly token: string
  /** Streams open now, by question number: a stream is in it from its 200 to its end. */
  readonly open: Set<number>
  readonly timeoutMs: number
  readonly onFirstToken: () => void
}

const describe = (error: unknown) => (error instanceof Error ? error.message : String(error))

/** Reads an event stream to its end, or until `stopAfter` events (then cuts it). */
const readEvents = async (
  response: Response,
  outcome: StreamOutcome,
  stopAfter: number | undefined,
  abort: AbortController,
  onFirstToken: () => void
): Promise<"ended" | "cut"> => {
  let seen = 0
  let cut = false
  const parser = createParser({
    onEvent: (event) => {
      if (cut) return
      seen++
      outcome.firstEvent ??= event.event
      if (event.id !== undefined) outcome.ids.push(Number(event.id))
      if (event.event === "message_start") {
        outcome.startAt ??= performance.now()
        outcome.messageId = (JSON.parse(event.data) as { message_id: string }).message_id
      } else if (event.event === "token" && outcome.firstTokenAt === undefined) {
        outcome.firstTokenAt = performance.now()
        onFirstToken()
      } else if (event.event === "message_end" || event.event === "error") {
        outcome.final = event.event
        if (event.event === "error") outcome.errorText = event.data
      }
      if (stopAfter !== undefined && seen >= stopAfter && outcome.final === undefined) cut = true
    }
  })
  const decoder = new TextDecoder()
  const reader = response.body!.getReader()
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      parser.feed(decoder.decode(value, { stream: true }))
      if (cut) {
        abort.abort()
        return "cut"
      }
    }
  } catch (error) {
    if (cut) return "cut"
    outcome.errorText ??= `reading: ${describe(error)}`
  }
  return "ended"
}

export const runStream = async (options: StreamOptions): Promise<StreamOutcome> => {
  const { n, first, second, sessionId, token, open } = options
  const outcome: StreamOutcome = {
    status: undefined,
    requestedAt: performance.now(),
    openAtStart: open.size,
    headersAt: undefined,
    startAt: undefined,
    firstTokenAt: undefined,
    final: undefined,
    errorText: undefined,
    messageId: undefined,
    ids: [],
    firstEvent: undefined,
    resumed: false
  }
  const abort = new AbortController()
  const timeout = setTimeout(() => abort.abort(), options.timeoutMs)
  try {
    const response = await fetch(`${first}/api/v1/chat/sessions/${sessionId}/messages`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}`, accept: "text/event-stream" },
      body: JSON.stringify({ message: question(n) }),
      signal: abort.signal
    })
    outcome.status = response.status
    outcome.headersAt = performance.now()
    if (response.status !== 200) {
      outcome.errorText = `POST answered ${response.status}: ${(await response.text()).slice(0, 300)}`
      return outcome
    }
    open.add(n)
    const ended = await readEvents(response, outcome, second === undefined ? undefined : options.cutAfter, abort, options.onFirstToken)
    if (ended === "cut" && second !== undefined && outcome.messageId !== undefined) {
      outcome.resumed = true
      const resumeAbort = new AbortController()
      const resumeTimeout = setTimeout(() => resumeAbort.abort(), options.timeoutMs)
      try {
        const resumed = await fetch(`${second}/api/v1/chat/sessions/${sessionId}/messages/${outcome.messageId}/stream`, {
          headers: { authorization: `Bearer ${token}`, accept: "text/event-stream", "last-event-id": String(outcome.ids.at(-1)) },
          signal: resumeAbort.signal
        })
        if (resumed.status !== 200) {
          outcome.errorText = `resume answered ${resumed.status}: ${(await resumed.text()).slice(0, 300)}`
          return outcome
        }
        await readEvents(resumed, outcome, undefined, resumeAbort, options.onFirstToken)
      } finally {
        clearTimeout(resumeTimeout)
      }
    }
  } catch (error) {
    outcome.errorText ??= describe(error)
  } finally {
    clearTimeout(timeout)
    open.delete(n)
  }
  return outcome
}

/** Whether the ids arrived once each, contiguous, ending with the final event. */
export const resumeViolation = (outcome: StreamOutcome): string | undefined => {
  if (outcome.final === undefined) return "no final event"
  if (outcome.firstEvent !== "message_start") return `the first event was ${outcome.firstEvent}`
  if (!outcome.resumed) return "not cut and resumed"
  for (let i = 1; i < outcome.ids.length; i++) {
    if (outcome.ids[i] !== outcome.ids[i - 1]! + 1) return `ids ${outcome.ids[i - 1]} then ${outcome.ids[i]}`
  }
  return undefined
}
