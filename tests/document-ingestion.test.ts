/**
 * Ingestion's one transaction per call: a batch's accepted items are stored together with the
 * requests to index them. Items naming one document apply in batch order (the last wins); items
 * refused for their rights (an unknown collection, one the caller may only view, making a
 * document public) fail alone; a transaction that fails leaves nothing behind, not even a
 * document queued without its indexing request; an accepted document's request is stored by
 * the time the answer is sent, and it gets indexed.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Person, settled, signUp } from "./support/people.ts"
import { startServer, type TestServer } from "./support/server.ts"

describe("document ingestion", () => {
  let server: TestServer
  let ada: Person
  let bob: Person

  beforeAll(async () => {
    // A database of its own: one test refuses the indexing requests with a trigger.
    server = await startServer({ BASALT_ALLOW_SIGNUP: "true" }, { emptyDatabase: true })
    await signUp(server, "admin")
    ada = await signUp(server, "ada")
    bob = await signUp(server, "bob")
  })
  afterAll(() => server.stop())

  const batch = (who: Person, documents: ReadonlyArray<unknown>) =>
    server.request("/api/v1/documents/batch", who.json("POST", { documents }))
  const documentsOf = (source: string) =>
    server.query<{ id: string; title: string; status: string; revision: number }>(
      "SELECT id::text AS id, title, status, revision FROM documents WHERE source = $1 ORDER BY title",
      [source]
    )
  const messagesFor = (documentId: string) =>
    server.query<{ entity_id: string }>(
      "SELECT entity_id FROM cluster_messages WHERE entity_type = 'DocumentIndexing' AND entity_id = $1",
      [documentId]
    )

  it("applies items naming one (source, external_id) in batch order: one document, the last wins", async () => {
    const response = await batch(ada, [
      { title: "Draft", content: "First words", source: "repeat", external_id: "r-1" },
      { title: "Other", content: "Another document", source: "repeat", external_id: "r-2" },
      { title: "Second", content: "Second words", source: "repeat", external_id: "r-1" },
      { title: "Final", content: "Final words", source: "repeat", external_id: "r-1", tags: ["last"] }
    ])
    expect(response.status).toBe(207)
    const body = response.json()
    expect(body.results.map((r: { status: number }) => r.status)).toEqual([202, 202, 202, 202])
    const ids = body.results.map((r: { document: { id: string } }) => r.document.id)
    expect(ids[0]).toBe(ids[2])
    expect(ids[0]).toBe(ids[3])
    expect(ids[1]).not.toBe(ids[0])
    expect(body.results[3].document).toMatchObject({ title: "Final", revision: 3, status: "queued", tags: ["last"] })
    const stored = await documentsOf("repeat")
    expect(stored.map((row) => [row.title, row.revision])).toEqual([
      ["Final", 3],
      ["Other", 1]
    ])
    expect(await settled(ada, ids[0])).toMatchObject({ title: "Final", revision: 3, status: "indexed", chunk_count: 1 })

    // The same content again is unchanged (200, not re-indexed), even twice in one batch.
    const again = (
      await batch(ada, [
        { title: "Final", content: "Final words", source: "repeat", external_id: "r-1" },
        { title: "Final", content: "Final words", source: "repeat", external_id: "r-1" }
      ])
    ).json()
    expect(again.results.map((r: { status: number }) => r.status)).toEqual([200, 200])
    expect(again.results[1].document).toMatchObject({ id: ids[0], revision: 3, status: "indexed" })
  })

  it("stores the items it may, refusing alone an unknown collection, one the caller may only view, and a public item", async () => {
    const own = (await server.request("/api/v1/collections", ada.json("POST", { name: "Ada's" }))).json()
    const bobs = (await server.request("/api/v1/collections", bob.json("POST", { name: "Bob's" }))).json()
    const shared = await server.request(`/api/v1/collections/${bobs.id}/members/${ada.id}`, bob.json("PUT", { role: "viewer" }))
    expect(shared.status).toBeLessThan(300)
    const response = await batch(ada, [
      { title: "Kept one", content: "x", source: "mixed", collection_ids: [own.id] },
      { title: "Unknown", content: "x", source: "mixed", collection_ids: ["00000000-0000-4000-8000-000000000000"] },
      { title: "Public", content: "x", source: "mixed", visibility: "public" },
      { title: "Viewed", content: "x", source: "mixed", collection_ids: [bobs.id] },
      { title: "Kept two", content: "x", source: "mixed", external_id: "m-2" }
    ])
    const body = response.json()
    expect(body.results.map((r: { status: number }) => r.status)).toEqual([202, 404, 403, 403, 202])
    expect(body).toMatchObject({ succeeded: 2, failed: 3 })
    expect(body.results[0].document.collection_ids).toEqual([own.id])
    expect((await documentsOf("mixed")).map((row) => row.title)).toEqual(["Kept one", "Kept two"])
    const inCollection = await server.query<{ count: number }>(
      "SELECT count(*)::int AS count FROM document_collections WHERE collection_id = $1",
      [own.id]
    )
    expect(inCollection[0]!.count).toBe(1)

    // Items naming one document see the collections the ones before them left it in.
    const joined = (
      await batch(ada, [{ title: "Member", content: "x", source: "mixed", external_id: "m-3", collection_ids: [own.id] }])
    ).json()
    expect(joined.results[0].document.collection_ids).toEqual([own.id])
    const moved = (
      await batch(ada, [
        { title: "Member", content: "x", source: "mixed", external_id: "m-3", collection_ids: [] },
        { title: "Member", content: "x", source: "mixed", external_id: "m-3", collection_ids: [own.id] }
      ])
    ).json()
    expect(moved.results.map((r: { status: number }) => r.status)).toEqual([200, 200])
    expect(moved.results[1].document.collection_ids).toEqual([own.id])
    const left = (
      await batch(ada, [
        { title: "Member", content: "x", source: "mixed", external_id: "m-3", collection_ids: [own.id] },
        { title: "Member", content: "x", source: "mixed", external_id: "m-3", collection_ids: [] }
      ])
    ).json()
    expect(left.results[1].document.collection_ids).toEqual([])
  })

  it("leaves nothing behind when the transaction fails, and no document queued without its indexing request", async () => {
    await server.query(`
      CREATE FUNCTION basalt_test_refuse_message() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'indexing requests refused by the test'; END $$`)
    await server.query(`
      CREATE TRIGGER basalt_test_refuse_message BEFORE INSERT ON cluster_messages
      FOR EACH ROW WHEN (NEW.entity_type = 'DocumentIndexing') EXECUTE FUNCTION basalt_test_refuse_message()`)
    try {
      const refused = await batch(ada, [
        { title: "Lost one", content: "x", source: "atomic", external_id: "a-1" },
        { title: "Lost two", content: "y", source: "atomic" }
      ])
      expect(refused.status).toBe(500)
      const single = await server.request("/api/v1/documents", ada.json("POST", { title: "Lost three", content: "z", source: "atomic" }))
      expect(single.status).toBe(500)
    } finally {
      await server.query("DROP TRIGGER basalt_test_refuse_message ON cluster_messages")
      await server.query("DROP FUNCTION basalt_test_refuse_message()")
    }
    expect(await documentsOf("atomic")).toEqual([])

    const accepted = (
      await batch(ada, [
        { title: "Kept one", content: "x", source: "atomic", external_id: "a-1" },
        { title: "Kept two", content: "y", source: "atomic" }
      ])
    ).json()
    expect(accepted.results.map((r: { status: number }) => r.status)).toEqual([202, 202])
    for (const result of accepted.results) {
      // Stored with the document, before the answer: indexing cannot miss it.
      expect(await messagesFor(result.document.id)).toHaveLength(1)
      expect(await settled(ada, result.document.id)).toMatchObject({ status: "indexed" })
    }
  })
})
