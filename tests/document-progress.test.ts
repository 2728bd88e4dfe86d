/**
 * GET /api/v1/documents/progress: counts by status for the caller's selection, the measured pace
 * and the estimate it gives, through the API on a real server and database. The part that holds
 * documents pending uses an embeddings provider (a local fake speaking OpenAI's protocol) that
 * answers late; the provider is only called where vectors are kept (PGlite, with pgvector).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type FakeEmbeddingsServer, embeddingsAnswer, startFakeEmbeddingsServer } from "./support/fakeEmbeddingsServer.ts"
import { type Person, settled, signUp } from "./support/people.ts"
import { startServer, type TestServer } from "./support/server.ts"
import { indexingProgress } from "../src/documents/IndexingProgress.ts"

const pgvector = !process.env.DATABASE_URL

const row = (counts: Partial<Record<string, number>>, finished: number, overSeconds: number | null) => ({
  queued: 0,
  parsing: 0,
  chunking: 0,
  embedding: 0,
  indexed: 0,
  failed: 0,
  ...counts,
  finished_in_window: finished,
  finished_over_seconds: overSeconds,
  as_of: new Date("2026-11-21T12:00:00.000Z")
})

describe("the estimate", () => {
  it("is 0 with nothing pending, done as of now", () => {
    const progress = indexingProgress(row({ indexed: 3 }, 3, 20))
    expect(progress).toMatchObject({ total: 3, pending: 0, estimated_seconds_remaining: 0, per_minute: 9 })
    expect(progress.estimated_completion_at).toEqual(progress.as_of)
  })

  it("is pending over the pace measured from the first finished in the window", () => {
    // 30 finished over the last 10 s: 3 a second; 90 pending: 30 s.
    const progress = indexingProgress(row({ queued: 60, embedding: 30, indexed: 25, failed: 5 }, 30, 10))
    expect(progress).toMatchObject({ total: 120, pending: 90, per_minute: 180, estimated_seconds_remaining: 30 })
    expect(progress.estimated_completion_at).toEqual(new Date("2026-11-21T12:00:30.000Z"))
  })

  it("is unknown while documents are pending and none finished in the window", () => {
    const progress = indexingProgress(row({ queued: 4, indexed: 10 }, 0, null))
    expect(progress).toMatchObject({ pending: 4, per_minute: null, estimated_seconds_remaining: null, estimated_completion_at: null })
  })

  it("counts a burst that finished at once over a second, not over no time", () => {
    expect(indexingProgress(row({ queued: 10, indexed: 5 }, 5, 0))).toMatchObject({ per_minute: 300, estimated_seconds_remaining: 2 })
  })
})

describe("indexing progress through the API", () => {
  let server: TestServer
  let provider: FakeEmbeddingsServer | undefined
  let admin: Person
  let ada: Person
  let bob: Person

  beforeAll(async () => {
    provider = pgvector ? await startFakeEmbeddingsServer() : undefined
    server = await startServer(
      {
        BASALT_ALLOW_SIGNUP: "true",
        ...(provider
          ? { BASALT_EMBEDDINGS_URL: provider.baseUrl, BASALT_EMBEDDINGS_MODEL: "fake-embedding-model", BASALT_EMBEDDINGS_DIMENSIONS: "8" }
          : {})
      },
      { emptyDatabase: true }
    )
    admin = await signUp(server, "admin")
    ada = await signUp(server, "ada")
    bob = await signUp(server, "bob")
  })
  afterAll(async () => {
    await server?.stop()
    await provider?.close()
  })

  const progress = async (who: Person, query = "") => {
    const response = await who.get(`/api/v1/documents/progress${query}`)
    expect(response.status).toBe(200)
    return response.json()
  }
  const push = async (who: Person, tag: string, count: number, offset = 0) => {
    const documents = Array.from({ length: count }, (_, n) => ({
      title: `${tag} ${offset + n}`,
      content: `Paragraph ${offset + n} about ${tag}.`,
      source: "api",
      external_id: `${tag}-${offset + n}`,
      tags: [tag]
    }))
    const response = await server.request("/api/v1/documents/batch", who.json("POST", { documents }))
    expect(response.status).toBe(207)
    return (response.json().results as Array<{ status: number; document: { id: string } }>).map((result) => {
      expect(result.status).toBe(202)
      return result.document.id
    })
  }

  it("reports nothing to do for a caller without documents", async () => {
    const empty = await progress(bob)
    expect(empty).toMatchObject({
      total: 0,
      pending: 0,
      by_status: { queued: 0, parsing: 0, chunking: 0, embedding: 0, indexed: 0, failed: 0 },
      finished_in_window: 0,
      per_minute: null,
      estimated_seconds_remaining: 0,
      window_seconds: 60
    })
    expect(empty.estimated_completion_at).toBe(empty.as_of)
  })

  it("counts the caller's documents by status once indexed, with the pace they finished at", async () => {
    const ids = await push(ada, "alpha", 6)
    for (const id of ids) await settled(ada, id)
    const done = await progress(ada, "?tags=alpha")
    expect(done).toMatchObject({ total: 6, pending: 0, by_status: { indexed: 6 }, finished_in_window: 6, estimated_seconds_remaining: 0 })
    expect(done.per_minute).toBeGreaterThan(0)
  })

  it("counts only what the caller may see, inside the filters", async () => {
    const bobs = await push(bob, "beta", 2)
    for (const id of bobs) await settled(bob, id)
    expect(await progress(bob)).toMatchObject({ total: 2, by_status: { indexed: 2 } })
    expect(await progress(ada)).toMatchObject({ total: 6 })
    expect(await progress(admin)).toMatchObject({ total: 8 })
    expect(await progress(admin, "?tags=beta")).toMatchObject({ total: 2 })
    expect(await progress(admin, "?sources=web")).toMatchObject({ total: 0 })
    expect(await progress(ada, `?updated_after=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`)).toMatchObject({
      total: 0
    })
  })

  it("refuses a filter it does not take (status, paging) and malformed values with 422", async () => {
    for (const query of ["?status=queued", "?limit=5", "?collection_ids=nope", "?updated_after=yesterday", "?sources=Not%20A%20Source"]) {
      const response = await ada.get(`/api/v1/documents/progress${query}`)
      expect(response.status, query).toBe(422)
      expect(response.json().error).toBe("validation_failed")
    }
  })

  it.skipIf(!pgvector)("estimates the pending documents from the pace of those that finished", async () => {
    // The provider holds its next answer: the next documents wait in `embedding` meanwhile.
    provider!.queue((body) => ({ status: 200, body: embeddingsAnswer(body), delayMs: 4_000 }))
    const later = await push(ada, "alpha", 3, 100)
    const during = await progress(ada, "?tags=alpha")
    expect(during.pending).toBeGreaterThan(0)
    expect(during.total).toBe(9)
    // Those held by the provider are pending; the others finished a moment ago (within the window).
    expect(during.finished_in_window).toBeGreaterThan(0)
    expect(during.finished_in_window).toBeLessThanOrEqual(during.total - during.pending)
    expect(during.per_minute).toBeGreaterThan(0)
    expect(during.estimated_seconds_remaining).toBeCloseTo((during.pending * 60) / during.per_minute, 6)
    const untilDone = Date.parse(during.estimated_completion_at) - Date.parse(during.as_of)
    expect(Math.abs(untilDone - during.estimated_seconds_remaining * 1000)).toBeLessThanOrEqual(1)
    for (const id of later) await settled(ada, id)
    expect(await progress(ada, "?tags=alpha")).toMatchObject({
      total: 9,
      pending: 0,
      by_status: { indexed: 9 },
      estimated_seconds_remaining: 0
    })
  })

  it.skipIf(!pgvector)("shows a selection whose documents are all pending and none finished as not yet estimable", async () => {
    provider!.queue((body) => ({ status: 200, body: embeddingsAnswer(body), delayMs: 4_000 }))
    const ids = await push(bob, "gamma", 2)
    const during = await progress(bob, "?tags=gamma")
    expect(during).toMatchObject({
      total: 2,
      pending: 2,
      finished_in_window: 0,
      per_minute: null,
      estimated_seconds_remaining: null,
      estimated_completion_at: null
    })
    for (const id of ids) await settled(bob, id)
  })
})
