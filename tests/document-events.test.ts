/**
 * GET /api/v1/documents/events: status changes as server-sent events, only of documents the
 * caller may see, resumable with Last-Event-ID, and ending when the server shuts down.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { validateResponse } from "./support/contract.ts"
import { type Person, settled, signUp } from "./support/people.ts"
import { startServer, type TestServer } from "./support/server.ts"

interface ServerSentEvent {
  readonly id?: string
  readonly event?: string
  readonly data?: string
}

/** An open event stream, read event by event. */
const openEvents = async (server: TestServer, who: Person, lastEventId?: string) => {
  const abort = new AbortController()
  const response = await fetch(`${server.url}/api/v1/documents/events`, {
    headers: { authorization: `Bearer ${who.token}`, ...(lastEventId === undefined ? {} : { "last-event-id": lastEventId }) },
    signal: abort.signal
  })
  // Status and headers against the contract; the body is the stream itself.
  validateResponse("GET", "/api/v1/documents/events", { status: response.status, headers: response.headers, text: "" })
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
  let buffered = ""
  let ended = false
  /** The next event with data (comments and `retry` skipped); undefined once the stream has ended. */
  const next = async (): Promise<ServerSentEvent | undefined> => {
    for (;;) {
      const end = buffered.indexOf("\n\n")
      if (end >= 0) {
        const block = buffered.slice(0, end)
        buffered = buffered.slice(end + 2)
        const fields: Record<string, string> = {}
        for (const line of block.split("\n")) {
          if (line.startsWith(":") || line === "") continue
          const colon = line.indexOf(":")
          fields[line.slice(0, colon)] = line.slice(colon + 1).trimStart()
        }
        if (fields.data !== undefined) return fields
        continue
      }
      if (ended) return undefined
      const { done, value } = await reader.read()
      if (done) ended = true
      else buffered += value
    }
  }
  return { response, next, close: () => abort.abort() }
}

describe("document events", () => {
  let server: TestServer
  let ada: Person
  let bob: Person

  beforeAll(async () => {
    server = await startServer({ BASALT_ALLOW_SIGNUP: "true" }, { emptyDatabase: true })
    await signUp(server, "admin")
    ada = await signUp(server, "ada")
    bob = await signUp(server, "bob")
  })
  afterAll(() => server.stop())

  const create = async (who: Person, title: string, content = `${title} text`) =>
    (await server.request("/api/v1/documents", who.json("POST", { title, content, source: "api", external_id: title }))).json()

  const steps = ["queued", "parsing", "chunking", "embedding", "indexed"]

  /** Events until `documentId` is reported indexed (the stream may skip steps between polls). */
  const untilIndexed = async (stream: Awaited<ReturnType<typeof openEvents>>, documentId: string) => {
    const seen: Array<{ readonly id: string; readonly data: Record<string, any> }> = []
    while (true) {
      const event = await stream.next()
      expect(event?.event).toBe("status")
      const data = JSON.parse(event!.data!)
      seen.push({ id: event!.id!, data })
      if (data.document_id === documentId && data.status === "indexed") return seen
    }
  }

  it("streams the caller's status changes through indexing, not other people's private ones, and resumes after Last-Event-ID", async () => {
    const stream = await openEvents(server, ada)
    expect(stream.response.headers.get("content-type")).toMatch(/^text\/event-stream/)
    await create(bob, "Bob's secret")
    const first = await create(ada, "First")
    const progress = await untilIndexed(stream, first.id)
    expect(progress.every(({ data }) => data.document_id === first.id)).toBe(true)
    // Each step at most once, in order; the last one indexed with the chunk.
    const order = progress.map(({ data }) => steps.indexOf(data.status))
    expect(order).toEqual([...new Set(order)].sort((a, b) => a - b))
    expect(progress.at(-1)!.data).toMatchObject({ status: "indexed", error: null, chunk_count: 1, revision: 1 })
    // New content: the same document goes through indexing again, at revision 2.
    const requeued = await create(ada, "First", "First text, longer now")
    expect(requeued.revision).toBe(2)
    const again = await untilIndexed(stream, first.id)
    expect(again.at(-1)!.data).toMatchObject({ document_id: first.id, revision: 2, status: "indexed" })
    const second = await create(ada, "Second")
    const secondProgress = await untilIndexed(stream, second.id)
    stream.close()

    const third = await create(ada, "Third")
    const resumed = await openEvents(server, ada, secondProgress.at(-1)!.id)
    const replayed = await resumed.next()
    expect(JSON.parse(replayed!.data!).document_id).toBe(third.id)
    resumed.close()
  })

  it("ignores a Last-Event-ID it did not issue and starts from now", async () => {
    const old = await create(ada, "Before connecting")
    await settled(ada, old.id)
    const stream = await openEvents(server, ada, "not-an-id")
    const fresh = await create(ada, "After connecting")
    const event = await stream.next()
    expect(JSON.parse(event!.data!).document_id).toBe(fresh.id)
    stream.close()
  })
})

describe("document events on shutdown", () => {
  it("end when the server drains, so that shutdown does not wait out its grace period", async () => {
    // A grace period longer than the test's own timeout: only streams that end let stop() finish in time.
    const server = await startServer({ BASALT_ALLOW_SIGNUP: "true", BASALT_SHUTDOWN_GRACE: "10 minutes" }, { emptyDatabase: true })
    const ada = await signUp(server, "ada")
    const stream = await openEvents(server, ada)
    await server.stop()
    expect(await stream.next()).toBeUndefined()
  }, 60_000)
})
