/**
 * POST /api/v1/search through the HTTP API, on documents and chunks written straight into the
 * database (cut by the real chunker, embedded by the local embedder where pgvector is): each
 * mode, the filters, visibility, highlights, pages, bad input, and the lexical-only path.
 */
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { Caller } from "../src/accounts/SessionsRepo.ts"
import { visibleTo } from "../src/documents/Visibility.ts"
import { makeHashEmbedding } from "../src/embedding/HashEmbedding.ts"
import { chunkDocument } from "../src/indexing/Chunker.ts"
import { type SearchServer, signUp, startSearchServer } from "./support/searchServer.ts"
import type { TestResponse } from "./support/server.ts"

describe("search", () => {
  let server: SearchServer
  const tokens: Record<string, string> = {}
  const ids: Record<string, string> = {}
  const documents: Record<string, string> = {}
  const embedding = makeHashEmbedding()

  const search = (who: string, body: unknown) =>
    server.request("/api/v1/search", {
      method: "POST",
      headers: { authorization: `Bearer ${tokens[who]}`, "content-type": "application/json" },
      body: JSON.stringify(body)
    })

  const addDocument = (
    key: string,
    owner: string,
    document: { title: string; content: string; source?: string; tags?: Array<string>; visibility?: string; updated_at?: string }
  ) =>
    server.sql((sql) =>
      Effect.gen(function* () {
        const [row] = yield* sql<{ id: string }>`
          INSERT INTO documents (owner_id, source, title, content, content_hash, tags, visibility, status, updated_at)
          VALUES (${ids[owner]!}, ${document.source ?? "api"}, ${document.title}, ${document.content}, '-',
                  ${document.tags ?? []}::text[], ${document.visibility ?? "private"}, 'indexed',
                  ${document.updated_at ?? "2026-06-01T00:00:00Z"}::timestamptz)
          RETURNING id`
        documents[key] = row!.id
        for (const chunk of chunkDocument({ title: document.title, text: document.content })) {
          const [inserted] = yield* sql<{ id: string }>`
            INSERT INTO chunks (document_id, ordinal, content, contextual_content, start_offset, end_offset, token_count)
            VALUES (${row!.id}, ${chunk.ordinal}, ${chunk.text}, ${chunk.contextualText}, ${chunk.start}, ${chunk.end}, ${chunk.tokenCount})
            RETURNING id`
          if (server.pgvector) {
            const vector = `[${Array.from(embedding.embed(chunk.contextualText)).join(",")}]`
            yield* sql`INSERT INTO chunk_embeddings (chunk_id, model, embedding) VALUES (${inserted!.id}, ${embedding.model}, ${vector}::vector)`
          }
        }
      })
    )

  const addCollection = (key: string, owner: string, members: Array<string>, documentKeys: Array<string>) =>
    server.sql((sql) =>
      Effect.gen(function* () {
        const [row] = yield* sql<{ id: string }>`INSERT INTO collections (name, owner_id) VALUES (${key}, ${ids[owner]!}) RETURNING id`
        documents[key] = row!.id
        for (const member of [owner, ...members]) {
          yield* sql`INSERT INTO collection_members (collection_id, user_id, role)
            VALUES (${row!.id}, ${ids[member]!}, ${member === owner ? "owner" : "viewer"})`
        }
        for (const document of documentKeys) {
          yield* sql`INSERT INTO document_collections (document_id, collection_id) VALUES (${documents[document]!}, ${row!.id})`
        }
      })
    )

  beforeAll(async () => {
    server = await startSearchServer()
    for (const name of ["admin", "alice", "bob"]) {
      const account = await signUp(server, name)
      tokens[name] = account.token
      ids[name] = account.id
    }
    await addDocument("aliceKeys", "alice", {
      title: "Rotating the signing keys",
      content: "# Procedure\n\nRotate the signing keys every quarter. The old key stays valid for a day.",
      source: "confluence",
      tags: ["security"],
      updated_at: "2026-03-01T00:00:00Z"
    })
    await addDocument("alicePlanning", "alice", {
      title: "Quarterly planning",
      content: "Budget, hiring and the roadmap for the next quarter.",
      source: "google_drive",
      tags: ["planning"]
    })
    // Bob's private runbook is the best match for the key-rotation queries: alice must never see it.
    await addDocument("bobSecret", "bob", {
      title: "Signing key rotation: signing keys rotated, rotate signing keys",
      content: "Rotate signing keys. Signing keys rotation runbook: rotate the signing keys and the signing key store."
    })
    await addDocument("bobShared", "bob", {
      title: "Shared services",
      content: "How the shared services rotate their signing keys.",
      source: "slack"
    })
    await addDocument("bobPublic", "bob", {
      title: "Public FAQ",
      content: "Do you rotate signing keys? Yes, every quarter.",
      visibility: "public"
    })
    await addDocument("bobOtherTeam", "bob", { title: "Other team", content: "The other team rotates signing keys too." })
    await addCollection("sharedWithAlice", "bob", ["alice"], ["bobShared"])
    await addCollection("bobOnly", "bob", [], ["bobOtherTeam"])
    for (let i = 0; i < 25; i++) {
      await addDocument(`zebra${i}`, "alice", {
        title: `Zebra note ${i}`,
        content: `Zebra sighting number ${i}. ${"zebra ".repeat(i % 5)}`
      })
    }
  }, 120_000)
  afterAll(() => server.stop())

  const documentIds = (response: TestResponse) => response.json().results.map((result: { document_id: string }) => result.document_id)

  it("ranks by keyword, shows only what the caller may read, and marks the matched words", async () => {
    const response = await search("alice", { query: "rotate signing keys", mode: "keyword" })
    expect(response.status).toBe(200)
    const body = response.json()
    expect(body).toMatchObject({ query: "rotate signing keys", mode: "keyword", fallback: null, next_cursor: null, filters: {} })
    // Her own, the collection's and the public one; not bob's private ones, though they match best.
    expect(new Set(documentIds(response))).toEqual(new Set([documents.aliceKeys, documents.bobShared, documents.bobPublic]))
    expect(body.total).toBe(3)
    expect(body.results.map((result: { rank: number }) => result.rank)).toEqual([1, 2, 3])
    const scores = body.results.map((result: { score: number }) => result.score)
    expect([...scores].sort((a: number, b: number) => b - a)).toEqual(scores)
    const own = body.results.find((result: { document_id: string }) => result.document_id === documents.aliceKeys)
    expect(own).toMatchObject({ title: "Rotating the signing keys", source: "confluence", url: null })
    expect(own.content).toContain("Rotate the signing keys every quarter")
    expect(own.highlights.join(" ")).toMatch(/«Rotate» the «signing» «keys»/)
  })

  it("lets an admin read everything", async () => {
    const response = await search("admin", { query: "rotate signing keys", mode: "keyword", limit: 100 })
    expect(response.json().results[0].document_id).toBe(documents.bobSecret)
    expect(new Set(documentIds(response))).toEqual(
      new Set([documents.aliceKeys, documents.bobShared, documents.bobPublic, documents.bobSecret, documents.bobOtherTeam])
    )
  })

  it("applies every filter inside the search", async () => {
    const only = async (filters: unknown, expected: Array<string>) => {
      const response = await search("alice", { query: "rotate signing keys quarter", mode: "keyword", filters })
      expect(response.status).toBe(200)
      expect(new Set(documentIds(response))).toEqual(new Set(expected.map((key) => documents[key])))
      expect(response.json().total).toBe(expected.length)
      return response.json()
    }
    await only({ sources: ["confluence"] }, ["aliceKeys"])
    const tagged = await only({ tags: [" Security "] }, ["aliceKeys"])
    expect(tagged.filters).toEqual({ tags: ["security"] })
    await only({ collection_ids: [documents.sharedWithAlice] }, ["bobShared"])
    await only({ document_ids: [documents.bobPublic, documents.bobSecret] }, ["bobPublic"])
    await only({ updated_before: "2026-04-01T00:00:00Z" }, ["aliceKeys"])
    await only({ updated_after: "2026-04-01T00:00:00Z", sources: ["slack", "api"] }, ["bobShared", "bobPublic"])
    // The vocabulary of the bodies and listings: `collections` is not a filter (any more).
    const old = await search("alice", { query: "keys", filters: { collections: [documents.sharedWithAlice] } })
    expect(old.status).toBe(422)
    expect(old.json().details.map((detail: { path: string }) => detail.path)).toEqual(["filters.collections"])
  })

  it("answers 404 for a collection that does not exist or that the caller cannot see", async () => {
    for (const collection of [documents.bobOnly, "00000000-0000-4000-8000-000000000000"]) {
      const response = await search("alice", { query: "keys", filters: { collection_ids: [collection] } })
      expect(response.status).toBe(404)
      expect(response.json().error).toBe("not_found")
    }
    expect((await search("bob", { query: "keys", mode: "keyword", filters: { collection_ids: [documents.bobOnly] } })).status).toBe(200)
  })

  /** `count` one-chunk documents of `owner` in one statement (enough of them to outrun the pruning). */
  const addMany = (owner: string, count: number, title: string, content: string, visibility = "private") =>
    server.sql(
      (sql) =>
        sql`
        WITH inserted AS (
          INSERT INTO documents (owner_id, source, title, content, content_hash, tags, visibility, status)
          SELECT ${ids[owner]!}, 'api', ${title} || ' ' || i, ${content}, '-', '{}'::text[], ${visibility}, 'indexed'
          FROM generate_series(1, ${count}) AS i
          RETURNING id, title
        )
        INSERT INTO chunks (document_id, ordinal, content, contextual_content, start_offset, end_offset, token_count)
        SELECT id, 0, ${content}, title || ' ' || ${content}, 0, ${content.length}, 10 FROM inserted`
    )

  it("orders by BM25 on a small crafted corpus", async () => {
    await addDocument("quokkaBoth", "alice", { title: "Quokka marsupial", content: "Quokka and marsupial: quokka, marsupial." })
    await addDocument("quokkaOnce", "alice", { title: "Quokka", content: "A marsupial of Rottnest island, seen from a ferry." })
    await addDocument("quokkaOnly", "alice", { title: "Island notes", content: "A quokka on the path to the lighthouse and the bay." })
    await addDocument("quokkaNone", "alice", { title: "Island notes", content: "Wombats dig; nothing else to say here today." })
    const response = await search("alice", { query: "quokka marsupial", mode: "keyword" })
    expect(documentIds(response)).toEqual([documents.quokkaBoth, documents.quokkaOnce, documents.quokkaOnly])
    expect(response.json()).toMatchObject({ total: 3, total_relation: "eq" })
  })

  it("counts the total exactly up to 1,000 matches and says when it is a lower bound", async () => {
    await addMany("alice", 1100, "Ocelot report", "An ocelot crossed the trail at dusk.")
    const first = await search("alice", { query: "ocelot", mode: "keyword", limit: 10 })
    expect(first.status).toBe(200)
    expect(first.json()).toMatchObject({ total: 1000, total_relation: "gte" })
    expect(first.json().results).toHaveLength(10)
    // A lower bound still offers the next page.
    const second = await search("alice", { query: "ocelot", mode: "keyword", limit: 10, cursor: first.json().next_cursor })
    expect(second.json().results[0].rank).toBe(11)
    expect(new Set([...documentIds(first), ...documentIds(second)]).size).toBe(20)
    // Bob sees none of them: the count has the visibility in it.
    expect((await search("bob", { query: "ocelot", mode: "keyword" })).json()).toMatchObject({
      total: 0,
      total_relation: "eq",
      results: []
    })
  }, 120_000)

  it("finds the caller's own weaker matches when thousands of invisible documents outrank them", async () => {
    await addMany("bob", 2500, "Pangolin", "pangolin pangolin pangolin burrow burrow")
    await addDocument("alicePangolin", "alice", {
      title: "Field trip",
      content: "We walked for hours through the dry forest, counted birds and termite mounds, and near the end saw a pangolin."
    })
    const alice = await search("alice", { query: "pangolin burrow", mode: "keyword", limit: 10 })
    expect(documentIds(alice)).toEqual([documents.alicePangolin])
    expect(alice.json()).toMatchObject({ total: 1, total_relation: "eq" })
    // They do outrank it: the admin's first page is all bob's.
    const admin = await search("admin", { query: "pangolin burrow", mode: "keyword", limit: 10 })
    expect(admin.json().results).toHaveLength(10)
    expect(documentIds(admin)).not.toContain(documents.alicePangolin)
    expect(admin.json().total_relation).toBe("gte")
  }, 120_000)

  it("shows exactly what visibleTo allows after every kind of access change (visibility copied onto the postings)", async () => {
    const call = (who: string, method: string, path: string, body?: unknown) =>
      server.request(path, {
        method,
        headers: { authorization: `Bearer ${tokens[who]}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) })
      })
    await addDocument("wallabyBob", "bob", { title: "Wallaby one", content: "A wallaby in the garden." })
    await addDocument("wallabyBob2", "bob", { title: "Wallaby two", content: "Two wallaby tracks by the shed." })
    await addDocument("wallabyAlice", "alice", { title: "Wallaby three", content: "A wallaby on the road." })
    await addDocument("wallabyPublic", "bob", { title: "Wallaby four", content: "Wallaby facts.", visibility: "public" })
    // The oracle: the matching documents `visibleTo` lets the caller read, straight from the tables.
    const oracle = (who: string) =>
      server
        .sql(
          (sql) =>
            sql<{ id: string }>`
          SELECT d.id::text AS id FROM documents d
          WHERE EXISTS (SELECT 1 FROM chunks c WHERE c.document_id = d.id AND c.search_vector @@ 'wallabi'::tsquery)
            AND ${visibleTo(sql, { id: ids[who]!, role: "basic" } as Caller, "d")}`
        )
        .then((rows) => new Set(rows.map((row) => row.id)))
    const sees = async (who: string) => {
      const response = await search(who, { query: "wallaby", mode: "keyword", limit: 100 })
      expect(response.status).toBe(200)
      const found = new Set<string>(documentIds(response))
      expect(found).toEqual(await oracle(who))
      expect(response.json().total).toBe(found.size)
      return found
    }
    const step = async (expectAlice: Array<string>, expectBob: Array<string>) => {
      expect(await sees("alice")).toEqual(new Set(expectAlice.map((key) => documents[key])))
      expect(await sees("bob")).toEqual(new Set(expectBob.map((key) => documents[key])))
    }
    const bobs = ["wallabyBob", "wallabyBob2", "wallabyPublic"]
    await step(["wallabyAlice", "wallabyPublic"], bobs)

    // Visibility: public (an admin publishes), then private again (PATCH).
    expect((await call("admin", "PATCH", `/api/v1/documents/${documents.wallabyBob}`, { visibility: "public" })).status).toBe(200)
    await step(["wallabyAlice", "wallabyPublic", "wallabyBob"], bobs)
    expect((await call("bob", "PATCH", `/api/v1/documents/${documents.wallabyBob}`, { visibility: "private" })).status).toBe(200)
    await step(["wallabyAlice", "wallabyPublic"], bobs)

    // A collection alice belongs to: the document added, removed, added again.
    const created = await call("bob", "POST", "/api/v1/collections", { name: "Wallabies" })
    expect(created.status).toBe(201)
    const collection = created.json().id as string
    expect((await call("bob", "PUT", `/api/v1/collections/${collection}/members/${ids.alice}`, { role: "viewer" })).status).toBe(200)
    const inCollection = `/api/v1/collections/${collection}/documents/${documents.wallabyBob2}`
    expect((await call("bob", "POST", inCollection)).status).toBeLessThan(300)
    await step(["wallabyAlice", "wallabyPublic", "wallabyBob2"], bobs)
    expect((await call("bob", "DELETE", inCollection)).status).toBeLessThan(300)
    await step(["wallabyAlice", "wallabyPublic"], bobs)
    expect((await call("bob", "POST", inCollection)).status).toBeLessThan(300)
    await step(["wallabyAlice", "wallabyPublic", "wallabyBob2"], bobs)

    // Membership: alice removed, then back (read at query time).
    expect((await call("bob", "DELETE", `/api/v1/collections/${collection}/members/${ids.alice}`)).status).toBeLessThan(300)
    await step(["wallabyAlice", "wallabyPublic"], bobs)
    expect((await call("bob", "PUT", `/api/v1/collections/${collection}/members/${ids.alice}`, { role: "viewer" })).status).toBe(200)
    await step(["wallabyAlice", "wallabyPublic", "wallabyBob2"], bobs)

    // Re-indexed while in the collection: the new chunks' postings read the document's access.
    await server.sql(
      (sql) => sql`UPDATE chunks SET contextual_content = contextual_content || ' again' WHERE document_id = ${documents.wallabyBob2}`
    )
    await step(["wallabyAlice", "wallabyPublic", "wallabyBob2"], bobs)

    // Two collections: leaving one keeps it visible through the other; the collection's PATCH of the document.
    const other = (await call("bob", "POST", "/api/v1/collections", { name: "More wallabies" })).json().id as string
    expect((await call("bob", "PUT", `/api/v1/collections/${other}/members/${ids.alice}`, { role: "viewer" })).status).toBe(200)
    expect((await call("bob", "PATCH", `/api/v1/documents/${documents.wallabyBob2}`, { collection_ids: [other] })).status).toBe(200)
    await step(["wallabyAlice", "wallabyPublic", "wallabyBob2"], bobs)
    expect((await call("bob", "POST", inCollection)).status).toBeLessThan(300)
    expect((await call("bob", "DELETE", `/api/v1/collections/${other}`)).status).toBeLessThan(300)
    await step(["wallabyAlice", "wallabyPublic", "wallabyBob2"], bobs)

    // Deleting the collection (its rows go by cascade).
    expect((await call("bob", "DELETE", `/api/v1/collections/${collection}`)).status).toBeLessThan(300)
    await step(["wallabyAlice", "wallabyPublic"], bobs)

    // A new owner (no endpoint does it; the trigger covers any writer).
    await server.sql((sql) => sql`UPDATE documents SET owner_id = ${ids.alice!} WHERE id = ${documents.wallabyBob}`)
    await step(["wallabyAlice", "wallabyPublic", "wallabyBob"], ["wallabyBob2", "wallabyPublic"])
  }, 120_000)

  it("pages with a cursor, with the total on every page", async () => {
    const seen: Array<string> = []
    let cursor: string | undefined
    const sizes: Array<number> = []
    do {
      const response = await search("alice", { query: "zebra", mode: "keyword", limit: 10, ...(cursor ? { cursor } : {}) })
      expect(response.status).toBe(200)
      const body = response.json()
      expect(body.total).toBe(25)
      expect(body.results[0].rank).toBe(seen.length + 1)
      seen.push(...documentIds(response))
      sizes.push(body.results.length)
      cursor = body.next_cursor ?? undefined
    } while (cursor !== undefined)
    expect(sizes).toEqual([10, 10, 5])
    expect(new Set(seen).size).toBe(25)
  })

  it("refuses bad input with 422 in the one error shape", async () => {
    const first = (await search("alice", { query: "zebra", mode: "keyword", limit: 5 })).json()
    const bad: Array<unknown> = [
      { query: "" },
      { query: "   " },
      { query: "x".repeat(1001) },
      { query: "zebra", limit: 101 },
      { query: "zebra", limit: 0 },
      { query: "zebra", mode: "fuzzy" },
      { query: "zebra", filters: { colour: "red" } },
      { query: "zebra", filters: { tags: [] } },
      { query: "zebra", unknown: true },
      { query: "zebra", cursor: "not a cursor!" },
      { query: "zebra", cursor: Buffer.from('{"o":-1,"f":"x"}').toString("base64url") },
      // A cursor of another search.
      { query: "quarter", mode: "keyword", limit: 5, cursor: first.next_cursor }
    ]
    for (const body of bad) {
      const response = await search("alice", body)
      expect(response.status, JSON.stringify(body)).toBe(422)
      expect(response.json().error).toBe("validation_failed")
    }
    expect((await search("alice", { query: "zebra", mode: "keyword", limit: 5, cursor: first.next_cursor })).status).toBe(200)
  })

  it("needs credentials", async () => {
    const response = await server.request("/api/v1/search", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query: "keys" })
    })
    expect(response.status).toBe(401)
  })

  it("searches by meaning and fuses both lists where pgvector is", async () => {
    if (!server.pgvector) return
    const semantic = await search("alice", { query: "signing key rotation", mode: "semantic", limit: 100 })
    expect(semantic.status).toBe(200)
    expect(semantic.json()).toMatchObject({ mode: "semantic", fallback: null })
    expect(documentIds(semantic)[0]).toBe(documents.aliceKeys)
    expect(documentIds(semantic)).not.toContain(documents.bobSecret)
    expect(documentIds(semantic)).not.toContain(documents.bobOtherTeam)

    const hybrid = await search("alice", { query: "rotate signing keys", limit: 100, weights: { keyword: 1, semantic: 0.5 } })
    expect(hybrid.status).toBe(200)
    expect(hybrid.json()).toMatchObject({ mode: "hybrid", fallback: null })
    expect(documentIds(hybrid)).toContain(documents.aliceKeys)
    expect(documentIds(hybrid)).not.toContain(documents.bobSecret)
    expect(hybrid.json().total).toBe(hybrid.json().results.length)

    const filtered = await search("alice", { query: "signing keys", mode: "semantic", filters: { sources: ["slack"] } })
    expect(documentIds(filtered)).toEqual([documents.bobShared])
  })

  it("without pgvector: semantic names the missing extension, hybrid falls back to keyword and says so", async () => {
    if (server.pgvector) return
    const semantic = await search("alice", { query: "signing keys", mode: "semantic" })
    expect(semantic.status).toBe(422)
    expect(semantic.json().details[0]).toMatchObject({ path: "mode" })
    expect(semantic.json().details[0].message).toContain("pgvector")
    const hybrid = await search("alice", { query: "rotate signing keys" })
    expect(hybrid.status).toBe(200)
    expect(hybrid.json()).toMatchObject({ mode: "keyword", fallback: { requested_mode: "hybrid" } })
    expect(hybrid.json().fallback.reason).toContain("pgvector")
    expect(new Set(documentIds(hybrid))).toEqual(new Set([documents.aliceKeys, documents.bobShared, documents.bobPublic]))
  })
})
