/**
 * GET /api/v1/chat/ws through the real server, with the `ws` package as the client: asking (two
 * sessions at once on one socket), resuming a finished answer, stopping one being generated, one
 * answer at a time per session, and the refusals (not a handshake, no credential, another site's
 * origin, frames that are not JSON, invalid, too large, another user's session, a credential
 * revoked while the socket is open). Every frame the server sends is validated against
 * ChatSocketMessage, and an event's `data` against its event's schema, as the event stream's are.
 * The provider is a fake OpenAI-compatible server streaming at the rate a test sets.
 */
import type { IncomingMessage } from "node:http"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import WebSocket from "ws"
import { eventSchemas } from "./support/chatStream.ts"
import { validateComponent, validateResponse } from "./support/contract.ts"
import { type FakeChatServer, fakeChatModel, startFakeChatServer } from "./support/fakeChatServer.ts"
import { type Person, settled, signUp } from "./support/people.ts"
import { handbook, question } from "./support/chatFixtures.ts"
import { startServer, type TestServer } from "./support/server.ts"

const socketPath = "/api/v1/chat/ws"

/** The event schemas of the event stream, whose events an `event` frame carries. */
const answerEventSchemas = eventSchemas("POST", "/api/v1/chat/sessions/00000000-0000-4000-8000-000000000000/messages")

interface Frame {
  readonly type: "event" | "stopped" | "error"
  readonly ref?: string
  readonly message_id?: string
  readonly id?: string
  readonly event?: string
  readonly data?: any
  readonly status?: number
  readonly error?: string
  readonly message?: string
  readonly details?: ReadonlyArray<{ path: string; message: string }>
}

interface ChatSocket {
  /** Every frame received so far, validated. */
  readonly frames: ReadonlyArray<Frame>
  readonly send: (frame: object | string) => void
  /** The first frame (received already or to come) that `matches`. */
  readonly until: (matches: (frame: Frame) => boolean, timeoutMs?: number) => Promise<Frame>
  /** Settles with the close code once the socket is closed. */
  readonly closed: Promise<number>
  readonly close: () => void
}

/** A handshake the server refused: its response, validated against openapi.yaml. */
class Refused extends Error {
  constructor(
    readonly status: number,
    readonly headers: Headers,
    readonly body: any
  ) {
    super(`handshake refused: ${status}`)
  }
}

const refusal = async (response: IncomingMessage) => {
  const chunks: Array<Buffer> = []
  for await (const chunk of response) chunks.push(chunk as Buffer)
  const text = Buffer.concat(chunks).toString("utf8")
  const headers = new Headers()
  for (const [name, value] of Object.entries(response.headers)) {
    if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(", ") : value)
  }
  validateResponse("GET", socketPath, { status: response.statusCode!, headers, text })
  return new Refused(response.statusCode!, headers, text === "" ? undefined : JSON.parse(text))
}

/** Opens the socket with `headers` on the handshake; rejects with a Refused when the server answers otherwise. */
const openSocket = (server: TestServer, headers: Record<string, string>): Promise<ChatSocket> =>
  new Promise((resolve, reject) => {
    const ws = new WebSocket(`${server.url.replace(/^http/, "ws")}${socketPath}`, { headers })
    const frames: Array<Frame> = []
    const waiting = new Set<() => void>()
    let failure: Error | undefined
    const closed = new Promise<number>((settle) => ws.on("close", (code) => settle(code)))
    ws.on("message", (raw, isBinary) => {
      try {
        expect(isBinary, "a binary frame").toBe(false)
        const frame = JSON.parse(raw.toString()) as Frame
        validateComponent("ChatSocketMessage", frame)
        if (frame.type === "event") {
          const schema = answerEventSchemas[frame.event!]
          expect(schema, `the schema of event ${frame.event}`).toBeDefined()
          validateComponent(schema!, frame.data)
        }
        frames.push(frame)
      } catch (error) {
        failure ??= error as Error
      }
      for (const wake of waiting) wake()
    })
    ws.on("close", () => {
      for (const wake of waiting) wake()
    })
    ws.on("unexpected-response", (_request, response) => {
      refusal(response).then(reject, reject)
    })
    ws.on("error", reject)
    ws.on("open", () =>
      resolve({
        frames,
        send: (frame) => ws.send(typeof frame === "string" ? frame : JSON.stringify(frame)),
        until: (matches, timeoutMs = 15_000) =>
          new Promise((found, lost) => {
            const done = (finish: () => void) => {
              clearTimeout(timer)
              waiting.delete(look)
              finish()
            }
            const look = () => {
              if (failure !== undefined) return done(() => lost(failure))
              const frame = frames.find(matches)
              if (frame !== undefined) return done(() => found(frame))
              if (ws.readyState === WebSocket.CLOSED || ws.readyState === WebSocket.CLOSING) {
                done(() => lost(new Error(`the socket closed first; frames: ${JSON.stringify(frames).slice(0, 500)}`)))
              }
            }
            const timer = setTimeout(
              () => done(() => lost(new Error(`no such frame in ${timeoutMs} ms: ${JSON.stringify(frames).slice(-500)}`))),
              timeoutMs
            )
            waiting.add(look)
            look()
          }),
        closed,
        close: () => ws.close()
      })
    )
  })

const bearer = (who: Person) => ({ authorization: `Bearer ${who.token}` })

const isEvent = (messageId: string, event: string) => (frame: Frame) =>
  frame.type === "event" && frame.message_id === messageId && frame.event === event
const withRef = (ref: string, type: Frame["type"]) => (frame: Frame) => frame.ref === ref && frame.type === type

/** The event frames of one answer, in the order received. */
const eventsOf = (socket: ChatSocket, messageId: string, ref?: string) =>
  socket.frames.filter((frame) => frame.type === "event" && frame.message_id === messageId && (ref === undefined || frame.ref === ref))

/** Asks on `socket` with `ref`; the answer's id, from its message_start. */
const askOn = async (socket: ChatSocket, ref: string, sessionId: string, message = question) => {
  socket.send({ type: "ask", ref, session_id: sessionId, message })
  const start = await socket.until((frame) => frame.ref === ref && (frame.type === "error" || frame.event === "message_start"))
  expect(start.type, JSON.stringify(start)).toBe("event")
  return start.message_id!
}

/** A whole answer: message_start, tokens, citations, message_end, ids 1.. with none missing. */
const expectCompleteAnswer = (events: ReadonlyArray<Frame>) => {
  expect(events.map((frame) => frame.id)).toEqual(events.map((_, i) => String(i + 1)))
  expect(events[0]!.event).toBe("message_start")
  expect(events.at(-1)!.event).toBe("message_end")
  expect(events.filter((frame) => frame.event === "message_end")).toHaveLength(1)
  const end = events.at(-1)!.data
  const tokens = events.filter((frame) => frame.event === "token").map((frame) => frame.data.text)
  expect(tokens.length).toBeGreaterThan(0)
  expect(tokens.join("")).toBe(end.content)
  return { end, citations: events.filter((frame) => frame.event === "citation").map((frame) => frame.data) }
}

describe("chat over a WebSocket", () => {
  let fake: FakeChatServer
  let server: TestServer
  let owner: Person
  let stranger: Person

  const newSession = async (who: Person) => {
    const response = await server.request("/api/v1/chat/sessions", who.json("POST", {}))
    expect(response.status, response.text).toBe(201)
    return response.json().id as string
  }

  beforeAll(async () => {
    fake = await startFakeChatServer()
    server = await startServer(
      { BASALT_ALLOW_SIGNUP: "true", BASALT_CHAT_URL: fake.baseUrl, BASALT_CHAT_MODELS: fakeChatModel },
      { emptyDatabase: true }
    )
    owner = await signUp(server, "socket-asker")
    stranger = await signUp(server, "socket-outsider")
    const added = await server.request("/api/v1/documents", owner.json("POST", handbook))
    expect(added.status, added.text).toBe(202)
    expect((await settled(owner, added.json().id)).status).toBe("indexed")
  }, 60_000)
  afterEach(() => fake.reset())
  afterAll(async () => {
    await server?.stop()
    await fake?.close()
  })

  it("asks: message_start, tokens, citations and message_end under the ask's ref, the answer stored", async () => {
    const sessionId = await newSession(owner)
    const socket = await openSocket(server, bearer(owner))
    const messageId = await askOn(socket, "first", sessionId)
    await socket.until(isEvent(messageId, "message_end"))
    const events = eventsOf(socket, messageId)
    expect(events.every((frame) => frame.ref === "first")).toBe(true)
    expect(events[0]!.data).toMatchObject({ message_id: messageId, session_id: sessionId })
    const { end, citations } = expectCompleteAnswer(events)
    expect(end).toMatchObject({ message_id: messageId, finish_reason: "stop", model: fakeChatModel })
    // The model cites [1] and [2]; a number beyond the passages retrieved is dropped.
    const retrieved = events[0]!.data.retrieved.length
    expect(citations.map((citation) => citation.number)).toEqual([1, 2].filter((number) => number <= retrieved))
    expect(end.invalid_citations).toBe(2 - citations.length)
    const stored = await owner.get(`/api/v1/chat/sessions/${sessionId}`)
    expect(stored.status).toBe(200)
    const messages = stored.json().messages
    expect(messages.map((message: { role: string }) => message.role)).toEqual(["user", "assistant"])
    expect(messages[1]).toMatchObject({ id: messageId, status: "complete", content: end.content })
    socket.close()
    expect(await socket.closed).toBe(1005)
  })

  it("follows two sessions asked at once on one socket, each answer whole", async () => {
    const [left, right] = [await newSession(owner), await newSession(owner)]
    fake.queue({ kind: "stream", intervalMs: 30 }, { kind: "stream", intervalMs: 30 })
    const socket = await openSocket(server, bearer(owner))
    socket.send({ type: "ask", ref: "left", session_id: left, message: question })
    socket.send({ type: "ask", ref: "right", session_id: right, message: question })
    const leftStart = await socket.until(withRef("left", "event"))
    const rightStart = await socket.until(withRef("right", "event"))
    expect(leftStart.message_id).not.toBe(rightStart.message_id)
    await socket.until(isEvent(leftStart.message_id!, "message_end"))
    await socket.until(isEvent(rightStart.message_id!, "message_end"))
    for (const [ref, start, sessionId] of [
      ["left", leftStart, left],
      ["right", rightStart, right]
    ] as const) {
      const events = eventsOf(socket, start.message_id!)
      expect(events.every((frame) => frame.ref === ref)).toBe(true)
      expect(events[0]!.data.session_id).toBe(sessionId)
      expectCompleteAnswer(events)
    }
    expect(socket.frames.filter((frame) => frame.type !== "event")).toEqual([])
    socket.close()
  })

  it("resumes a finished answer after event 2 with exactly the events after it", async () => {
    const sessionId = await newSession(owner)
    const socket = await openSocket(server, bearer(owner))
    const messageId = await askOn(socket, "ask", sessionId)
    await socket.until(isEvent(messageId, "message_end"))
    const original = eventsOf(socket, messageId, "ask")
    socket.send({ type: "resume", ref: "again", session_id: sessionId, message_id: messageId, last_event_id: 2 })
    await socket.until((frame) => frame.ref === "again" && (frame.type === "error" || frame.event === "message_end"))
    const resumed = eventsOf(socket, messageId, "again")
    const strip = (frames: ReadonlyArray<Frame>) => frames.map(({ id, event, data }) => ({ id, event, data }))
    expect(strip(resumed)).toEqual(strip(original.slice(2)))
    expect(resumed[0]!.id).toBe("3")
    socket.close()
  })

  it("stops an answer being generated (stopped, then message_end stopped) and refuses a second ask meanwhile (409)", async () => {
    const sessionId = await newSession(owner)
    fake.queue({ kind: "stream", intervalMs: 150 })
    const socket = await openSocket(server, bearer(owner))
    const messageId = await askOn(socket, "slow", sessionId)
    await socket.until((frame) => frame.message_id === messageId && frame.event === "token")

    socket.send({ type: "ask", ref: "second", session_id: sessionId, message: "And the canteen?" })
    const busy = await socket.until(withRef("second", "error"))
    expect(busy).toMatchObject({ status: 409 })
    expect(busy.message).toContain(messageId)

    socket.send({ type: "stop", ref: "halt", session_id: sessionId, message_id: messageId })
    const stopped = await socket.until(withRef("halt", "stopped"))
    expect(stopped).toEqual({ type: "stopped", ref: "halt", message_id: messageId })
    const endFrame = await socket.until(isEvent(messageId, "message_end"))
    expect(socket.frames.indexOf(stopped)).toBeLessThan(socket.frames.indexOf(endFrame))
    const { end } = expectCompleteAnswer(eventsOf(socket, messageId))
    expect(end.finish_reason).toBe("stopped")
    expect(fake.requests[0]!.chunksSent).toBeLessThan(17)
    const stored = (await owner.get(`/api/v1/chat/sessions/${sessionId}`)).json()
    expect(stored.messages.find((message: { id: string }) => message.id === messageId)).toMatchObject({
      status: "stopped",
      content: end.content
    })
    socket.close()
  })

  it("answers a request that is not a handshake with 426 and Upgrade: websocket", async () => {
    const response = await owner.get(socketPath)
    expect(response.status).toBe(426)
    expect(response.headers.get("upgrade")).toBe("websocket")
  })

  it("refuses a handshake without a credential (401) and one from another site's page (403), opens one from this site", async () => {
    const anonymous = await openSocket(server, {}).catch((error: unknown) => error)
    expect(anonymous).toBeInstanceOf(Refused)
    expect((anonymous as Refused).status).toBe(401)

    const foreign = await openSocket(server, { ...bearer(owner), origin: "https://evil.example" }).catch((error: unknown) => error)
    expect(foreign).toBeInstanceOf(Refused)
    expect((foreign as Refused).status).toBe(403)

    const sameSite = await openSocket(server, { ...bearer(owner), origin: server.url })
    const sessionId = await newSession(owner)
    const messageId = await askOn(sameSite, "here", sessionId)
    await sameSite.until(isEvent(messageId, "message_end"))
    sameSite.close()
  })

  it("authenticates a browser by its session cookie, from a page of this site only", async () => {
    const login = await server.request("/api/v1/auth/login", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: "socket-asker@example.com", password: "socket-asker password long", session_cookie: true })
    })
    expect(login.status, login.text).toBe(200)
    const cookie = login.headers
      .getSetCookie()
      .map((header) => header.split(";")[0])
      .join("; ")
    expect(cookie).toContain("basalt_session=")
    const foreign = await openSocket(server, { cookie, origin: "https://evil.example" }).catch((error: unknown) => error)
    expect(foreign).toBeInstanceOf(Refused)
    expect((foreign as Refused).status).toBe(403)

    const sessionId = await newSession(owner)
    const browser = await openSocket(server, { cookie, origin: server.url })
    const messageId = await askOn(browser, "cookie", sessionId)
    await browser.until(isEvent(messageId, "message_end"))
    browser.send({ type: "stop", ref: "late-stop", session_id: sessionId, message_id: messageId })
    expect(await browser.until(withRef("late-stop", "error"))).toMatchObject({ status: 409 })
    browser.close()
  })

  it("answers frames it cannot take with an error frame: not JSON 400, invalid 422 naming the field, another user's session 404", async () => {
    const sessionId = await newSession(owner)
    const socket = await openSocket(server, bearer(owner))
    socket.send("not json")
    const notJson = await socket.until((frame) => frame.type === "error")
    expect(notJson).toMatchObject({ status: 400 })

    socket.send({ type: "ask", ref: "empty", session_id: sessionId, message: "" })
    const invalid = await socket.until(withRef("empty", "error"))
    expect(invalid).toMatchObject({ status: 422 })
    expect(invalid.details?.map((detail) => detail.path)).toEqual(["message"])

    const outsider = await openSocket(server, bearer(stranger))
    outsider.send({ type: "ask", ref: "theirs", session_id: sessionId, message: question })
    expect(await outsider.until(withRef("theirs", "error"))).toMatchObject({ status: 404 })
    outsider.send({ type: "resume", ref: "peek", session_id: sessionId, message_id: sessionId })
    expect(await outsider.until(withRef("peek", "error"))).toMatchObject({ status: 404 })
    outsider.close()
    socket.send({ type: "resume", ref: "nothing", session_id: sessionId, message_id: "00000000-0000-4000-8000-000000000000" })
    expect(await socket.until(withRef("nothing", "error"))).toMatchObject({ status: 404 })

    // Nothing was asked: the session is as it was.
    expect((await owner.get(`/api/v1/chat/sessions/${sessionId}`)).json().messages).toEqual([])
    expect(fake.requests).toHaveLength(0)
    socket.close()
  })

  it("closes the socket with 1009 on a frame over 64 KB", async () => {
    const sessionId = await newSession(owner)
    const socket = await openSocket(server, bearer(owner))
    socket.send({ type: "ask", session_id: sessionId, message: "x".repeat(65 * 1024) })
    expect(await socket.closed).toBe(1009)
    expect(fake.requests).toHaveLength(0)
  })

  it("closes the socket with 1009 on a frame over 64 KB of UTF-8 though under 64 K characters", async () => {
    const sessionId = await newSession(owner)
    const socket = await openSocket(server, bearer(owner))
    // 30,000 characters of three bytes each: 90 KB on the wire.
    socket.send({ type: "ask", ref: "wide", session_id: sessionId, message: "€".repeat(30_000) })
    const outcome = await Promise.race([socket.closed, socket.until(withRef("wide", "error")).then((frame) => frame.status)])
    expect(outcome).toBe(1009)
  })

  it("answers 401 and closes with 1008 once the credential is revoked while the socket is open", async () => {
    const leaver = await signUp(server, "socket-leaver")
    const sessionId = await newSession(leaver)
    const socket = await openSocket(server, bearer(leaver))
    const loggedOut = await server.request("/api/v1/auth/logout", leaver.json("POST"))
    expect(loggedOut.status, loggedOut.text).toBe(204)
    socket.send({ type: "ask", ref: "late", session_id: sessionId, message: question })
    expect(await socket.closed).toBe(1008)
    const [refused, ...rest] = socket.frames
    expect(refused).toMatchObject({ type: "error", status: 401 })
    expect(rest).toEqual([])
    expect(fake.requests).toHaveLength(0)
  })
})

describe("chat over a WebSocket under a small rate limit", () => {
  let server: TestServer

  beforeAll(async () => {
    server = await startServer({ BASALT_ALLOW_SIGNUP: "true", BASALT_RATE_LIMIT_PRINCIPAL: "6/1m" }, { emptyDatabase: true })
  }, 60_000)
  afterAll(() => server?.stop())

  it("counts every frame against the caller's limit: 429 frames once it is spent, the socket still open", async () => {
    const someone = await signUp(server, "socket-limited")
    const socket = await openSocket(server, bearer(someone))
    const unknown = "00000000-0000-4000-8000-000000000000"
    for (let i = 0; i < 8; i++) socket.send({ type: "resume", ref: `r${i}`, session_id: unknown, message_id: unknown })
    const statuses: Array<number | undefined> = []
    for (let i = 0; i < 8; i++) statuses.push((await socket.until(withRef(`r${i}`, "error"))).status)
    const firstLimited = statuses.indexOf(429)
    expect(firstLimited, JSON.stringify(statuses)).toBeGreaterThan(0)
    expect(statuses.slice(0, firstLimited).every((status) => status === 404)).toBe(true)
    expect(statuses.slice(firstLimited).every((status) => status === 429)).toBe(true)
    // The socket's frames and the routes draw on the same bucket.
    expect((await someone.get("/api/v1/chat/sessions")).status).toBe(429)
    socket.close()
    expect(await socket.closed).toBe(1005)
  })
})
