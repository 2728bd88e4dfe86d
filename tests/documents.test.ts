/**
 * Documents through the API: create and update by (source, external_id), unchanged content not
 * re-indexed, get, list with filters and totals, patch without re-indexing, delete, batches with
 * per-item results, and the refusals of bad input. Documents are answered `queued` and then
 * followed through the real background indexer to `indexed`.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Person, settled, signUp, signUpAs } from "./support/people.ts"
import { startServer, type TestServer } from "./support/server.ts"

describe("documents", () => {
  let server: TestServer
  let admin: Person
  let ada: Person
  let curator: Person

  beforeAll(async () => {
    server = await startServer({ BASALT_ALLOW_SIGNUP: "true" }, { emptyDatabase: true })
    admin = await signUp(server, "admin")
    ada = await signUp(server, "ada")
    curator = await signUpAs(server, admin, "curator", "curator")
  })
  afterAll(() => server.stop())

  const create = (who: Person, body: Record<string, unknown>) => server.request("/api/v1/documents", who.json("POST", body))
  const list = async (who: Person, query = "") => (await who.get(`/api/v1/documents${query}`)).json()

  it("accepts a document with 202, queued, tags trimmed, lower-cased and deduplicated", async () => {
    const response = await create(ada, {
      title: "  Onboarding guide ",
      content: "# Onboarding\n\nWelcome to the team.",
      source: "confluence",
      external_id: "PAGE-1",
      url: "https://wiki.example.com/PAGE-1",
      metadata: { space: "HR", views: 3 },
      tags: [" HR ", "hr", "Guide"]
    })
    expect(response.status).toBe(202)
    const document = response.json()
    expect(document).toMatchObject({
      title: "Onboarding guide",
      source: "confluence",
      external_id: "PAGE-1",
      owner_id: ada.id,
      status: "queued",
      revision: 1,
      chunk_count: 0,
      error: null,
      tags: ["hr", "guide"],
      metadata: { space: "HR", views: 3 },
      visibility: "private",
      collection_ids: [],
      indexed_at: null
    })
    expect(document.content_hash).toMatch(/^[0-9a-f]{64}$/)
    const fetched = await ada.get(`/api/v1/documents/${document.id}`)
    expect(fetched.status).toBe(200)
    // Indexing moves on in the background; everything else is as accepted.
    const { chunk_count: _, indexed_at: __, status: ___, status_changed_at: ____, ...accepted } = document
    expect(fetched.json()).toMatchObject(accepted)
    expect(await settled(ada, document.id)).toMatchObject({ ...accepted, status: "indexed", chunk_count: 1, error: null })
  })

  it("updates the same (source, external_id) instead of creating another, re-indexing only changed content", async () => {
    const first = (await create(ada, { title: "Policy", content: "Version one", source: "slack", external_id: "C1" })).json()
    const same = await create(ada, { title: "Policy", content: "Version one", source: "slack", external_id: "C1", tags: ["kept"] })
    expect(same.status).toBe(200)
    expect(same.json()).toMatchObject({ id: first.id, revision: 1, content_hash: first.content_hash, tags: ["kept"] })
    const changed = await create(ada, { title: "Policy", content: "Version two", source: "slack", external_id: "C1" })
    expect(changed.status).toBe(202)
    expect(changed.json()).toMatchObject({ id: first.id, revision: 2, status: "queued", tags: ["kept"] })
    expect(changed.json().content_hash).not.toBe(first.content_hash)
    // Another owner's identical key is another document.
    const other = await create(curator, { title: "Policy", content: "Version two", source: "slack", external_id: "C1" })
    expect(other.status).toBe(202)
    expect(other.json().id).not.toBe(first.id)
    const slack = await list(ada, "?sources=slack")
    expect(slack.total).toBe(1)
  })

  it("refuses bad input with 422 naming the field, and writes nothing", async () => {
    const before = (await list(ada)).total
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ title: "", content: "x", source: "api" }, "title"],
      [{ title: "t".repeat(501), content: "x", source: "api" }, "title"],
      [{ title: "t", content: "   ", source: "api" }, "content"],
      [{ title: "t", content: "x", source: "Not A Source" }, "source"],
      [{ title: "t", content: "x", source: "api", tags: Array.from({ length: 11 }, (_, i) => `t${i}`) }, "tags"],
      [{ title: "t", content: "x", source: "api", tags: ["ok", " "] }, "tags.1"],
      [{ title: "t", content: "x", source: "api", metadata: { blob: "x".repeat(17 * 1024) } }, "metadata"],
      [{ title: "t", content: "x", source: "api", colour: "red" }, "colour"],
      [{ title: "t", content: "x", source: "api", visibility: "secret" }, "visibility"],
      // Only whitespace as JavaScript's trim reads it: the contract's `pattern: "\\S"` says the same.
      [{ title: " \t ", content: "x", source: "api" }, "title"],
      [{ title: "t", content: "\u2028\u2029", source: "api" }, "content"],
      [{ title: "t", content: "x", source: "api", url: "\u00a0\ufeff" }, "url"],
      [{ title: "t", content: "x", source: "api", external_id: "\u3000" }, "external_id"],
      // null only where the contract declares it (UpdateDocumentRequest.url clears the url).
      [{ title: "t", content: "x", source: "api", collection_ids: null }, "collection_ids"],
      [{ title: "t", content: "x", source: "api", tags: null }, "tags"],
      [{ title: "t", content: "x", source: "api", url: null }, "url"]
    ]
    for (const [body, path] of cases) {
      const response = await create(ada, body)
      expect(response.status, JSON.stringify(body).slice(0, 80)).toBe(422)
      expect(response.json().error).toBe("validation_failed")
      expect(response.json().details.map((d: { path: string }) => d.path)).toContain(path)
    }
    const unknownCollection = await create(ada, {
      title: "t",
      content: "x",
      source: "api",
      collection_ids: ["00000000-0000-4000-8000-000000000000"]
    })
    expect(unknownCollection.status).toBe(404)
    expect(unknownCollection.json().message).toMatch(/collection/)
    expect((await list(ada)).total).toBe(before)
  })

  it("lets only curators and admins publish", async () => {
    const refused = await create(ada, { title: "Public", content: "x", source: "api", visibility: "public" })
    expect(refused.status).toBe(403)
    const published = await create(curator, { title: "Public", content: "For all", source: "api", visibility: "public" })
    expect(published.status).toBe(202)
    expect((await ada.get(`/api/v1/documents/${published.json().id}`)).status).toBe(200)
  })

  it("lists with filters, a total and cursors; refuses unknown filters and forged cursors", async () => {
    const mine = await signUp(server, "lister")
    const ids: Array<string> = []
    for (let i = 0; i < 5; i++) {
      const response = await create(mine, {
        title: `Note ${i}`,
        content: `Body ${i}`,
        source: "lister",
        tags: i < 2 ? ["first-two"] : []
      })
      ids.push(response.json().id)
    }
    // Public documents of others are listed too: the filters narrow to these five.
    expect((await list(mine)).total).toBeGreaterThan(5)
    const page1 = await list(mine, "?sources=lister&limit=2")
    expect(page1.total).toBe(5)
    expect(page1.items).toHaveLength(2)
    const page2 = await list(mine, `?sources=lister&limit=2&cursor=${page1.next_cursor}`)
    const page3 = await list(mine, `?sources=lister&limit=2&cursor=${page2.next_cursor}`)
    expect(page3.next_cursor).toBeNull()
    const seen = [...page1.items, ...page2.items, ...page3.items].map((d: { id: string }) => d.id)
    expect(seen).toEqual([...ids].reverse())
    expect((await list(mine, "?sources=web")).total).toBe(0)
    expect((await list(mine, "?tags=FIRST-TWO")).total).toBe(2)
    for (const id of ids) await settled(mine, id)
    expect((await list(mine, "?sources=lister&status=indexed")).total).toBe(5)
    expect((await list(mine, "?sources=lister&status=queued")).total).toBe(0)
    const future = new Date(Date.now() + 60_000).toISOString()
    expect((await list(mine, `?sources=lister&updated_after=${future}`)).total).toBe(0)
    expect((await list(mine, `?sources=lister&updated_before=${future}`)).total).toBe(5)

    const unknown = await mine.get("/api/v1/documents?owner=me&sorce=web")
    expect(unknown.status).toBe(422)
    expect(
      unknown
        .json()
        .details.map((d: { path: string }) => d.path)
        .sort()
    ).toEqual(["owner", "sorce"])
    const forged = await mine.get("/api/v1/documents?cursor=bm90LWEtY3Vyc29y")
    expect(forged.status).toBe(422)
    expect(forged.json().details[0].path).toBe("cursor")
    expect((await mine.get("/api/v1/documents?limit=101")).status).toBe(422)
    expect((await mine.get("/api/v1/documents?status=done")).status).toBe(422)
  })

  it("filters lists by the body's names, a list being the name repeated (any of its values matches)", async () => {
    const vocabulary = await signUp(server, "vocabulary")
    const collection = (await server.request("/api/v1/collections", vocabulary.json("POST", { name: "Vocabulary" }))).json()
    const make = async (title: string, source: string, tags: Array<string>, collectionIds: Array<string> = []) =>
      (await create(vocabulary, { title, content: title, source, tags, collection_ids: collectionIds })).json().id as string
    const red = await make("red", "vocab_one", ["red"], [collection.id])
    const green = await make("green", "vocab_two", ["green"])
    const blue = await make("blue", "vocab_three", ["blue"])
    const titles = async (query: string) => {
      const page = await list(vocabulary, query)
      expect(page.total, query).toBe(page.items.length)
      return page.items.map((document: { id: string }) => document.id).sort()
    }
    expect(await titles("?sources=vocab_one&sources=vocab_two")).toEqual([red, green].sort())
    expect(await titles("?tags=RED&tags=blue")).toEqual([red, blue].sort())
    expect(await titles(`?collection_ids=${collection.id}`)).toEqual([red])
    // Every filter must hold: any of the tags, and one of the sources.
    expect(await titles("?tags=red&tags=blue&sources=vocab_three")).toEqual([blue])
    const progress = (await vocabulary.get("/api/v1/documents/progress?sources=vocab_one&sources=vocab_three")).json()
    expect(progress.total).toBe(2)
    // The old singular names are not aliases: unknown parameters, refused.
    for (const old of ["source=vocab_one", "tag=red", `collection_id=${collection.id}`]) {
      const refused = await vocabulary.get(`/api/v1/documents?${old}`)
      expect(refused.status, old).toBe(422)
      expect(refused.json().details.map((detail: { path: string }) => detail.path)).toEqual([old.split("=")[0]])
    }
  })

  it("patches metadata, tags and visibility without re-indexing; a new title re-indexes", async () => {
    const accepted = (await create(curator, { title: "Handbook", content: "Text", source: "api" })).json()
    const created = await settled(curator, accepted.id)
    const patched = await server.request(
      `/api/v1/documents/${created.id}`,
      curator.json("PATCH", { tags: ["A", "b", "a"], metadata: { team: "people" }, visibility: "public", url: "https://x.example" })
    )
    expect(patched.status).toBe(200)
    expect(patched.json()).toMatchObject({
      tags: ["a", "b"],
      metadata: { team: "people" },
      visibility: "public",
      url: "https://x.example",
      revision: 1,
      content_hash: created.content_hash,
      status: "indexed",
      status_changed_at: created.status_changed_at
    })
    const retitled = await server.request(`/api/v1/documents/${created.id}`, curator.json("PATCH", { title: "Staff handbook" }))
    expect(retitled.json()).toMatchObject({ title: "Staff handbook", revision: 2, status: "queued" })
    expect(retitled.json().content_hash).not.toBe(created.content_hash)
    const empty = await server.request(`/api/v1/documents/${created.id}`, curator.json("PATCH", {}))
    expect(empty.status).toBe(422)
    // A public document is readable by all, changeable only by who may change it.
    const byOther = await server.request(`/api/v1/documents/${created.id}`, ada.json("PATCH", { tags: ["mine"] }))
    expect(byOther.status).toBe(403)
    const deleteByOther = await server.request(`/api/v1/documents/${created.id}`, ada.json("DELETE"))
    expect(deleteByOther.status).toBe(403)
  })

  it("deletes a document once; its chunks are gone with it", async () => {
    const created = await settled(ada, (await create(ada, { title: "Temporary", content: "Soon gone", source: "api" })).json().id)
    expect(created).toMatchObject({ status: "indexed", chunk_count: 1 })
    const chunkRows = () => server.query<{ n: number }>("SELECT count(*)::int AS n FROM chunks WHERE document_id = $1", [created.id])
    expect(await chunkRows()).toEqual([{ n: 1 }])
    expect((await server.request(`/api/v1/documents/${created.id}`, ada.json("DELETE"))).status).toBe(204)
    expect(await chunkRows()).toEqual([{ n: 0 }])
    expect((await server.request(`/api/v1/documents/${created.id}`, ada.json("DELETE"))).status).toBe(404)
    expect((await ada.get(`/api/v1/documents/${created.id}`)).status).toBe(404)
    expect((await ada.get(`/api/v1/documents/${created.id}/chunks`)).status).toBe(404)
    expect((await ada.get(`/api/v1/documents/${created.id}/chunks?cursor=eyJ4IjoxfQ`)).status).toBe(404)
  })

  describe("batch", () => {
    it("answers 207 with one result per item; a bad item fails alone", async () => {
      const response = await server.request(
        "/api/v1/documents/batch",
        ada.json("POST", {
          documents: [
            { title: "One", content: "First", source: "api", external_id: "b-1" },
            { title: "", content: "Second", source: "api" },
            "not an object",
            { title: "Four", content: "x", source: "api", collection_ids: ["00000000-0000-4000-8000-000000000000"] },
            { title: "Five", content: "x", source: "api", visibility: "public" },
            { title: "One", content: "First", source: "api", external_id: "b-1" }
          ]
        })
      )
      expect(response.status).toBe(207)
      const body = response.json()
      expect(body.results.map((r: { status: number }) => r.status)).toEqual([202, 422, 422, 404, 403, 200])
      expect(body).toMatchObject({ succeeded: 2, failed: 4 })
      expect(body.results[0].document.status).toBe("queued")
      expect(body.results[5].document.id).toBe(body.results[0].document.id)
      expect(body.results[1].error.error).toBe("validation_failed")
      expect(body.results[1].error.details.map((d: { path: string }) => d.path)).toEqual(["documents.1.title"])
      expect(body.results[2].error.details[0].path).toBe("documents.2")
      expect(body.results[3].error.error).toBe("not_found")
      expect(body.results.map((r: { index: number }) => r.index)).toEqual([0, 1, 2, 3, 4, 5])
      expect((await list(ada, "?sources=api")).items.filter((d: { title: string }) => d.title === "Four")).toEqual([])
    })

    it("refuses a body that is not a batch of 1 to 100", async () => {
      const tooMany = Array.from({ length: 101 }, (_, i) => ({ title: `t${i}`, content: "x", source: "api" }))
      for (const body of [{ documents: [] }, { documents: tooMany }, { documents: "no" }, {}]) {
        const response = await server.request("/api/v1/documents/batch", ada.json("POST", body))
        expect(response.status).toBe(422)
      }
    })
  })
})
