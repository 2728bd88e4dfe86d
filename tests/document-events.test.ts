/**
 * GET /api/v1/documents/events: status changes and deletions as server-sent events, only of
 * documents the caller may see (or could, when deleted), resumable with Last-Event-ID, following
 * the credential (ending when it stops authenticating, reading as a changed role), and ending
 * when the server shuts down.
 */
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { DocumentsRepo } from "../src/documents/DocumentsRepo.ts"
import { validateResponse, validateStreamEvent } from "./support/contract.ts"
import { type Person, person, settled, signUp } from "./support/people.ts"
import { startServer, type TestServer } from "./support/server.ts"

interface ServerSentEvent {
  readonly id?: string
  readonly event?: string
  readonly data?: string
}

/** An open event stream, read event by event. */
const openEvents = async (server: TestServer, who: Pick<Person, "token">, lastEventId?: string) => {
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
        if (fields.data === undefined) continue
        // Every event against the stream's itemSchema, its data against the event's schema.
        validateStreamEvent("GET", "/api/v1/documents/events", fields)
        return fields
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
  let admin: Person
  let ada: Person
  let bob: Person

  beforeAll(async () => {
    server = await startServer({ BASALT_ALLOW_SIGNUP: "true" }, { emptyDatabase: true })
    admin = await signUp(server, "admin")
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

  /** Events until one about `documentId` (any kind); the others before it are returned too. */
  const untilAbout = async (stream: Awaited<ReturnType<typeof openEvents>>, documentId: string) => {
    const seen: Array<{ readonly id: string; readonly event: string; readonly data: Record<string, any> }> = []
    while (true) {
      const event = await stream.next()
      expect(event).toBeDefined()
      const data = JSON.parse(event!.data!)
      seen.push({ id: event!.id!, event: event!.event!, data })
      if (data.document_id === documentId) return seen
    }
  }

  const signIn = async (name: string) => {
    const login = await server.request("/api/v1/auth/login", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: `${name}@example.com`, password: `${name} password long` })
    })
    expect(login.status).toBe(200)
    return person(server, login.json().user.id, login.json().access_token)
  }

  it("ends a stream once its credential stops authenticating, and refuses the reconnection", async () => {
    const ended = async (stream: Awaited<ReturnType<typeof openEvents>>, who: Pick<Person, "token">) => {
      expect(await stream.next()).toBeUndefined()
      const again = await server.request("/api/v1/documents/events", { headers: { authorization: `Bearer ${who.token}` } })
      expect(again.status).toBe(401)
    }

    // Signed out.
    const cara = await signUp(server, "cara")
    const caraStream = await openEvents(server, cara)
    expect((await server.request("/api/v1/auth/logout", cara.json("POST"))).status).toBe(204)
    await ended(caraStream, cara)

    // The account deactivated.
    const erin = await signUp(server, "erin")
    const erinStream = await openEvents(server, erin)
    expect((await server.request(`/api/v1/admin/users/${erin.id}`, admin.json("PATCH", { active: false }))).status).toBe(200)
    await ended(erinStream, erin)

    // The API key revoked.
    const frank = await signUp(server, "frank")
    const { key, secret } = (await server.request("/api/v1/api-keys", frank.json("POST", { name: "events" }))).json()
    const keyStream = await openEvents(server, { token: secret })
    expect((await server.request(`/api/v1/api-keys/${key.id}`, frank.json("DELETE"))).status).toBe(204)
    await ended(keyStream, { token: secret })

    // The password changed in another session: this session ends, that one's stream goes on.
    const dan = await signUp(server, "dan")
    const elsewhere = await signIn("dan")
    const danStream = await openEvents(server, dan)
    const elsewhereStream = await openEvents(server, elsewhere)
    const changed = await server.request(
      "/api/v1/users/me/password",
      elsewhere.json("POST", { current_password: "dan password long", new_password: "dan's brand new passphrase" })
    )
    expect(changed.status).toBe(204)
    await ended(danStream, dan)
    const after = await create(elsewhere, "Dan after the change")
    expect((await untilAbout(elsewhereStream, after.id)).at(-1)!.data.document_id).toBe(after.id)
    elsewhereStream.close()
  }, 60_000)

  it("reads as the caller is now: a user made admin sees others' private documents on the open stream", async () => {
    const gina = await signUp(server, "gina")
    const stream = await openEvents(server, gina)
    const hidden = await create(bob, "Bob's private note")
    const own = await create(gina, "Gina's note")
    const before = await untilAbout(stream, own.id)
    expect(before.some(({ data }) => data.document_id === hidden.id)).toBe(false)
    expect((await server.request(`/api/v1/admin/users/${gina.id}`, admin.json("PATCH", { role: "admin" }))).status).toBe(200)
    const shown = await create(bob, "Bob's private note, seen by an admin")
    expect((await untilAbout(stream, shown.id)).at(-1)!.event).toBe("status")
    stream.close()
  }, 60_000)

  it("follows collection membership: a member removed stops getting the collection's documents' events", async () => {
    const ivy = await signUp(server, "ivy")
    const collection = (await server.request("/api/v1/collections", ada.json("POST", { name: "Shared with Ivy" }))).json()
    const membership = `/api/v1/collections/${collection.id}/members/${ivy.id}`
    expect((await server.request(membership, ada.json("PUT", { role: "viewer" }))).status).toBeLessThan(300)
    const inCollection = (title: string) =>
      server.request(
        "/api/v1/documents",
        ada.json("POST", { title, content: `${title} text`, source: "api", external_id: title, collection_ids: [collection.id] })
      )
    const stream = await openEvents(server, ivy)
    const shared = (await inCollection("Shared while a member")).json()
    expect((await untilAbout(stream, shared.id)).at(-1)!.data.document_id).toBe(shared.id)
    expect((await server.request(membership, ada.json("DELETE"))).status).toBe(204)
    const hidden = (await inCollection("Shared after leaving")).json()
    const own = await create(ivy, "Ivy's own")
    expect((await untilAbout(stream, own.id)).some(({ data }) => data.document_id === hidden.id)).toBe(false)
    stream.close()
  }, 60_000)

  it("sends a deletion to those who could see the document, resumable with Last-Event-ID until pruned", async () => {
    const hal = await signUp(server, "hal")
    const collection = (await server.request("/api/v1/collections", ada.json("POST", { name: "Shared with Hal" }))).json()
    const member = await server.request(`/api/v1/collections/${collection.id}/members/${hal.id}`, ada.json("PUT", { role: "viewer" }))
    expect(member.status).toBeLessThan(300)
    const doomed = (
      await server.request(
        "/api/v1/documents",
        ada.json("POST", { title: "Doomed", content: "Doomed text", source: "api", external_id: "doomed", collection_ids: [collection.id] })
      )
    ).json()
    await settled(ada, doomed.id)

    const adaStream = await openEvents(server, ada)
    const halStream = await openEvents(server, hal)
    const adminStream = await openEvents(server, admin)
    const bobStream = await openEvents(server, bob)
    // A position before the deletion, to resume from.
    const marker = await create(ada, "Marker")
    const beforeDeletion = (await untilIndexed(adaStream, marker.id)).at(-1)!.id

    expect((await server.request(`/api/v1/documents/${doomed.id}`, ada.json("DELETE"))).status).toBe(204)
    for (const stream of [adaStream, halStream, adminStream]) {
      const deletion = (await untilAbout(stream, doomed.id)).at(-1)!
      expect(deletion.event).toBe("deleted")
      expect(deletion.data).toEqual({ document_id: doomed.id, revision: 1, deleted_at: expect.any(String) })
      stream.close()
    }
    // Bob never could see it: his next event is his own document's.
    const bobs = await create(bob, "Bob after the deletion")
    expect((await untilAbout(bobStream, bobs.id)).every(({ data }) => data.document_id === bobs.id)).toBe(true)
    bobStream.close()

    // Resumed from before the deletion, it comes again.
    const resumed = await openEvents(server, ada, beforeDeletion)
    const replayed = await resumed.next()
    expect(replayed?.event).toBe("deleted")
    expect(JSON.parse(replayed!.data!).document_id).toBe(doomed.id)
    resumed.close()

    // Once pruned, it is forgotten: the resumed stream goes on with what came after.
    const pruned = await server.run(
      Effect.flatMap(DocumentsRepo, (repo) => repo.pruneDeletions(new Date(Date.now() + 60_000))).pipe(Effect.provide(DocumentsRepo.layer))
    )
    expect(pruned).toBe(1)
    const later = await create(ada, "After pruning")
    const forgotten = await openEvents(server, ada, beforeDeletion)
    expect((await untilAbout(forgotten, later.id)).some(({ data }) => data.document_id === doomed.id)).toBe(false)
    forgotten.close()
  }, 60_000)
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
