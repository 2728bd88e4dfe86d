/**
 * Search pages: one ranking whatever the page size, walked by the cursor without repeats or
 * gaps; equal scores in document id order; cursors bound to their search and position; the
 * embedder's floor under semantic and hybrid results; the reason on top of a refusal. On
 * documents written straight into the tables (enough of them, with common words, that keyword
 * search prunes its candidates), through the HTTP API.
 */
import { Array as Arr, Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { hashEmbeddingMinimumSimilarity, makeHashEmbedding } from "../src/embedding/HashEmbedding.ts"
import { chunkDocument } from "../src/indexing/Chunker.ts"
import { fakeVector, startFakeEmbeddingsServer } from "./support/fakeEmbeddingsServer.ts"
import { type SearchServer, signUp, startSearchServer } from "./support/searchServer.ts"
import type { TestResponse } from "./support/server.ts"

const embedding = makeHashEmbedding()

/** `items`, known to hold one at least (as `sql.insert` wants). */
const nonEmpty = <A>(items: ReadonlyArray<A>) => {
  if (!Arr.isReadonlyArrayNonEmpty(items)) throw new Error("nothing to insert")
  return items
}

/** Writes `documents` of `owner` with their chunks (and, where pgvector is, their embeddings). */
const insertDocuments = (
  server: SearchServer,
  owner: string,
  documents: ReadonlyArray<{ readonly title: string; readonly content: string; readonly visibility?: string }>
) =>
  server.sql((sql) =>
    Effect.gen(function* () {
      const rows = yield* sql<{ id: string; title: string; content: string }>`
        INSERT INTO documents ${sql.insert(
          Arr.map(nonEmpty(documents), (document) => ({
            owner_id: owner,
            source: "api",
            title: document.title,
            content: document.content,
            content_hash: "-",
            visibility: document.visibility ?? "private",
            status: "indexed"
          }))
        )} RETURNING id, title, content`
      const chunks = rows.flatMap((row) =>
        chunkDocument({ title: row.title, text: row.content }).map((chunk) => ({
          document_id: row.id,
          ordinal: chunk.ordinal,
          content: chunk.text,
          contextual_content: chunk.contextualText,
          start_offset: chunk.start,
          end_offset: chunk.end,
          token_count: chunk.tokenCount
        }))
      )
      const inserted = yield* sql<{ id: string; contextual_content: string }>`
        INSERT INTO chunks ${sql.insert(nonEmpty(chunks))} RETURNING id, contextual_content`
      if (server.pgvector) {
        yield* sql`INSERT INTO chunk_embeddings ${sql.insert(
          Arr.map(nonEmpty(inserted), (chunk) => ({
            chunk_id: chunk.id,
            model: embedding.model,
            embedding: `[${Array.from(embedding.embed(chunk.contextual_content)).join(",")}]`
          }))
        )}`
      }
      return rows.map((row) => row.id)
    })
  )

/** A deterministic generator (a linear congruential one), so that every run sees the same corpus. */
const randomFrom = (seed: number) => () => {
  seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0
  return seed / 2 ** 32
}

const minerals = (
  "granite basalt quartz feldspar mica obsidian pumice shale slate marble gneiss schist chert flint jasper onyx agate " +
  "opal garnet topaz beryl zircon pyrite galena cinnabar malachite azurite calcite dolomite gypsum halite talc apatite " +
  "fluorite corundum diamond graphite sulfur copper silver"
).split(" ")

/**
 * Documents of 15 to 150 words drawn from `minerals` with Zipf-like frequencies: the common
 * words are in most documents, so that each query word has more matches than keyword search's
 * candidate lists hold, and ranking deeper changes scores.
 */
const mineralDocuments = (count: number) => {
  const random = randomFrom(20_260_601)
  const weights = minerals.map((_, rank) => 1 / (rank + 1) ** 0.9)
  const sum = weights.reduce((a, b) => a + b, 0)
  const word = () => {
    let pick = random() * sum
    for (let i = 0; i < minerals.length; i++) {
      pick -= weights[i]!
      if (pick <= 0) return minerals[i]!
    }
    return minerals[minerals.length - 1]!
  }
  return Array.from({ length: count }, (_, n) => ({
    title: `${word()} ${word()} notes ${n}`,
    content: Array.from({ length: 15 + Math.floor(random() * 136) }, word).join(" ")
  }))
}

const queries = [
  "granite quartz feldspar mica",
  "basalt obsidian pumice",
  "copper silver galena pyrite sulfur",
  "marble slate shale gneiss schist",
  "quartz"
]

/** Strings of random letters: no word of any document, nothing any document is about. */
const nonsense = ["xqzvbn plorkt wuffle", "zjxqv kwyhbm", "vrrqokz jhuuxw plimf", "qqwhzvt", "fnordlyx brakkt zuuvem"]

describe("search pages", () => {
  let server: SearchServer
  let token: string

  const search = (body: Record<string, unknown>) =>
    server.request("/api/v1/search", {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body)
    })
  const documentIds = (response: TestResponse): Array<string> =>
    response.json().results.map((result: { document_id: string }) => result.document_id)

  /** Pages of `limits` (the last one repeated) by the cursor, up to `pages` pages: what they showed. */
  const walk = async (body: Record<string, unknown>, limits: ReadonlyArray<number | undefined>, pages: number) => {
    const shown: Array<{ document_id: string; rank: number; score: number }> = []
    let cursor: string | undefined
    for (let page = 0; page < pages; page++) {
      const limit = limits[Math.min(page, limits.length - 1)]
      const response = await search({ ...body, ...(limit === undefined ? {} : { limit }), ...(cursor === undefined ? {} : { cursor }) })
      expect(response.status).toBe(200)
      shown.push(...response.json().results)
      cursor = response.json().next_cursor ?? undefined
      if (cursor === undefined) break
    }
    return shown
  }

  beforeAll(async () => {
    server = await startSearchServer()
    await signUp(server, "admin")
    const reader = await signUp(server, "reader")
    token = reader.token
    await insertDocuments(server, reader.id, mineralDocuments(600))
    await insertDocuments(server, reader.id, [
      { title: "Rotating the signing keys", content: "Rotate the signing keys every quarter. The old key stays valid for a day." },
      { title: "Quarterly planning", content: "Budget, hiring and the roadmap for the next quarter." },
      { title: "Backups", content: "Nightly backups of the database are kept for thirty days and restored once a month to test them." }
    ])
  }, 180_000)
  afterAll(() => server.stop())

  const modes = () => (server.pgvector ? ["keyword", "semantic", "hybrid"] : ["keyword", "hybrid"])

  it("shows, over 10 pages of the default size walked by the cursor, exactly the one page of 100, in its order", async () => {
    for (const mode of modes()) {
      for (const query of queries) {
        const page100 = await search({ query, mode, limit: 100 })
        expect(page100.status).toBe(200)
        const walked = await walk({ query, mode }, [undefined], 10)
        const context = `${mode}: ${query}`
        expect(
          walked.map((result) => result.document_id),
          context
        ).toEqual(documentIds(page100))
        expect(
          walked.map((result) => result.rank),
          context
        ).toEqual(walked.map((_, index) => index + 1))
        expect(new Set(walked.map((result) => result.document_id)).size, context).toBe(walked.length)
        // The scores are those of the one page, position by position.
        expect(
          walked.map((result) => result.score),
          context
        ).toEqual(page100.json().results.map((result: { score: number }) => result.score))
      }
    }
  }, 180_000)

  it("ranks the same whatever the page size, and pages of mixed sizes still add up to the one ranking", async () => {
    for (const mode of modes()) {
      for (const query of queries) {
        const ranking = documentIds(await search({ query, mode, limit: 100 }))
        for (const limit of [1, 7, 10, 33]) {
          expect(documentIds(await search({ query, mode, limit })), `${mode}: ${query}, limit ${limit}`).toEqual(ranking.slice(0, limit))
        }
        const mixed = await walk({ query, mode }, [3, 10, 25, 62], 4)
        expect(
          mixed.map((result) => result.document_id),
          `${mode}: ${query}, mixed sizes`
        ).toEqual(ranking.slice(0, mixed.length))
      }
    }
  }, 180_000)

  it("orders equal scores by document id, and pages through them without repeats", async () => {
    const reader = await signUp(server, "twins")
    const twins = await insertDocuments(
      server,
      reader.id,
      Array.from({ length: 12 }, () => ({ title: "Twin", content: "A lighthouse keeper's logbook." }))
    )
    const previous = token
    token = reader.token
    try {
      for (const mode of modes()) {
        const walked = await walk({ query: "lighthouse keeper logbook", mode }, [5], 10)
        expect(
          walked.map((result) => result.document_id),
          mode
        ).toEqual([...twins].sort())
        // Hybrid fuses ranks, and equal scores still take ranks one after another.
        if (mode !== "hybrid") expect(new Set(walked.map((result) => result.score)).size, mode).toBe(1)
      }
    } finally {
      token = previous
    }
  }, 60_000)

  it("refuses a cursor moved to another position, or of another search, with the reason on top", async () => {
    const first = (await search({ query: "granite quartz", mode: "keyword", limit: 10 })).json()
    const state = JSON.parse(Buffer.from(first.next_cursor, "base64url").toString("utf8"))
    const moved = Buffer.from(JSON.stringify({ ...state, o: state.o + 5 })).toString("base64url")
    for (const body of [
      { query: "granite quartz", mode: "keyword", limit: 10, cursor: moved },
      { query: "granite quartz", mode: "hybrid", limit: 10, cursor: first.next_cursor },
      { query: "granite marble", mode: "keyword", limit: 10, cursor: first.next_cursor },
      { query: "granite quartz", mode: "keyword", limit: 10, cursor: "bm90IGEgY3Vyc29y" }
    ]) {
      const response = await search(body)
      expect(response.status, JSON.stringify(body)).toBe(422)
      const answer = response.json()
      expect(answer.details).toHaveLength(1)
      expect(answer.details[0].path).toBe("cursor")
      expect(answer.message).toBe(answer.details[0].message)
    }
    // The cursor as issued still works, with another page size too.
    const second = await search({ query: "granite quartz", mode: "keyword", limit: 20, cursor: first.next_cursor })
    expect(second.status).toBe(200)
    expect(second.json().results[0].rank).toBe(11)
  })

  it("ends the walk where the ranking ends: no cursor after the last result", async () => {
    const all = await search({ query: "backups restored", mode: "keyword", limit: 100 })
    expect(all.json().results.length).toBeGreaterThan(0)
    expect(all.json().next_cursor).toBeNull()
    const walked = await walk({ query: "backups restored", mode: "keyword" }, [1], 10)
    expect(walked.map((result) => result.document_id)).toEqual(documentIds(all))
  })

  it("finds nothing for nonsense, in semantic and hybrid search, and still finds what is related", async () => {
    for (const query of nonsense) {
      for (const mode of modes().filter((mode) => mode !== "keyword")) {
        const response = await search({ query, mode, limit: 100 })
        expect(response.status, `${mode}: ${query}`).toBe(200)
        expect(response.json(), `${mode}: ${query}`).toMatchObject({ results: [], total: 0, next_cursor: null })
      }
    }
    for (const mode of modes().filter((mode) => mode !== "keyword")) {
      const related = await search({ query: "rotating signing keys", mode, limit: 100 })
      expect(related.status).toBe(200)
      expect(related.json().results[0].title, mode).toBe("Rotating the signing keys")
    }
    if (server.pgvector) {
      const semantic = await search({ query: "when are the database backups restored", mode: "semantic", limit: 100 })
      expect(semantic.json().results.length).toBeGreaterThan(0)
      for (const result of semantic.json().results) expect(result.score).toBeGreaterThanOrEqual(hashEmbeddingMinimumSimilarity)
    }
  })

  it("without pgvector says why semantic search is refused in the message itself", async () => {
    if (server.pgvector) return
    const response = await search({ query: "granite", mode: "semantic" })
    expect(response.status).toBe(422)
    expect(response.json().message).toContain("pgvector")
    expect(response.json().details).toEqual([{ path: "mode", message: response.json().message }])
  })
})

describe("an embedding provider's floor", () => {
  it("leaves out chunks less similar than BASALT_EMBEDDINGS_MIN_SIMILARITY", async () => {
    if (process.env.DATABASE_URL) return // semantic search needs pgvector: PGlite only here
    const provider = await startFakeEmbeddingsServer()
    const floor = 0.3
    const server = await startSearchServer({
      BASALT_EMBEDDINGS_URL: provider.baseUrl,
      BASALT_EMBEDDINGS_MODEL: "fake-embedding-model",
      BASALT_EMBEDDINGS_DIMENSIONS: "8",
      BASALT_EMBEDDINGS_MIN_SIMILARITY: String(floor)
    })
    try {
      const { token } = await signUp(server, "admin")
      const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" }
      for (let n = 0; n < 30; n++) {
        const response = await server.request("/api/v1/documents", {
          method: "POST",
          headers,
          body: JSON.stringify({ title: `Note ${n}`, content: `Note number ${n} about ${minerals[n]}.`, source: "api" })
        })
        expect(response.status).toBe(202)
      }
      const deadline = Date.now() + 60_000
      while ((await server.request("/api/v1/documents?status=indexed&limit=1", { headers })).json().total < 30) {
        if (Date.now() > deadline) throw new Error("not indexed in time")
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
      // Each document's best similarity to the query (the fake provider's vector of it).
      const query = "notes about minerals"
      const similarities = await server.sql(
        (sql) =>
          sql<{ document_id: string; similarity: number }>`
          SELECT c.document_id::text AS document_id, max(1 - (e.embedding::vector(8) <=> q.embedding::vector(8))) AS similarity
          FROM chunk_embeddings e JOIN chunks c ON c.id = e.chunk_id
          CROSS JOIN (SELECT ${`[${fakeVector(query, 8).join(",")}]`}::vector(8) AS embedding) AS q
          GROUP BY c.document_id`
      )
      const expected = similarities.filter((row) => Number(row.similarity) >= floor).map((row) => row.document_id)
      expect(expected.length).toBeGreaterThan(0)
      expect(expected.length).toBeLessThan(similarities.length)
      const response = await server.request("/api/v1/search", {
        method: "POST",
        headers,
        body: JSON.stringify({ query, mode: "semantic", limit: 100 })
      })
      expect(new Set(response.json().results.map((result: { document_id: string }) => result.document_id))).toEqual(new Set(expected))
      for (const result of response.json().results) expect(result.score).toBeGreaterThanOrEqual(floor)
    } finally {
      await server.stop()
      await provider.close()
    }
  }, 120_000)
})
