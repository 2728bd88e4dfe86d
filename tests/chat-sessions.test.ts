/**
 * Chat sessions and feedback: create (with a scope, whose collections the caller must see), list
 * newest first a page at a time, get with the message tree, citations and feedback, rename and
 * rescope, delete; feedback set, replaced and taken back. Only the owner sees a session or its
 * messages: anyone else, an admin too, gets 404 on every route. Messages cannot be posted through
 * the API yet: they are written here with SQL, as the chat flow will write them.
 */
import { randomUUID } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Person, signUp } from "./support/people.ts"
import { startServer, type TestServer } from "./support/server.ts"

describe("chat sessions", () => {
  let server: TestServer
  let admin: Person
  let owner: Person
  let stranger: Person

  beforeAll(async () => {
    server = await startServer({ BASALT_ALLOW_SIGNUP: "true" }, { emptyDatabase: true })
    admin = await signUp(server, "admin")
    owner = await signUp(server, "owner")
    stranger = await signUp(server, "stranger")
  })
  afterAll(() => server?.stop())

  const call = (who: Person, method: string, path: string, body?: unknown) => server.request(path, who.json(method, body))
  const newSession = async (who: Person, body: unknown = {}) => {
    const response = await call(who, "POST", "/api/v1/chat/sessions", body)
    expect(response.status, response.text).toBe(201)
    return response.json()
  }
  const paths = (response: { json: () => any }) => response.json().details.map((detail: { path: string }) => detail.path)

  /** A user question and an assistant answer in `sessionId`, written as the chat flow will write them. */
  const exchange = async (sessionId: string, parentId: string | null = null) => {
    const question = randomUUID()
    const answer = randomUUID()
    await server.query(
      `INSERT INTO chat_messages (id, session_id, parent_message_id, role, content, status, created_at)
       VALUES ($1, $2, $3, 'user', 'How often are keys rotated?', 'complete', clock_timestamp())`,
      [question, sessionId, parentId]
    )
    await server.query(
      `INSERT INTO chat_messages (id, session_id, parent_message_id, role, content, status, model, finish_reason, usage, created_at)
       VALUES ($1, $2, $3, 'assistant', 'Every 90 days [1].', 'complete', 'extractive', 'stop',
         '{"prompt_tokens": 120, "completion_tokens": 6}', clock_timestamp())`,
      [answer, sessionId, question]
    )
    await server.query("UPDATE chat_sessions SET current_message_id = $1 WHERE id = $2", [answer, sessionId])
    return { question, answer }
  }

  it("creates a session, titled New chat and unscoped unless told, its scope normalised", async () => {
    const plain = await newSession(owner)
    expect(plain).toMatchObject({ title: "New chat", scope: {}, current_message_id: null })
    expect(plain.created_at).toBe(plain.updated_at)

    const collection = (await call(owner, "POST", "/api/v1/collections", { name: "Security" })).json()
    const scoped = await newSession(owner, {
      title: "  Key rotation ",
      scope: { collection_ids: [collection.id], sources: ["confluence"], tags: [" Security ", "KEYS"] }
    })
    expect(scoped).toMatchObject({
      title: "Key rotation",
      scope: { collection_ids: [collection.id], sources: ["confluence"], tags: ["security", "keys"] }
    })
    expect((await owner.get(`/api/v1/chat/sessions/${scoped.id}`)).json()).toMatchObject({ scope: scoped.scope, messages: [] })
  })

  it("refuses a collection the caller cannot see, naming it, and bad input, naming the field", async () => {
    const theirs = (await call(stranger, "POST", "/api/v1/collections", { name: "Private" })).json()
    const missing = randomUUID()
    const refused = await call(owner, "POST", "/api/v1/chat/sessions", { scope: { collection_ids: [theirs.id, missing] } })
    expect(refused.status).toBe(404)
    expect(refused.json().message).toBe(`No such collection: ${theirs.id}, ${missing}`)

    const cases: Array<[unknown, string]> = [
      [{ title: " " }, "title"],
      [{ title: "x".repeat(201) }, "title"],
      [{ title: null }, "title"],
      [{ scope: { collection_ids: [] } }, "scope.collection_ids"],
      [{ scope: { collection_ids: ["42"] } }, "scope.collection_ids.0"],
      [{ scope: { tags: ["x".repeat(65)] } }, "scope.tags.0"],
      [{ scope: { tags: [" "] } }, "scope.tags.0"],
      [{ scope: { sources: [""] } }, "scope.sources.0"],
      [{ scope: { document_ids: [randomUUID()] } }, "scope.document_ids"],
      [{ colour: "blue" }, "colour"]
    ]
    for (const [body, path] of cases) {
      const response = await call(owner, "POST", "/api/v1/chat/sessions", body)
      expect(response.status, JSON.stringify(body)).toBe(422)
      expect(paths(response), JSON.stringify(body)).toEqual([path])
    }
  })

  it("lists the caller's sessions newest first, a page at a time, with no repeats and no gaps", async () => {
    const lister = await signUp(server, "lister")
    const created: string[] = []
    for (let i = 0; i < 7; i++) created.push((await newSession(lister, { title: `Chat ${i}` })).id)
    const seen: string[] = []
    let cursor: string | null = null
    do {
      const response = await lister.get(`/api/v1/chat/sessions?limit=3${cursor === null ? "" : `&cursor=${cursor}`}`)
      expect(response.status).toBe(200)
      const page = response.json()
      expect(page.items.length).toBeLessThanOrEqual(3)
      seen.push(...page.items.map((session: { id: string }) => session.id))
      cursor = page.next_cursor
    } while (cursor !== null)
    expect(seen).toEqual([...created].reverse())
    expect((await lister.get("/api/v1/chat/sessions")).json().items).toHaveLength(7)
    expect((await stranger.get("/api/v1/chat/sessions")).json().items.map((s: { id: string }) => s.id)).not.toContain(created[0])
    expect((await lister.get("/api/v1/chat/sessions?cursor=garbage")).status).toBe(422)
    expect((await lister.get("/api/v1/chat/sessions?limit=101")).status).toBe(422)
  })

  it("renames and rescopes a session, and deletes it with its messages", async () => {
    const session = await newSession(owner, { title: "Before", scope: { tags: ["hr"] } })
    const path = `/api/v1/chat/sessions/${session.id}`
    const renamed = await call(owner, "PATCH", path, { title: "After" })
    expect(renamed.status).toBe(200)
    expect(renamed.json()).toMatchObject({ id: session.id, title: "After", scope: { tags: ["hr"] } })
    expect(new Date(renamed.json().updated_at).getTime()).toBeGreaterThanOrEqual(new Date(session.updated_at).getTime())
    expect((await call(owner, "PATCH", path, { scope: {} })).json()).toMatchObject({ title: "After", scope: {} })
    expect(paths(await call(owner, "PATCH", path, {}))).toEqual(["(root)"])
    const hidden = (await call(stranger, "POST", "/api/v1/collections", { name: "Theirs" })).json()
    expect((await call(owner, "PATCH", path, { scope: { collection_ids: [hidden.id] } })).status).toBe(404)

    const { answer } = await exchange(session.id)
    await call(owner, "POST", `/api/v1/chat/messages/${answer}/feedback`, { rating: "positive" })
    expect((await call(owner, "DELETE", path)).status).toBe(204)
    expect((await owner.get(path)).status).toBe(404)
    expect((await call(owner, "DELETE", path)).status).toBe(404)
    expect(await server.query("SELECT 1 FROM chat_messages WHERE session_id = $1", [session.id])).toEqual([])
    expect(await server.query("SELECT 1 FROM chat_feedback WHERE message_id = $1", [answer])).toEqual([])
  })

  it("marks which branch is current: an answer of the session, nothing else", async () => {
    const session = await newSession(owner)
    const first = await exchange(session.id)
    const branch = await exchange(session.id, first.answer)
    const sibling = await exchange(session.id, first.answer)
    const moved = await call(owner, "PATCH", `/api/v1/chat/sessions/${session.id}`, { current_message_id: branch.answer })
    expect(moved.status, moved.text).toBe(200)
    expect(moved.json().current_message_id).toBe(branch.answer)
    const other = await newSession(owner)
    const elsewhere = await exchange(other.id)
    for (const wrong of [sibling.question, elsewhere.answer, randomUUID()]) {
      const refused = await call(owner, "PATCH", `/api/v1/chat/sessions/${session.id}`, { current_message_id: wrong })
      expect(refused.status, refused.text).toBe(422)
      expect(paths(refused)).toEqual(["current_message_id"])
    }
    expect((await call(owner, "GET", `/api/v1/chat/sessions/${session.id}`)).json().current_message_id).toBe(branch.answer)
  })

  it("shows the message tree with usage, citations of readable documents and feedback", async () => {
    const session = await newSession(owner, { title: "Keys" })
    const first = await exchange(session.id)
    // A second answer to the same question: a regeneration, a branch of the tree.
    const regenerated = randomUUID()
    await server.query(
      `INSERT INTO chat_messages (id, session_id, parent_message_id, role, content, status, model, finish_reason, created_at)
       VALUES ($1, $2, $3, 'assistant', 'Quarterly', 'stopped', 'extractive', 'stopped', clock_timestamp())`,
      [regenerated, session.id, first.question]
    )
    const readable = (
      await call(owner, "POST", "/api/v1/documents", { title: "Keys", content: "Keys rotate every 90 days.", source: "api" })
    ).json()
    const unreadable = (
      await call(stranger, "POST", "/api/v1/documents", { title: "Secret", content: "Not for the owner.", source: "api" })
    ).json()
    const chunkId = randomUUID()
    for (const [documentId, number] of [
      [readable.id, 1],
      [unreadable.id, 2]
    ] as const) {
      await server.query(
        `INSERT INTO chat_citations (message_id, number, document_id, chunk_id, revision, answer_start, answer_end, chunk_start, chunk_end, quote, page)
         VALUES ($1, $2, $3, $4, 1, 0, 14, 0, 25, 'Keys rotate every 90 days', NULL)`,
        [first.answer, number, documentId, chunkId]
      )
    }
    await call(owner, "POST", `/api/v1/chat/messages/${first.answer}/feedback`, { rating: "negative", text: " Too short " })

    const detail = (await owner.get(`/api/v1/chat/sessions/${session.id}`)).json()
    expect(detail).toMatchObject({ id: session.id, title: "Keys", current_message_id: first.answer })
    expect(detail.messages.map((m: { id: string }) => m.id)).toEqual([first.question, first.answer, regenerated])
    const [question, answer, branch] = detail.messages
    expect(question).toMatchObject({
      role: "user",
      parent_message_id: null,
      model: null,
      finish_reason: null,
      usage: null,
      citations: [],
      feedback: null
    })
    expect(answer).toMatchObject({
      role: "assistant",
      parent_message_id: first.question,
      content: "Every 90 days [1].",
      status: "complete",
      model: "extractive",
      finish_reason: "stop",
      usage: { prompt_tokens: 120, completion_tokens: 6 },
      feedback: { rating: "negative", text: "Too short" }
    })
    // The citation of the stranger's private document is not shown to the owner.
    expect(answer.citations).toEqual([
      {
        number: 1,
        document_id: readable.id,
        chunk_id: chunkId,
        revision: 1,
        answer_start: 0,
        answer_end: 14,
        chunk_start: 0,
        chunk_end: 25,
        quote: "Keys rotate every 90 days",
        page: null
      }
    ])
    expect(branch).toMatchObject({ parent_message_id: first.question, status: "stopped", finish_reason: "stopped", feedback: null })
  })

  it("takes feedback on the owner's answers only: set, replaced, taken back", async () => {
    const session = await newSession(owner)
    const { question, answer } = await exchange(session.id)
    const feedback = `/api/v1/chat/messages/${answer}/feedback`

    const set = await call(owner, "POST", feedback, { rating: "positive", text: "  Spot on " })
    expect(set.status).toBe(200)
    expect(set.json()).toMatchObject({ rating: "positive", text: "Spot on" })
    const replaced = await call(owner, "POST", feedback, { rating: "negative" })
    expect(replaced.status).toBe(200)
    expect(replaced.json()).toMatchObject({ rating: "negative", text: null, created_at: set.json().created_at })
    expect(await server.query("SELECT rating FROM chat_feedback WHERE message_id = $1", [answer])).toEqual([{ rating: "negative" }])

    const onQuestion = await call(owner, "POST", `/api/v1/chat/messages/${question}/feedback`, { rating: "positive" })
    expect(onQuestion.status).toBe(422)
    expect(paths(onQuestion)).toEqual(["message_id"])
    expect(onQuestion.json().message).toMatch(/user message/)
    expect((await call(owner, "POST", `/api/v1/chat/messages/${randomUUID()}/feedback`, { rating: "positive" })).status).toBe(404)
    expect(paths(await call(owner, "POST", feedback, { rating: "meh" }))).toEqual(["rating"])
    expect(paths(await call(owner, "POST", feedback, { rating: "positive", text: "x".repeat(2001) }))).toEqual(["text"])

    expect((await call(owner, "DELETE", feedback)).status).toBe(204)
    expect((await call(owner, "DELETE", feedback)).status).toBe(404)
    const messages = (await owner.get(`/api/v1/chat/sessions/${session.id}`)).json().messages
    expect(messages.find((message: { id: string }) => message.id === answer).feedback).toBeNull()
  })

  it("answers 404 to anyone but the owner, an admin too, on every route", async () => {
    const session = await newSession(owner, { title: "Mine" })
    const { answer } = await exchange(session.id)
    const feedback = `/api/v1/chat/messages/${answer}/feedback`
    await call(owner, "POST", feedback, { rating: "positive" })
    const path = `/api/v1/chat/sessions/${session.id}`
    for (const someone of [stranger, admin]) {
      for (const [method, target, body] of [
        ["GET", path, undefined],
        ["PATCH", path, { title: "Theirs" }],
        ["DELETE", path, undefined],
        ["POST", feedback, { rating: "negative" }],
        ["DELETE", feedback, undefined]
      ] as const) {
        const response = await call(someone, method, target, body)
        expect(response.status, `${method} ${target}`).toBe(404)
      }
      const listed = (await someone.get("/api/v1/chat/sessions?limit=100")).json().items.map((s: { id: string }) => s.id)
      expect(listed).not.toContain(session.id)
    }
    const mine = (await owner.get(path)).json()
    expect(mine).toMatchObject({ title: "Mine" })
    expect(mine.messages.find((message: { id: string }) => message.id === answer).feedback).toMatchObject({ rating: "positive" })
  })
})
