/**
 * One chat turn generated (ChatTurn) in the real server's runtime, on documents posted through
 * the API and indexed: retrieval under the caller's access rule and the session's scope, the
 * answer streamed, citations checked against the chunks shown; the extractive default and the
 * OpenAI-compatible provider (a fake that streams real Chat Completions chunks). And the turn's
 * record (ChatTurnRepo.finish), and the citation mapping on its own (citationsOf).
 */
import { Effect, Layer, Stream } from "effect"
import type { SqlClient } from "effect/sql"
import { rmSync } from "node:fs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { AppConfigLive } from "../layers/AppConfigLive.ts"
import { LanguageModelLive } from "../layers/LanguageModelLive.ts"
import type { Caller } from "../src/accounts/SessionsRepo.ts"
import type { ChatScope, Citation } from "../src/chat/Chat.ts"
import {
  type CitableSource,
  ChatTurn,
  citationsOf,
  citationTracker,
  markerStripper,
  type TurnEvent,
  type TurnInput
} from "../src/chat/ChatTurn.ts"
import { ChatTurnRepo, type FinishedTurn } from "../src/chat/ChatTurnRepo.ts"
import { extractiveModel, noAnswerText } from "../src/chat/ExtractiveAnswerer.ts"
import { type FakeChatServer, fakeChatModel, startFakeChatServer } from "./support/fakeChatServer.ts"
import { type IndexingApp, waitSettled } from "./support/indexing.ts"
import { configFrom, startServer, type TestServer, testEnv } from "./support/server.ts"

// --- citationsOf ------------------------------------------------------------------------------

const source = (number: number, content: string): CitableSource => ({
  number,
  document_id: `00000000-0000-4000-8000-00000000000${number}`,
  chunk_id: `00000000-0000-4000-8000-10000000000${number}`,
  revision: 1,
  content,
  pages: null
})

const keys = source(
  1,
  "## Keys\n\nAPI keys are rotated every 90 days. Rotation is logged in the audit trail.\n- Old keys stop working after one day."
)
const backups = source(2, "Backups run every night at two. They are kept for thirty days before deletion.")

const expectSound = (answer: string, sources: ReadonlyArray<CitableSource>, citations: ReadonlyArray<Citation>) => {
  for (const citation of citations) {
    const cited = sources.find((s) => s.number === citation.number)!
    expect(cited.chunk_id).toBe(citation.chunk_id)
    expect(cited.content.slice(citation.chunk_start, citation.chunk_end)).toBe(citation.quote)
    expect(answer.slice(citation.answer_start, citation.answer_end)).toContain(`${citation.number}`)
  }
}

describe("citationsOf", () => {
  it("maps each shown [n] to its answer sentence and the chunk sentence that supports it, and counts the others", () => {
    const answer = "Keys are rotated every 90 days [1]. Backups are kept thirty days [2][9]. Nothing else [abc] [0]."
    const { citations, invalid } = citationsOf(answer, [keys, backups])
    expect(invalid).toBe(2)
    expect(citations.map((c) => [c.number, answer.slice(c.answer_start, c.answer_end), c.quote])).toEqual([
      [1, "Keys are rotated every 90 days [1].", "API keys are rotated every 90 days."],
      [2, "Backups are kept thirty days [2][9].", "They are kept for thirty days before deletion."]
    ])
    expectSound(answer, [keys, backups], citations)
    expect(citations[0]).toMatchObject({ document_id: keys.document_id, revision: 1, page: null })
  })

  it("names the page of the quoted sentence when the cited chunk spans pages", () => {
    // The chunk begins on page 4; page 5 begins at "Backups", page 6 is blank, page 7 begins at "Old".
    const content = "Keys are rotated every 90 days. Backups run nightly at two. Old keys stop working after one day."
    const paged: CitableSource = {
      ...source(1, content),
      pages: { firstPage: 4, pageBreaks: [content.indexOf("Backups"), content.indexOf("Old"), content.indexOf("Old")] }
    }
    const answer = "Keys rotate every 90 days [1]. Backups run at two [1]. Old keys stop after a day [1]."
    const { citations } = citationsOf(answer, [paged])
    expect(citations.map((c) => [c.quote, c.page])).toEqual([
      ["Keys are rotated every 90 days.", 4],
      ["Backups run nightly at two.", 5],
      ["Old keys stop working after one day.", 7]
    ])
    expectSound(answer, [paged], citations)
  })

  it("takes markers written after the full stop with their sentence, a list item without its marker, and a number once per sentence", () => {
    const answer = "Old keys stop working after a day. [1] [1]\nBackups run nightly. [2, 1]"
    const { citations, invalid } = citationsOf(answer, [keys, backups])
    expect(invalid).toBe(0)
    expect(citations.map((c) => [c.number, answer.slice(c.answer_start, c.answer_end), c.quote])).toEqual([
      [1, "Old keys stop working after a day. [1] [1]", "Old keys stop working after one day."],
      [2, "Backups run nightly. [2, 1]", "Backups run every night at two."],
      [1, "Backups run nightly. [2, 1]", "API keys are rotated every 90 days."]
    ])
    expectSound(answer, [keys, backups], citations)
  })

  it("counts offsets in UTF-16 code units", () => {
    const answer = "🔑 Ключи меняют каждые 90 дней [1]. Keys rotate every 90 days [1]."
    const { citations } = citationsOf(answer, [keys])
    expect(citations).toHaveLength(2)
    expect(answer.slice(citations[1]!.answer_start, citations[1]!.answer_end)).toBe("Keys rotate every 90 days [1].")
    expectSound(answer, [keys], citations)
  })

  it("gives the same citations however the answer arrives", () => {
    const answer = "Keys are rotated every 90 days [1]. Old keys stop working. [1] Backups run at two [2].\nAnd [7]"
    const whole = citationsOf(answer, [keys, backups])
    for (const size of [1, 2, 3, 7]) {
      const tracker = citationTracker([keys, backups])
      const streamed: Array<Citation> = []
      for (let at = 0; at < answer.length; at += size) streamed.push(...tracker.push(answer.slice(at, at + size)))
      streamed.push(...tracker.end())
      expect(streamed).toEqual(whole.citations)
      expect(tracker.invalid).toBe(whole.invalid)
    }
    expect(whole.invalid).toBe(1)
  })

  it("emits a citation once its sentence is complete, not before", () => {
    const tracker = citationTracker([keys])
    expect(tracker.push("Keys rotate every 90 days [1].")).toEqual([])
    expect(tracker.push(" ")).toEqual([])
    expect(tracker.push("Old")).toHaveLength(1)
    expect(tracker.push(" keys stop working. [")).toEqual([])
    expect(tracker.push("1]")).toEqual([])
    expect(tracker.end()).toHaveLength(1)
  })
})

describe("markerStripper", () => {
  it("takes every marker and the spaces before it out, however the answer arrives, and keeps brackets that are no markers", () => {
    const answer = "Keys rotate every 90 days [1]. Backups [2, 3] run at two.[4]\nSee [the appendix] and [12 and [5"
    const expected = "Keys rotate every 90 days. Backups run at two.\nSee [the appendix] and [12 and [5"
    for (const size of [1, 2, 3, 5, answer.length]) {
      const stripper = markerStripper()
      let text = ""
      for (let at = 0; at < answer.length; at += size) text += stripper.push(answer.slice(at, at + size))
      expect(text + stripper.end(), `deltas of ${size}`).toBe(expected)
    }
  })

  it("holds back only what may still become a marker", () => {
    const stripper = markerStripper()
    expect(stripper.push("Keys rotate")).toBe("Keys rotate")
    expect(stripper.push(" [")).toBe("")
    expect(stripper.push("1")).toBe("")
    expect(stripper.push("].")).toBe(".")
    expect(stripper.push(" [x")).toBe(" [x")
    expect(stripper.end()).toBe("")
  })
})

// --- ChatTurn in the server -------------------------------------------------------------------

interface Account {
  readonly token: string
  readonly caller: Caller
}

describe("ChatTurn", () => {
  let server: TestServer
  let fake: FakeChatServer
  const configDirs: Array<string> = []
  const people: Record<string, Account> = {}
  const documents: Record<string, string> = {}

  /** ChatTurn's layer, with the Answerer chosen by LanguageModelLive from `env` as the server would. */
  const turnLayer = (env: Record<string, string>) => {
    const { dataDir, values } = testEnv(env)
    configDirs.push(dataDir)
    // Fresh: the runtime memoises layers, and each of these has an Answerer of its own.
    return Layer.fresh(
      ChatTurn.layer.pipe(Layer.provide(LanguageModelLive), Layer.provide(AppConfigLive), Layer.provide(configFrom(values)))
    )
  }
  let extractive: ReturnType<typeof turnLayer>
  let provider: ReturnType<typeof turnLayer>
  let impatient: ReturnType<typeof turnLayer>

  /** Runs in the server's runtime, which holds the database, DatabaseInfo and the Embedder that Retrieval needs. */
  const run = <A, E>(effect: Effect.Effect<A, E, any>) => server.run(effect as Effect.Effect<A, E, SqlClient.SqlClient>)

  const turn = (layer: ReturnType<typeof turnLayer>, input: Partial<TurnInput> & { question: string }) =>
    run(
      Effect.flatMap(ChatTurn, (chatTurn) =>
        Stream.runCollect(
          chatTurn.generate({ caller: people.alice!.caller, scope: {}, history: [], options: {}, includeCitations: true, ...input })
        )
      ).pipe(Effect.provide(layer))
    )

  const call = async (who: string, method: string, path: string, body?: unknown) =>
    server.request(path, {
      method,
      headers: { authorization: `Bearer ${people[who]!.token}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) })
    })

  const signUp = async (name: string) => {
    const credentials = { email: `${name}@example.com`, password: `${name} password long` }
    const json = { "content-type": "application/json" }
    const registered = await server.request("/api/v1/auth/register", {
      method: "POST",
      headers: json,
      body: JSON.stringify({ ...credentials, display_name: name })
    })
    expect(registered.status).toBe(201)
    const login = await server.request("/api/v1/auth/login", { method: "POST", headers: json, body: JSON.stringify(credentials) })
    const [user] = await server.query<Omit<Caller, "session_id">>(
      "SELECT id::text AS id, email, display_name, role, active, created_at FROM users WHERE id = $1",
      [login.json().user.id]
    )
    people[name] = { token: login.json().access_token, caller: { ...user!, session_id: null } }
  }

  const post = async (who: string, name: string, body: Record<string, unknown>) => {
    const created = await call(who, "POST", "/api/v1/documents", body)
    expect(created.status).toBe(202)
    documents[name] = created.json().id
  }

  beforeAll(async () => {
    fake = await startFakeChatServer()
    server = await startServer({ BASALT_ALLOW_SIGNUP: "true" }, { emptyDatabase: true })
    extractive = turnLayer({})
    provider = turnLayer({ BASALT_CHAT_URL: fake.baseUrl, BASALT_CHAT_MODELS: fakeChatModel })
    impatient = turnLayer({ BASALT_CHAT_URL: fake.baseUrl, BASALT_CHAT_MODELS: fakeChatModel, BASALT_CHAT_IDLE_TIMEOUT: "300 millis" })
    await signUp("admin")
    await signUp("alice")
    await signUp("bob")
    await post("alice", "handbook", {
      title: "Security handbook",
      source: "handbook",
      tags: ["security"],
      content:
        "# Key rotation\n\nAPI keys are rotated every 90 days by the platform team. " +
        "Old API keys stop working one day after their rotation. Every rotation is written to the audit log.\n\n" +
        "# Backups\n\nBackups of the database run every night and are kept for thirty days."
    })
    await post("alice", "wiki", {
      title: "Team wiki: keys",
      source: "wiki",
      content: "The wiki team rotates the wiki API keys every 30 days. Rotated wiki keys are announced in the team channel."
    })
    await post("alice", "coffee", {
      title: "Office notes",
      source: "wiki",
      content: "The coffee machine on the third floor is cleaned on Fridays."
    })
    await post("bob", "secret", {
      title: "Bob's vault notes",
      source: "handbook",
      tags: ["security"],
      content: "Vault API keys are rotated every 7 days by Bob alone. Nobody else should read that API keys rotate in the vault."
    })
    await waitSettled({ query: server.query } as unknown as IndexingApp, Object.values(documents))
  }, 180_000)

  afterAll(async () => {
    await server?.stop()
    await fake?.close()
    for (const dir of configDirs) rmSync(dir, { recursive: true, force: true })
  })

  type Of<T extends TurnEvent["_tag"]> = Extract<TurnEvent, { _tag: T }>
  const ofTag = <T extends TurnEvent["_tag"]>(events: ReadonlyArray<TurnEvent>, tag: T) =>
    events.filter((event): event is Of<T> => event._tag === tag).map((event) => event.data as Of<T>["data"])

  /** The stream's shape: message_start first, exactly one final event last; the tokens make the content. */
  const expectWellFormed = (events: ReadonlyArray<TurnEvent>) => {
    expect(events[0]!._tag).toBe("message_start")
    const finals = events.filter((event) => event._tag === "message_end" || event._tag === "error")
    expect(finals).toHaveLength(1)
    expect(events.at(-1)).toBe(finals[0])
    const end = ofTag(events, "message_end")[0]
    if (end !== undefined)
      expect(
        ofTag(events, "token")
          .map((token) => token.text)
          .join("")
      ).toBe(end.content)
  }

  /** Every citation names a chunk shown, of a document alice may read now, its quote at its offsets. */
  const expectCitationsResolve = async (events: ReadonlyArray<TurnEvent>) => {
    const [start] = ofTag(events, "message_start")
    const [end] = ofTag(events, "message_end")
    for (const citation of ofTag(events, "citation")) {
      const shown = start!.retrieved.find((source) => source.number === citation.number)!
      expect(shown).toMatchObject({ document_id: citation.document_id, chunk_id: citation.chunk_id, revision: citation.revision })
      const [chunk] = await server.query<{ content: string; document_id: string; revision: number }>(
        "SELECT c.content, c.document_id::text AS document_id, d.revision FROM chunks c JOIN documents d ON d.id = c.document_id WHERE c.id = $1",
        [citation.chunk_id]
      )
      expect(chunk).toMatchObject({ document_id: citation.document_id, revision: citation.revision })
      expect(chunk!.content.slice(citation.chunk_start, citation.chunk_end)).toBe(citation.quote)
      expect(end!.content.slice(citation.answer_start, citation.answer_end)).toContain(`[${citation.number}]`)
      expect((await call("alice", "GET", `/api/v1/documents/${citation.document_id}`)).status).toBe(200)
    }
  }

  it("answers with the extractive default: citations resolve to readable chunks, their quotes at their offsets", async () => {
    const events = await turn(extractive, { question: "How often are API keys rotated?" })
    expectWellFormed(events)
    const [start] = ofTag(events, "message_start")
    expect(start!.retrieved.length).toBeGreaterThan(0)
    expect(start!.retrieved.length).toBeLessThanOrEqual(8)
    expect(start!.retrieved.map((source) => source.number)).toEqual(start!.retrieved.map((_, index) => index + 1))
    expect(start!.retrieved.every((source) => source.page === null && source.revision === 1)).toBe(true)
    const citations = ofTag(events, "citation")
    expect(citations.length).toBeGreaterThan(0)
    const [end] = ofTag(events, "message_end")
    expect(end).toMatchObject({ finish_reason: "stop", model: extractiveModel, invalid_citations: 0 })
    expect(end!.usage.completion_tokens).toBeGreaterThan(0)
    await expectCitationsResolve(events)
    // The extractive answerer copies a sentence: the quote is that sentence, the answer's without its marker.
    for (const citation of citations) {
      const sentence = end!.content.slice(citation.answer_start, citation.answer_end)
      expect(sentence.replace(` [${citation.number}]`, "")).toBe(citation.quote)
    }
    expect(citations.some((citation) => citation.quote.includes("rotated every 90 days"))).toBe(true)
  })

  it("says plainly when the documents do not answer, citing nothing", async () => {
    const events = await turn(extractive, { question: "Which volcano erupted in Iceland during the winter?" })
    expectWellFormed(events)
    expect(ofTag(events, "citation")).toEqual([])
    expect(ofTag(events, "message_end")[0]).toMatchObject({ content: noAnswerText, invalid_citations: 0 })
  })

  it("passes the provider's tokens through and drops an invented [9], counting it", async () => {
    fake.reset()
    const tokens = ["API keys are rotated", " every 90 days [1", "].", " Wiki keys rotate every 30 days [2].", " Coffee is free [9", "]."]
    fake.queue({ kind: "stream", tokens })
    const events = await turn(provider, { question: "How often are API keys rotated?" })
    expectWellFormed(events)
    expect(ofTag(events, "token").map((token) => token.text)).toEqual(tokens)
    const [start] = ofTag(events, "message_start")
    expect(start!.retrieved.length).toBeGreaterThanOrEqual(2)
    expect(start!.retrieved.length).toBeLessThan(9)
    const citations = ofTag(events, "citation")
    expect(citations.map((citation) => citation.number)).toEqual([1, 2])
    const [end] = ofTag(events, "message_end")
    expect(end).toMatchObject({ content: tokens.join(""), finish_reason: "stop", model: fakeChatModel, invalid_citations: 1 })
    await expectCitationsResolve(events)
    // Each citation came out once its sentence was complete, before the message's end.
    const firstCitation = events.findIndex((event) => event._tag === "citation")
    expect(events.slice(firstCitation + 1).some((event) => event._tag === "token")).toBe(true)
    // The model was shown the sources as numbered in message_start.
    const system = fake.requests.at(-1)!.body.messages[0].content as string
    for (const shown of start!.retrieved) expect(system).toContain(`[${shown.number}] ${shown.title}`)
  })

  it("without citations: the text loses its markers, no citation is made, the sources are still listed", async () => {
    fake.reset()
    fake.queue({ kind: "stream", tokens: ["API keys are rotated", " every 90 days [1", "].", " Coffee is free [9", "]."] })
    const events = await turn(provider, { question: "How often are API keys rotated?", includeCitations: false })
    expectWellFormed(events)
    expect(ofTag(events, "citation")).toEqual([])
    expect(ofTag(events, "message_start")[0]!.retrieved.length).toBeGreaterThan(0)
    const [end] = ofTag(events, "message_end")
    expect(end).toMatchObject({ content: "API keys are rotated every 90 days. Coffee is free.", invalid_citations: 0 })
    expect(
      ofTag(events, "token")
        .map((token) => token.text)
        .join("")
    ).toBe(end!.content)
  })

  it("retrieves within the session's scope and the caller's access only", async () => {
    const seen = (events: ReadonlyArray<TurnEvent>) => ofTag(events, "message_start")[0]!.retrieved.map((source) => source.document_id)
    const question = "How often are API keys rotated?"
    const unscoped = seen(await turn(extractive, { question }))
    expect(unscoped).toContain(documents.wiki)
    expect(unscoped).toContain(documents.handbook)
    expect(unscoped).not.toContain(documents.secret)

    const scopes: ReadonlyArray<ChatScope> = [{ sources: ["handbook"] }, { tags: ["security"] }]
    for (const scope of scopes) {
      const scoped = seen(await turn(extractive, { question, scope }))
      expect(scoped).toEqual([documents.handbook])
    }
    // Bob reads his own, and not alice's private ones.
    const bobs = seen(await turn(extractive, { question, caller: people.bob!.caller }))
    expect(bobs).toEqual([documents.secret])
    // A collection in the scope that the caller cannot see ends the turn with an error.
    const collection = await call("bob", "POST", "/api/v1/collections", { name: "Bob's" })
    const events = await turn(extractive, { question, scope: { collection_ids: [collection.json().id] } })
    expect(events.map((event) => event._tag)).toEqual(["error"])
    expect(ofTag(events, "error")[0]).toMatchObject({ code: "not_found", retryable: false })
  })

  it("ends with an error event after the tokens sent when the provider fails mid-stream", async () => {
    fake.reset()
    fake.queue({ kind: "stream", breakAfter: 3 })
    const events = await turn(provider, { question: "How often are API keys rotated?" })
    expectWellFormed(events)
    expect(events.map((event) => event._tag)).toEqual(["message_start", "token", "token", "token", "error"])
    expect(ofTag(events, "error")[0]).toMatchObject({ code: "provider_unavailable", retryable: true })
    expect(fake.requests).toHaveLength(1)

    // A stall after the first tokens: the idle bound ends it, and trying again later may succeed.
    fake.reset()
    fake.queue({ kind: "stream", stallAfter: 2 })
    const stalled = await turn(impatient, { question: "How often are API keys rotated?" })
    expectWellFormed(stalled)
    expect(stalled.map((event) => event._tag)).toEqual(["message_start", "token", "token", "error"])
    expect(ofTag(stalled, "error")[0]).toMatchObject({ code: "provider_unavailable", retryable: true })

    fake.reset()
    fake.queue({ kind: "status", status: 400 })
    const rejected = await turn(provider, { question: "How often are API keys rotated?" })
    expect(rejected.map((event) => event._tag)).toEqual(["message_start", "error"])
    expect(ofTag(rejected, "error")[0]).toMatchObject({ code: "provider_rejected", retryable: false })
  })

  it("aborts the provider's request when the consumer stops reading", async () => {
    fake.reset()
    fake.queue({ kind: "stream", intervalMs: 50 })
    const events = await run(
      Effect.flatMap(ChatTurn, (chatTurn) =>
        Stream.runCollect(
          chatTurn
            .generate({
              caller: people.alice!.caller,
              scope: {},
              question: "How often are API keys rotated?",
              history: [],
              options: {},
              includeCitations: true
            })
            .pipe(Stream.take(3))
        )
      ).pipe(Effect.provide(provider))
    )
    expect(events.map((event) => event._tag)).toEqual(["message_start", "token", "token"])
    const request = fake.requests[0]!
    await request.closed
    expect(request.completed).toBe(false)
  })

  it("records a turn's end in one transaction: the message, exactly the chunks shown, the citations", async () => {
    const events = await turn(extractive, { question: "How often are API keys rotated?" })
    const [start] = ofTag(events, "message_start")
    const [end] = ofTag(events, "message_end")
    const citations = ofTag(events, "citation")
    const [session] = await server.query<{ id: string }>(
      "INSERT INTO chat_sessions (owner_id, title) VALUES ($1, 'Keys') RETURNING id::text AS id",
      [people.alice!.caller.id]
    )
    const [question] = await server.query<{ id: string }>(
      "INSERT INTO chat_messages (session_id, role, content, status) VALUES ($1, 'user', 'How often?', 'complete') RETURNING id::text AS id",
      [session!.id]
    )
    const [answer] = await server.query<{ id: string }>(
      "INSERT INTO chat_messages (session_id, parent_message_id, role, content, status) VALUES ($1, $2, 'assistant', '', 'generating') RETURNING id::text AS id",
      [session!.id, question!.id]
    )
    const shown = start!.retrieved.map((source) => ({
      position: source.number,
      document_id: source.document_id,
      chunk_id: source.chunk_id,
      revision: source.revision
    }))
    const finished: FinishedTurn = {
      assistantMessageId: answer!.id,
      content: end!.content,
      status: "complete",
      finishReason: end!.finish_reason,
      usage: end!.usage,
      model: end!.model,
      metadata: { invalid_citations: end!.invalid_citations, retrieval_ms: 3 },
      shown,
      citations
    }
    const finish = (turnEnd: FinishedTurn) =>
      run(Effect.flatMap(ChatTurnRepo, (repo) => repo.finish(turnEnd)).pipe(Effect.provide(ChatTurnRepo.layer)))
    // Twice: the second replaces the first's rows.
    expect(await finish(finished)).toBe(true)
    expect(await finish(finished)).toBe(true)

    const messages = await server.query(
      "SELECT id::text AS id, content, status, finish_reason, usage, model, metadata FROM chat_messages WHERE session_id = $1 ORDER BY created_at, role DESC",
      [session!.id]
    )
    expect(messages).toEqual([
      { id: question!.id, content: "How often?", status: "complete", finish_reason: null, usage: null, model: null, metadata: {} },
      {
        id: answer!.id,
        content: end!.content,
        status: "complete",
        finish_reason: "stop",
        usage: end!.usage,
        model: extractiveModel,
        metadata: { invalid_citations: 0, retrieval_ms: 3 }
      }
    ])
    const chunks = await server.query(
      "SELECT position, document_id::text AS document_id, chunk_id::text AS chunk_id, revision FROM chat_message_chunks WHERE message_id = $1 ORDER BY position",
      [answer!.id]
    )
    expect(chunks).toEqual(shown)
    const rows = await server.query(
      `SELECT number, document_id::text AS document_id, chunk_id::text AS chunk_id, revision, answer_start, answer_end,
         chunk_start, chunk_end, quote, page FROM chat_citations WHERE message_id = $1 ORDER BY answer_start, number`,
      [answer!.id]
    )
    expect(rows).toEqual(citations)
    expect(citations.length).toBeGreaterThan(0)

    // A failed turn: its text so far, no usage, and nothing shown replaced by nothing.
    expect(await finish({ ...finished, status: "failed", finishReason: "error", usage: null, model: null, shown: [], citations: [] })).toBe(
      true
    )
    const [failed] = await server.query("SELECT status, finish_reason, usage FROM chat_messages WHERE id = $1", [answer!.id])
    expect(failed).toEqual({ status: "failed", finish_reason: "error", usage: null })
    expect(await server.query("SELECT 1 FROM chat_message_chunks WHERE message_id = $1", [answer!.id])).toEqual([])
    expect(await server.query("SELECT 1 FROM chat_citations WHERE message_id = $1", [answer!.id])).toEqual([])

    // No such message (or a user's message): nothing written.
    expect(await finish({ ...finished, assistantMessageId: question!.id })).toBe(false)
    expect(await server.query("SELECT 1 FROM chat_message_chunks WHERE message_id = $1", [question!.id])).toEqual([])
  })
})
