/**
 * Chat messages through the real server: asking (streamed and as one JSON body), branches and
 * regenerations in the session's tree, checked citations (each resolves to a readable chunk whose
 * text at its span is its quote), a number the model invents not reaching the client, a dropped
 * stream resumed from Last-Event-ID (on another process too, on Postgres), stopping, one answer at
 * a time per session, provider failures, and nobody but the owner. Streams are parsed with a real
 * SSE parser and every event is validated against openapi.yaml (tests/support/chatStream.ts).
 * The provider is the embedded extractive answerer, or a fake OpenAI-compatible server that
 * streams real Chat Completions chunks at the rate a test sets.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { type ChatStream, type ChatStreamEvent, openChatStream, tokenText } from "./support/chatStream.ts"
import { type FakeChatServer, fakeChatModel, startFakeChatServer } from "./support/fakeChatServer.ts"
import { type Person, settled, signUp } from "./support/people.ts"
import { handbook } from "./support/chatFixtures.ts"
import { buildPdf } from "./support/pdfFiles.ts"
import { freshPostgresDatabase, startServer, type TestServer } from "./support/server.ts"

const slowly = (intervalMs: number, tokens?: ReadonlyArray<string>) => ({
  kind: "stream" as const,
  intervalMs,
  ...(tokens ? { tokens } : {})
})
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const newSession = async (server: TestServer, who: Person) => {
  const response = await server.request("/api/v1/chat/sessions", who.json("POST", {}))
  expect(response.status, response.text).toBe(201)
  return response.json().id as string
}

const addDocument = async (server: TestServer, who: Person) => {
  const response = await server.request("/api/v1/documents", who.json("POST", handbook))
  expect(response.status, response.text).toBe(202)
  expect((await settled(who, response.json().id)).status).toBe("indexed")
  return response.json().id as string
}

const messagesPath = (sessionId: string) => `/api/v1/chat/sessions/${sessionId}/messages`

/** POST …/messages expecting an event stream. */
const ask = async (server: TestServer, who: Person, sessionId: string, body: Record<string, unknown>): Promise<ChatStream> => {
  const opened = await openChatStream(server.url, messagesPath(sessionId), who.json("POST", body))
  if (opened.stream === undefined) throw new Error(`expected a stream: ${opened.response.status} ${opened.response.text}`)
  return opened.stream
}

/** GET …/stream, from after `lastEventId` when given. */
const resume = async (
  server: TestServer,
  who: Person,
  sessionId: string,
  messageId: string,
  lastEventId?: number,
  skipping?: ReadonlySet<number>
) => {
  const headers: Record<string, string> = { authorization: `Bearer ${who.token}` }
  if (lastEventId !== undefined) headers["last-event-id"] = String(lastEventId)
  return openChatStream(server.url, `${messagesPath(sessionId)}/${messageId}/stream`, { headers }, lastEventId ?? 0, skipping)
}

const stop = (server: TestServer, who: Person, sessionId: string, messageId: string) =>
  server.request(`${messagesPath(sessionId)}/${messageId}/stop`, who.json("POST"))

/** The events of a whole answer: message_start first, message_end last, tokens joining to its content. */
const completed = (events: ReadonlyArray<ChatStreamEvent>) => {
  const [start] = events
  const end = events.at(-1)!
  expect(start?.event).toBe("message_start")
  expect(end.event, JSON.stringify(end.data)).toBe("message_end")
  expect(end.data.message_id).toBe(start!.data.message_id)
  expect(tokenText(events)).toBe(end.data.content)
  return {
    start: start!.data,
    end: end.data,
    citations: events.filter((event) => event.event === "citation").map((event) => event.data)
  }
}

const sessionOf = async (who: Person, sessionId: string) => {
  const response = await who.get(`/api/v1/chat/sessions/${sessionId}`)
  expect(response.status).toBe(200)
  return response.json()
}

/** One message of a session, by its id. */
const messageOf = async (who: Person, sessionId: string, messageId: string) =>
  (await sessionOf(who, sessionId)).messages.find((message: { id: string }) => message.id === messageId)

/** Every citation resolves: a chunk of a document `who` may read, its text at the span the quote, `[n]` at its place in the answer. */
const expectResolvable = async (server: TestServer, who: Person, content: string, citations: ReadonlyArray<any>) => {
  for (const citation of citations) {
    const [chunk] = await server.query<{ document_id: string; content: string }>(
      "SELECT document_id::text AS document_id, content FROM chunks WHERE id = $1",
      [citation.chunk_id]
    )
    expect(chunk, `chunk ${citation.chunk_id}`).toBeDefined()
    expect(chunk!.document_id).toBe(citation.document_id)
    expect(chunk!.content.slice(citation.chunk_start, citation.chunk_end)).toBe(citation.quote)
    expect(citation.quote.length).toBeGreaterThan(0)
    expect((await who.get(`/api/v1/documents/${citation.document_id}`)).status).toBe(200)
    expect(content.slice(citation.answer_start, citation.answer_end)).toContain(`[${citation.number}]`)
  }
}

describe("chat messages with the extractive answerer", () => {
  let server: TestServer
  let owner: Person
  let stranger: Person

  beforeAll(async () => {
    server = await startServer({ BASALT_ALLOW_SIGNUP: "true" }, { emptyDatabase: true })
    owner = await signUp(server, "asker")
    stranger = await signUp(server, "outsider")
    await addDocument(server, owner)
  }, 60_000)
  afterAll(() => server?.stop())

  it("answers three turns with a branch and a regeneration, every citation resolving, and keeps the tree", async () => {
    const sessionId = await newSession(server, owner)
    const turns: Array<{ question: string; parent?: string; user: string; answer: string; content: string }> = []
    const turn = async (question: string, parent?: string) => {
      const stream = await ask(
        server,
        owner,
        sessionId,
        parent === undefined ? { message: question } : { message: question, parent_message_id: parent }
      )
      const { citations, end, start } = completed(await stream.untilEnd())
      expect(start.session_id).toBe(sessionId)
      expect(end.model).toBe("basalt-extractive-v1")
      expect(end.finish_reason).toBe("stop")
      expect(end.invalid_citations).toBe(0)
      expect(citations.length, end.content).toBeGreaterThan(0)
      // A cited chunk is one the answerer was shown.
      const shown = new Set(start.retrieved.map((source: { chunk_id: string }) => source.chunk_id))
      for (const citation of citations) expect(shown.has(citation.chunk_id)).toBe(true)
      await expectResolvable(server, owner, end.content, citations)
      const added = { question, user: start.user_message_id, answer: start.message_id, content: end.content, citations }
      turns.push({ ...added, ...(parent === undefined ? {} : { parent }) })
      return added
    }

    const first = await turn("How often are API keys rotated?")
    expect(first.content).toContain("90 days")
    const followUp = await turn("How long do old API keys keep working after rotation?", first.answer)
    expect(followUp.content).toContain("one day")
    const branch = await turn("When does the canteen serve lunch?", first.answer)
    expect(branch.content).toContain("noon")
    const regenerated = await turn("When does the canteen serve lunch?", first.answer)

    const detail = await sessionOf(owner, sessionId)
    expect(detail.current_message_id).toBe(regenerated.answer)
    const byId = new Map<string, any>(detail.messages.map((message: { id: string }) => [message.id, message]))
    expect(detail.messages).toHaveLength(8)
    // Oldest first: every message after the one it follows (a question before its answer).
    const order = detail.messages.map((message: { id: string }) => message.id)
    for (const message of detail.messages) {
      if (message.parent_message_id !== null)
        expect(order.indexOf(message.parent_message_id), message.role).toBeLessThan(order.indexOf(message.id))
    }
    expect(byId.get(first.user)).toMatchObject({ role: "user", parent_message_id: null, content: first.question })
    for (const { answer, content, user } of [first, followUp, branch, regenerated]) {
      expect(byId.get(answer)).toMatchObject({
        role: "assistant",
        parent_message_id: user,
        status: "complete",
        content,
        finish_reason: "stop"
      })
    }
    for (const later of [followUp, branch, regenerated]) {
      expect(byId.get(later.user)).toMatchObject({ role: "user", parent_message_id: first.answer, content: later.question })
    }
    // The session shows the citations the stream sent.
    for (const asked of [first, followUp, branch, regenerated]) {
      expect(byId.get(asked.answer).citations).toEqual(asked.citations)
      await expectResolvable(server, owner, asked.content, byId.get(asked.answer).citations)
    }
  })

  it("names the page of a PDF that each citation quotes, as the document's pages place it", async () => {
    const form = new FormData()
    const pdf = await buildPdf([
      { heading: "Travel policy", body: "Employees book travel through the company portal." },
      { heading: "", body: "" },
      { heading: "Hotels", body: "Hotel rooms are booked at least fourteen days before the trip." }
    ])
    form.append("files", new Blob([Buffer.from(pdf)], { type: "application/pdf" }), "travel.pdf")
    const uploaded = await server.request("/api/v1/documents/upload", {
      method: "POST",
      headers: { authorization: `Bearer ${owner.token}` },
      body: form
    })
    expect(uploaded.status, uploaded.text).toBe(202)
    const documentId = uploaded.json().items[0].id as string
    expect((await settled(owner, documentId)).status).toBe("indexed")

    const sessionId = await newSession(server, owner)
    const { citations, end, start } = completed(
      await (await ask(server, owner, sessionId, { message: "How many days before the trip are hotel rooms booked?" })).untilEnd()
    )
    await expectResolvable(server, owner, end.content, citations)
    const fromPdf = citations.filter((citation) => citation.document_id === documentId)
    expect(fromPdf.length, end.content).toBeGreaterThan(0)
    const [document] = await server.query<{ content: string; page_starts: ReadonlyArray<number> }>(
      "SELECT content, page_starts FROM documents WHERE id = $1",
      [documentId]
    )
    expect(document!.page_starts).toEqual([0, document!.content.indexOf("Hotels"), document!.content.indexOf("Hotels")])
    // One chunk holds the three pages.
    const chunks = (await owner.get(`/api/v1/documents/${documentId}/chunks`)).json().items
    expect(chunks.map((chunk: { first_page: number; last_page: number }) => [chunk.first_page, chunk.last_page])).toEqual([[1, 3]])
    // A document posted as text has no pages.
    const posted = (await owner.get("/api/v1/documents")).json().items.find((item: { id: string }) => item.id !== documentId)
    const postedChunks = (await owner.get(`/api/v1/documents/${posted.id}/chunks`)).json().items
    expect(postedChunks.length).toBeGreaterThan(0)
    for (const chunk of postedChunks) expect([chunk.first_page, chunk.last_page]).toEqual([null, null])
    // Search results name the page their chunk begins on.
    const searched = await server.request("/api/v1/search", owner.json("POST", { query: "hotel rooms booked travel", mode: "keyword" }))
    const pages = new Map(
      searched.json().results.map((result: { document_id: string; page: number | null }) => [result.document_id, result.page])
    )
    expect(pages.get(documentId)).toBe(1)
    for (const citation of fromPdf) {
      const [chunk] = await server.query<{ start_offset: number }>("SELECT start_offset FROM chunks WHERE id = $1", [citation.chunk_id])
      const at = chunk!.start_offset + citation.chunk_start
      // The page is the one whose text holds the quote: the last page beginning at or before it.
      expect(citation.page).toBe(document!.page_starts.findLastIndex((pageStart) => pageStart <= at) + 1)
      expect(document!.content.slice(at, at + citation.quote.length)).toBe(citation.quote)
    }
    expect(fromPdf.map((citation) => [citation.quote, citation.page])).toContainEqual([
      "Hotel rooms are booked at least fourteen days before the trip.",
      3
    ])
    const shown = start.retrieved.find((source: { document_id: string }) => source.document_id === documentId)
    expect(shown.page).toBe(1)
    expect((await messageOf(owner, sessionId, start.message_id)).citations).toEqual(citations)
  })

  it("says plainly, citing nothing, when the documents do not answer", async () => {
    const sessionId = await newSession(server, owner)
    const { citations, end } = completed(
      await (await ask(server, owner, sessionId, { message: "What is the boiling point of mercury in kelvin?" })).untilEnd()
    )
    expect(citations).toEqual([])
    expect(end.content).toBe("The documents I can search do not answer this question.")
    expect((await messageOf(owner, sessionId, end.message_id)).citations).toEqual([])
  })

  it("answers with stream false as one JSON body, the same answer the session keeps", async () => {
    const sessionId = await newSession(server, owner)
    const response = await server.request(
      messagesPath(sessionId),
      owner.json("POST", { message: "How often are API keys rotated?", stream: false })
    )
    expect(response.status, response.text).toBe(200)
    expect(response.headers.get("content-type")).toMatch(/^application\/json/)
    const body = response.json()
    expect(body.session_id).toBe(sessionId)
    expect(body.user_message).toMatchObject({ role: "user", content: "How often are API keys rotated?", parent_message_id: null })
    expect(body.answer).toMatchObject({ role: "assistant", status: "complete", parent_message_id: body.user_message.id })
    expect(body.answer.content).toContain("90 days")
    expect(body.answer.citations.length).toBeGreaterThan(0)
    expect(body.sources.length).toBeGreaterThan(0)
    await expectResolvable(server, owner, body.answer.content, body.answer.citations)
    const detail = await sessionOf(owner, sessionId)
    expect(detail.current_message_id).toBe(body.answer.id)
    expect(detail.messages).toHaveLength(2)
    expect(detail.messages).toContainEqual(body.user_message)
    expect(detail.messages).toContainEqual(body.answer)
  })

  it("answers without [n] markers or citations when asked with include_citations false, streamed or not", async () => {
    const sessionId = await newSession(server, owner)
    const streamed = completed(
      await (await ask(server, owner, sessionId, { message: "How often are API keys rotated?", include_citations: false })).untilEnd()
    )
    expect(streamed.citations).toEqual([])
    expect(streamed.start.retrieved.length).toBeGreaterThan(0)
    expect(streamed.end.content).toContain("90 days")
    expect(streamed.end.content).not.toMatch(/\[\d/)
    expect(await messageOf(owner, sessionId, streamed.start.message_id)).toMatchObject({ content: streamed.end.content, citations: [] })

    const response = await server.request(
      messagesPath(sessionId),
      owner.json("POST", { message: "When does the canteen serve lunch?", include_citations: false, stream: false })
    )
    expect(response.status, response.text).toBe(200)
    const { answer } = response.json()
    expect(answer.content).toContain("noon")
    expect(answer.content).not.toMatch(/\[\d/)
    expect(answer.citations).toEqual([])
  })

  it("replays a finished answer after Last-Event-ID, and refuses to stop it (409)", async () => {
    const sessionId = await newSession(server, owner)
    const all = await (await ask(server, owner, sessionId, { message: "How often are API keys rotated?" })).untilEnd()
    const messageId = all[0]!.data.message_id
    const whole = await resume(server, owner, sessionId, messageId)
    expect((await whole.stream!.untilEnd()).map((event) => [event.id, event.event, event.data])).toEqual(
      all.map((event) => [event.id, event.event, event.data])
    )
    const after = await resume(server, owner, sessionId, messageId, 2)
    expect(await after.stream!.untilEnd()).toEqual(all.slice(2))
    const refused = await stop(server, owner, sessionId, messageId)
    expect(refused.status).toBe(409)
  })

  it("never shows a citation or a source of a document the asker can no longer read, replays included", async () => {
    // The admin publishes a document; a basic user asks about it; then the admin makes it private.
    const posted = await server.request(
      "/api/v1/documents",
      owner.json("POST", {
        title: "Parking",
        source: "facilities",
        visibility: "public",
        content: "The parking garage opens at six in the morning. Visitors park on level two."
      })
    )
    expect(posted.status, posted.text).toBe(202)
    const parking = posted.json().id as string
    expect((await settled(owner, parking)).status).toBe("indexed")

    const sessionId = await newSession(server, stranger)
    const live = await (await ask(server, stranger, sessionId, { message: "When does the parking garage open?" })).untilEnd()
    const { citations, start } = completed(live)
    expect(citations.map((citation) => citation.document_id)).toContain(parking)
    expect(start.retrieved.map((source: { document_id: string }) => source.document_id)).toContain(parking)

    const made = await server.request(`/api/v1/documents/${parking}`, owner.json("PATCH", { visibility: "private" }))
    expect(made.status, made.text).toBe(200)
    const skipped = new Set(
      live.filter((event) => event.event === "citation" && event.data.document_id === parking).map((event) => event.id)
    )
    const replayed = await resume(server, stranger, sessionId, start.message_id, 0, skipped)
    const replay = await replayed.stream!.untilEnd()
    expect(replay.filter((event) => event.event === "citation" && event.data.document_id === parking)).toEqual([])
    expect(replay[0]!.data.retrieved.map((source: { document_id: string }) => source.document_id)).not.toContain(parking)
    expect(replay.at(-1)!.event).toBe("message_end")
    const answer = await messageOf(stranger, sessionId, start.message_id)
    expect(answer.citations.map((citation: { document_id: string }) => citation.document_id)).not.toContain(parking)
  })

  it("answers 404 to anyone else: asking, following and stopping in someone else's session", async () => {
    const sessionId = await newSession(server, owner)
    const all = await (await ask(server, owner, sessionId, { message: "How often are API keys rotated?" })).untilEnd()
    const messageId = all[0]!.data.message_id
    const posted = await openChatStream(server.url, messagesPath(sessionId), stranger.json("POST", { message: "Mine now?" }))
    expect(posted.response?.status).toBe(404)
    const followed = await resume(server, stranger, sessionId, messageId)
    expect(followed.response?.status).toBe(404)
    expect((await stop(server, stranger, sessionId, messageId)).status).toBe(404)
    // Nothing was added by the stranger's question.
    expect((await sessionOf(owner, sessionId)).messages).toHaveLength(2)
  })
})

describe("chat messages with an OpenAI-compatible provider", () => {
  let fake: FakeChatServer
  let server: TestServer
  let owner: Person

  beforeAll(async () => {
    fake = await startFakeChatServer()
    server = await startServer(
      {
        BASALT_ALLOW_SIGNUP: "true",
        BASALT_CHAT_URL: fake.baseUrl,
        BASALT_CHAT_MODELS: `${fakeChatModel},fake-chat-2`,
        // Short, so that a provider that keeps failing shows in seconds.
        BASALT_CHAT_TIMEOUT: "3 seconds"
      },
      { emptyDatabase: true }
    )
    owner = await signUp(server, "provider-asker")
    await addDocument(server, owner)
  }, 60_000)
  afterEach(() => fake.reset())
  afterAll(async () => {
    await server?.stop()
    await fake?.close()
  })

  it("answers three turns with a branch and a regeneration, the question rewritten with the history, every citation resolving", async () => {
    const sessionId = await newSession(server, owner)
    const turn = async (message: string, parent: string | undefined, replies: ReadonlyArray<ReadonlyArray<string>>) => {
      fake.queue(...replies.map((tokens) => ({ kind: "stream" as const, tokens })))
      const stream = await ask(server, owner, sessionId, parent === undefined ? { message } : { message, parent_message_id: parent })
      const { citations, end, start } = completed(await stream.untilEnd())
      expect(end.finish_reason).toBe("stop")
      expect(citations.map((citation) => citation.number)).toEqual([1])
      await expectResolvable(server, owner, end.content, citations)
      return { user: start.user_message_id as string, answer: start.message_id as string, content: end.content as string }
    }
    const first = await turn("How often are API keys rotated?", undefined, [["Every 90 days [1]."]])
    // A follow-up is first rewritten with the conversation so far (one request), then answered.
    const followUp = await turn("And the old ones?", first.answer, [
      ["How long do old API keys keep working after rotation?"],
      ["For one day after rotation [1]."]
    ])
    const rewrite = JSON.stringify(fake.requests[1]!.body)
    expect(rewrite).toContain("How often are API keys rotated?")
    expect(rewrite).toContain("And the old ones?")
    expect(JSON.stringify(fake.requests[2]!.body)).toContain("And the old ones?")
    const branch = await turn("When is lunch?", first.answer, [["When does the canteen serve lunch?"], ["From noon [1]."]])
    const regenerated = await turn("When is lunch?", first.answer, [["When does the canteen serve lunch?"], ["Lunch starts at noon [1]."]])
    expect(fake.requests).toHaveLength(7)

    const detail = await sessionOf(owner, sessionId)
    expect(detail.current_message_id).toBe(regenerated.answer)
    expect(detail.messages).toHaveLength(8)
    const byId = new Map<string, any>(detail.messages.map((message: { id: string }) => [message.id, message]))
    for (const { answer, content, user } of [first, followUp, branch, regenerated]) {
      expect(byId.get(answer)).toMatchObject({ role: "assistant", parent_message_id: user, status: "complete", content })
      await expectResolvable(server, owner, content, byId.get(answer).citations)
    }
    for (const later of [followUp, branch, regenerated]) expect(byId.get(later.user).parent_message_id).toBe(first.answer)
  })

  it("drops a citation number the model invented, counting it, and passes temperature and max_tokens on", async () => {
    const sessionId = await newSession(server, owner)
    fake.queue({ kind: "stream", tokens: ["Keys are rotated every 90 days [1].", " Lunch is free [9]."] })
    const stream = await ask(server, owner, sessionId, {
      message: "How often are API keys rotated?",
      temperature: 0.4,
      max_tokens: 77,
      model: "fake-chat-2"
    })
    const { citations, end, start } = completed(await stream.untilEnd())
    expect(start.retrieved.length).toBeGreaterThan(0)
    expect(start.retrieved.length).toBeLessThan(9)
    expect(end.content).toBe("Keys are rotated every 90 days [1]. Lunch is free [9].")
    expect(end.invalid_citations).toBe(1)
    expect(end.model).toBe("fake-chat-2")
    expect(citations.map((citation) => citation.number)).toEqual([1])
    await expectResolvable(server, owner, end.content, citations)
    expect(fake.requests).toHaveLength(1)
    expect(fake.requests[0]!.body).toMatchObject({ model: "fake-chat-2", temperature: 0.4, max_tokens: 77, stream: true })
  })

  it("says so when the provider withholds the rest of an answer (content_filter), keeping what it wrote", async () => {
    const sessionId = await newSession(server, owner)
    fake.queue({ kind: "stream", tokens: ["Keys are rotated every 90 days [1]."], finishReason: "content_filter" })
    const { citations, end, start } = completed(
      await (await ask(server, owner, sessionId, { message: "How often are API keys rotated?" })).untilEnd()
    )
    expect(end).toMatchObject({ finish_reason: "content_filter", content: "Keys are rotated every 90 days [1]." })
    expect(citations.map((citation) => citation.number)).toEqual([1])
    expect(await messageOf(owner, sessionId, start.message_id)).toMatchObject({
      status: "complete",
      finish_reason: "content_filter",
      content: end.content
    })
  })

  it("refuses a model outside the allowlist with 422 naming model, asking nothing", async () => {
    const sessionId = await newSession(server, owner)
    const response = await server.request(messagesPath(sessionId), owner.json("POST", { message: "Hello?", model: "gpt-unlisted" }))
    expect(response.status).toBe(422)
    expect(response.json().details.map((detail: { path: string }) => detail.path)).toEqual(["model"])
    expect(fake.requests).toHaveLength(0)
    expect((await sessionOf(owner, sessionId)).messages).toEqual([])
  })

  it("resumes a dropped stream from Last-Event-ID with no gap and no repeat", async () => {
    const sessionId = await newSession(server, owner)
    fake.queue(slowly(120))
    const stream = await ask(server, owner, sessionId, { message: "How often are API keys rotated?" })
    const before = await stream.take(4)
    expect(before.map((event) => event.event)).toEqual(["message_start", "token", "token", "token"])
    stream.cut()
    const lastId = before.at(-1)!.id
    const messageId = before[0]!.data.message_id
    // Still generating: the answer did not stop with the connection.
    expect((await messageOf(owner, sessionId, messageId)).status).toBe("generating")
    const resumed = await resume(server, owner, sessionId, messageId, lastId)
    const after = await resumed.stream!.untilEnd()
    expect(after[0]!.id).toBe(lastId + 1)
    const all = [...before, ...after]
    expect(all.map((event) => event.id)).toEqual(all.map((_, i) => i + 1))
    const { end } = completed(all)
    expect(end.content).toBe("Keys are rotated every 90 days [1]. Old keys stop working after a day [2].")
    // The provider was read to the end of the answer: the dropped client did not stop it.
    expect(fake.requests[0]!.chunksSent).toBe(17)
  })

  it("stops an answer being generated: 202, message_end stopped, the text so far kept, the provider cut; then 409", async () => {
    const sessionId = await newSession(server, owner)
    fake.queue(slowly(150))
    const stream = await ask(server, owner, sessionId, { message: "How often are API keys rotated?" })
    const before = await stream.take(3)
    const messageId = before[0]!.data.message_id
    const stopped = await stop(server, owner, sessionId, messageId)
    expect(stopped.status, stopped.text).toBe(202)
    const all = await stream.untilEnd()
    const { end } = completed(all)
    expect(end.finish_reason).toBe("stopped")
    expect(end.content.length).toBeGreaterThan(0)
    const message = await messageOf(owner, sessionId, messageId)
    expect(message).toMatchObject({ id: messageId, status: "stopped", finish_reason: "stopped", content: end.content })
    // The provider's request was cut before it had sent the whole answer.
    const [provider] = fake.requests
    await provider!.closed
    expect(provider!.completed).toBe(false)
    expect(provider!.chunksSent).toBeLessThan(17)
    expect((await stop(server, owner, sessionId, messageId)).status).toBe(409)
  })

  it("refuses a second question while one is generated, naming the running message (409)", async () => {
    const sessionId = await newSession(server, owner)
    fake.queue(slowly(100))
    const stream = await ask(server, owner, sessionId, { message: "How often are API keys rotated?" })
    const [start] = await stream.take(1)
    const messageId = start!.data.message_id
    const second = await server.request(messagesPath(sessionId), owner.json("POST", { message: "And the canteen?" }))
    expect(second.status).toBe(409)
    expect(second.json().message).toContain(messageId)
    completed(await stream.untilEnd())
    expect((await sessionOf(owner, sessionId)).messages).toHaveLength(2)
  })

  it("ends the stream with a retryable error event when the provider breaks off mid-answer", async () => {
    const sessionId = await newSession(server, owner)
    fake.queue({ kind: "stream", intervalMs: 20, breakAfter: 4 })
    const all = await (await ask(server, owner, sessionId, { message: "How often are API keys rotated?" })).untilEnd()
    expect(all[0]!.event).toBe("message_start")
    const last = all.at(-1)!
    expect(last.event).toBe("error")
    expect(last.data.retryable, JSON.stringify(last.data)).toBe(true)
    expect(tokenText(all)).toBe("Keys are rotated every")
    expect(all.filter((event) => event.event === "message_end")).toEqual([])
    expect(await messageOf(owner, sessionId, all[0]!.data.message_id)).toMatchObject({ status: "failed" })
  })

  it("answers 503 with stream false when the provider stays unavailable, 502 when it refuses", async () => {
    const unavailable = await newSession(server, owner)
    fake.queue(...Array.from({ length: 30 }, () => ({ kind: "status" as const, status: 503 })))
    const response = await server.request(
      messagesPath(unavailable),
      owner.json("POST", { message: "How often are API keys rotated?", stream: false })
    )
    expect(response.status, response.text).toBe(503)
    expect(response.json()).toMatchObject({ error: expect.any(String), message: expect.any(String) })
    expect(fake.requests.length).toBeGreaterThan(1)
    expect((await sessionOf(owner, unavailable)).messages.find((message: { role: string }) => message.role === "assistant").status).toBe(
      "failed"
    )

    fake.reset()
    const refused = await newSession(server, owner)
    fake.queue({ kind: "status", status: 401 })
    const rejected = await server.request(
      messagesPath(refused),
      owner.json("POST", { message: "How often are API keys rotated?", stream: false })
    )
    expect(rejected.status, rejected.text).toBe(502)
    expect(rejected.json()).toMatchObject({ error: expect.any(String), message: expect.any(String) })
    expect(fake.requests).toHaveLength(1)
  })
})

describe.runIf(process.env.DATABASE_URL)("chat messages on two processes", () => {
  let fake: FakeChatServer
  let database: Awaited<ReturnType<typeof freshPostgresDatabase>>
  let first: TestServer
  let second: TestServer

  beforeAll(async () => {
    fake = await startFakeChatServer()
    database = await freshPostgresDatabase()
    const env = {
      BASALT_ALLOW_SIGNUP: "true",
      BASALT_JWT_SECRET: "chat-messages-two-processes-secret-0123456789",
      BASALT_CHAT_URL: fake.baseUrl,
      BASALT_CHAT_MODELS: fakeChatModel,
      DATABASE_URL: database.url
    }
    first = await startServer(env)
    second = await startServer(env)
  }, 60_000)
  afterAll(async () => {
    await first?.stop()
    await second?.stop()
    await database?.drop()
    await fake?.close()
  })

  it("resumes on the other process, every event exactly once", async () => {
    const owner = await signUp(first, "two-process-asker")
    await addDocument(first, owner)
    const sessionId = await newSession(first, owner)
    fake.queue(slowly(120))
    const stream = await ask(first, owner, sessionId, { message: "How often are API keys rotated?" })
    const before = await stream.take(4)
    stream.cut()
    const lastId = before.at(-1)!.id
    // Let the answer go on while nobody listens.
    await sleep(300)
    const resumed = await resume(second, owner, sessionId, before[0]!.data.message_id, lastId)
    const after = await resumed.stream!.untilEnd()
    const all = [...before, ...after]
    expect(all.map((event) => event.id)).toEqual(all.map((_, i) => i + 1))
    const { end } = completed(all)
    expect(end.content).toBe("Keys are rotated every 90 days [1]. Old keys stop working after a day [2].")
    expect(fake.requests).toHaveLength(1)
  })
})
