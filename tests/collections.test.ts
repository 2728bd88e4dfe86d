/**
 * Collections: create (the creator owns it), list with totals, get, patch, delete; members and
 * their roles; documents added and removed; who may do each; no existence leak to non-members.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Person, signUp } from "./support/people.ts"
import { startServer, type TestServer } from "./support/server.ts"

describe("collections", () => {
  let server: TestServer
  let admin: Person
  let owner: Person
  let editor: Person
  let viewer: Person
  let stranger: Person

  beforeAll(async () => {
    server = await startServer({ BASALT_ALLOW_SIGNUP: "true" }, { emptyDatabase: true })
    admin = await signUp(server, "admin")
    owner = await signUp(server, "owner")
    editor = await signUp(server, "editor")
    viewer = await signUp(server, "viewer")
    stranger = await signUp(server, "stranger")
  })
  afterAll(() => server.stop())

  const call = (who: Person, method: string, path: string, body?: unknown) => server.request(path, who.json(method, body))
  const newCollection = async (who: Person, name: string) => (await call(who, "POST", "/api/v1/collections", { name })).json()
  const setRole = (who: Person, collectionId: string, userId: string, role: string) =>
    call(who, "PUT", `/api/v1/collections/${collectionId}/members/${userId}`, { role })

  it("makes the creator its owner and lists the caller's collections with a total", async () => {
    const created = await call(owner, "POST", "/api/v1/collections", { name: "  Handbook ", description: "Policies" })
    expect(created.status).toBe(201)
    expect(created.json()).toMatchObject({
      name: "Handbook",
      description: "Policies",
      owner_id: owner.id,
      role: "owner",
      member_count: 1,
      document_count: 0
    })
    await newCollection(owner, "Second")
    await newCollection(owner, "Third")
    const page1 = (await owner.get("/api/v1/collections?limit=2")).json()
    expect(page1.total).toBe(3)
    expect(page1.items.map((c: { name: string }) => c.name)).toEqual(["Third", "Second"])
    const page2 = (await owner.get(`/api/v1/collections?limit=2&cursor=${page1.next_cursor}`)).json()
    expect(page2.items.map((c: { name: string }) => c.name)).toEqual(["Handbook"])
    expect(page2.next_cursor).toBeNull()
    expect((await stranger.get("/api/v1/collections")).json()).toEqual({ items: [], next_cursor: null, total: 0 })
    expect((await owner.get("/api/v1/collections?cursor=garbage")).status).toBe(422)
    expect((await owner.get("/api/v1/collections?name=x")).status).toBe(422)
    expect((await call(owner, "POST", "/api/v1/collections", { name: " " })).status).toBe(422)
  })

  it("refuses a name of only whitespace and null where the contract does not declare it, naming the field", async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ name: "\u2028\u2029" }, "name"],
      [{ name: " \t " }, "name"],
      [{ name: "x", description: null }, "description"]
    ]
    for (const [body, path] of cases) {
      const response = await call(owner, "POST", "/api/v1/collections", body)
      expect(response.status, JSON.stringify(body)).toBe(422)
      expect(response.json().details.map((d: { path: string }) => d.path)).toEqual([path])
    }
    const { id } = await newCollection(owner, "Nulls")
    const cleared = await call(owner, "PATCH", `/api/v1/collections/${id}`, { description: null })
    expect(cleared.status).toBe(422)
    expect(cleared.json().details.map((d: { path: string }) => d.path)).toEqual(["description"])
  })

  it("hides a collection from non-members (404) and lets roles do what they may", async () => {
    const collection = await newCollection(owner, "Team")
    const path = `/api/v1/collections/${collection.id}`
    expect((await setRole(owner, collection.id, editor.id, "editor")).json()).toMatchObject({ user_id: editor.id, role: "editor" })
    expect((await setRole(owner, collection.id, viewer.id, "viewer")).status).toBe(200)

    for (const [method, suffix, body] of [
      ["GET", "", undefined],
      ["PATCH", "", { name: "Mine" }],
      ["DELETE", "", undefined],
      ["GET", "/members", undefined],
      ["PUT", `/members/${stranger.id}`, { role: "owner" }]
    ] as const) {
      const response = await call(stranger, method, `${path}${suffix}`, body)
      expect(response.status, `${method} ${suffix}`).toBe(404)
    }
    expect((await viewer.get(path)).json().role).toBe("viewer")
    expect((await call(viewer, "PATCH", path, { name: "Renamed" })).status).toBe(403)
    expect((await call(editor, "PATCH", path, { description: "Edited" })).json()).toMatchObject({ description: "Edited", name: "Team" })
    expect((await setRole(editor, collection.id, stranger.id, "viewer")).status).toBe(403)
    expect((await call(editor, "DELETE", path)).status).toBe(403)
    // Admins see and manage every collection, member or not.
    expect((await admin.get(path)).json()).toMatchObject({ role: null, member_count: 3 })
    const members = (await viewer.get(`${path}/members`)).json().items
    expect(members.map((m: { role: string }) => m.role)).toEqual(["owner", "editor", "viewer"])
  })

  it("always keeps an owner, and refuses unknown users", async () => {
    const collection = await newCollection(owner, "Owned")
    const members = `/api/v1/collections/${collection.id}/members`
    expect((await setRole(owner, collection.id, owner.id, "viewer")).status).toBe(409)
    expect((await call(owner, "DELETE", `${members}/${owner.id}`)).status).toBe(409)
    expect((await setRole(owner, collection.id, "00000000-0000-4000-8000-000000000000", "viewer")).status).toBe(404)
    expect((await setRole(owner, collection.id, editor.id, "owner")).status).toBe(200)
    // With a second owner the first may step down.
    expect((await setRole(owner, collection.id, owner.id, "viewer")).json().role).toBe("viewer")
    expect((await call(editor, "DELETE", `${members}/${owner.id}`)).status).toBe(204)
    expect((await call(editor, "DELETE", `${members}/${owner.id}`)).status).toBe(404)
    expect((await owner.get(`/api/v1/collections/${collection.id}`)).status).toBe(404)
  })

  it("adds a colleague by email, leaking no more than whether they can be added, and audits every attempt", async () => {
    const collection = await newCollection(owner, "By email")
    const members = `/api/v1/collections/${collection.id}/members`
    const add = (who: Person, body: unknown) => call(who, "POST", members, body)

    const added = await add(owner, { email: "Viewer@Example.COM", role: "viewer" })
    expect(added.status).toBe(200)
    expect(added.json()).toMatchObject({ user_id: viewer.id, email: "viewer@example.com", role: "viewer" })
    // By email again: the role changes. By id works as well.
    expect((await add(owner, { email: "viewer@example.com", role: "editor" })).json()).toMatchObject({ user_id: viewer.id, role: "editor" })
    expect((await add(owner, { user_id: editor.id, role: "viewer" })).json()).toMatchObject({ user_id: editor.id, role: "viewer" })

    // No account, a deactivated account and an unknown id: one and the same answer.
    const leaver = await signUp(server, "leaver")
    expect((await call(admin, "PATCH", `/api/v1/admin/users/${leaver.id}`, { active: false })).status).toBe(200)
    const refusals = [
      await add(owner, { email: "nobody@example.com", role: "viewer" }),
      await add(owner, { email: "leaver@example.com", role: "viewer" }),
      await add(owner, { user_id: leaver.id, role: "viewer" }),
      await add(owner, { user_id: "00000000-0000-4000-8000-000000000000", role: "viewer" })
    ]
    const answers = refusals.map((response) => {
      const { request_id: _, ...body } = response.json()
      return { status: response.status, body }
    })
    expect(answers[0]!.status).toBe(404)
    for (const answer of answers) expect(answer).toEqual(answers[0])

    // Exactly one of email and user_id, and a role.
    for (const body of [
      { email: "viewer@example.com", user_id: viewer.id, role: "viewer" },
      { role: "viewer" },
      { email: "viewer@example.com" }
    ]) {
      expect((await add(owner, body)).status, JSON.stringify(body)).toBe(422)
    }
    // Only who manages the collection gets as far as the lookup: others learn nothing of emails.
    const strangerAsks = await add(stranger, { email: "viewer@example.com", role: "viewer" })
    const strangerGuesses = await add(stranger, { email: "nobody@example.com", role: "viewer" })
    expect([strangerAsks.status, strangerGuesses.status]).toEqual([404, 404])
    expect(strangerAsks.json().message).toBe(strangerGuesses.json().message)
    expect((await add(viewer, { email: "stranger@example.com", role: "viewer" })).status).toBe(403)

    const audit = async (action: string) =>
      (await admin.get(`/api/v1/admin/audit?action=${action}`))
        .json()
        .items.filter((event: { details: { collection_id?: string } }) => event.details.collection_id === collection.id)
    const misses = await audit("collection_member_not_found")
    expect(misses.map((event: { actor_id: string; details: unknown }) => [event.actor_id, event.details])).toEqual([
      [owner.id, { collection_id: collection.id, user_id: "00000000-0000-4000-8000-000000000000" }],
      [owner.id, { collection_id: collection.id, user_id: leaver.id }],
      [owner.id, { collection_id: collection.id, email: "leaver@example.com" }],
      [owner.id, { collection_id: collection.id, email: "nobody@example.com" }]
    ])
    const found = await audit("collection_member_set")
    expect(
      found.map((event: { subject_id: string; details: { by: string; role: string } }) => [
        event.subject_id,
        event.details.by,
        event.details.role
      ])
    ).toEqual([
      [editor.id, "user_id", "viewer"],
      [viewer.id, "email", "editor"],
      [viewer.id, "email", "viewer"]
    ])
  })

  it("adds and removes documents: editor on the collection and the right to change the document", async () => {
    const collection = await newCollection(owner, "Shared docs")
    await setRole(owner, collection.id, editor.id, "editor")
    await setRole(owner, collection.id, viewer.id, "viewer")
    const create = async (who: Person, title: string) =>
      (await call(who, "POST", "/api/v1/documents", { title, content: `${title} text`, source: "api" })).json()
    const editorsDoc = await create(editor, "Editor's notes")
    const strangersDoc = await create(stranger, "Private notes")
    const docs = `/api/v1/collections/${collection.id}/documents`

    expect((await call(editor, "POST", `${docs}/${editorsDoc.id}`)).status).toBe(204)
    expect((await call(editor, "POST", `${docs}/${editorsDoc.id}`)).status).toBe(204)
    expect((await owner.get(`/api/v1/collections/${collection.id}`)).json().document_count).toBe(1)
    // Members now see it; a viewer may read it but neither change it nor take it out.
    expect((await viewer.get(`/api/v1/documents/${editorsDoc.id}`)).json().collection_ids).toEqual([collection.id])
    expect((await call(viewer, "PATCH", `/api/v1/documents/${editorsDoc.id}`, { tags: ["x"] })).status).toBe(403)
    expect((await call(viewer, "DELETE", `${docs}/${editorsDoc.id}`)).status).toBe(403)
    // The owner of the collection may change documents in it.
    expect((await call(owner, "PATCH", `/api/v1/documents/${editorsDoc.id}`, { tags: ["reviewed"] })).status).toBe(200)
    // Someone else's private document is not visible: 404, whoever's collection it is.
    expect((await call(owner, "POST", `${docs}/${strangersDoc.id}`)).status).toBe(404)
    // A stranger can neither see the collection nor add to it.
    expect((await call(stranger, "POST", `${docs}/${strangersDoc.id}`)).status).toBe(404)
    const viaCreate = await call(stranger, "POST", "/api/v1/documents", {
      title: "Sneaky",
      content: "x",
      source: "api",
      collection_ids: [collection.id]
    })
    expect(viaCreate.status).toBe(404)
    const asViewer = await call(viewer, "POST", "/api/v1/documents", {
      title: "Viewer's",
      content: "x",
      source: "api",
      collection_ids: [collection.id]
    })
    expect(asViewer.status).toBe(403)
    // Collections change with PATCH too, and leave with DELETE.
    const moved = await call(editor, "PATCH", `/api/v1/documents/${editorsDoc.id}`, { collection_ids: [] })
    expect(moved.json().collection_ids).toEqual([])
    expect((await call(editor, "PATCH", `/api/v1/documents/${editorsDoc.id}`, { collection_ids: [collection.id] })).status).toBe(200)
    expect((await call(editor, "DELETE", `${docs}/${editorsDoc.id}`)).status).toBe(204)
    expect((await viewer.get(`/api/v1/documents/${editorsDoc.id}`)).status).toBe(404)
  })

  it("deletes a collection (owner or admin); its documents stay", async () => {
    const collection = await newCollection(owner, "Doomed")
    const document = (
      await call(owner, "POST", "/api/v1/documents", {
        title: "Survivor",
        content: "Still here",
        source: "api",
        collection_ids: [collection.id]
      })
    ).json()
    expect(document.collection_ids).toEqual([collection.id])
    expect((await call(owner, "DELETE", `/api/v1/collections/${collection.id}`)).status).toBe(204)
    expect((await call(owner, "DELETE", `/api/v1/collections/${collection.id}`)).status).toBe(404)
    expect((await owner.get(`/api/v1/documents/${document.id}`)).json().collection_ids).toEqual([])
    const another = await newCollection(owner, "Admin deletes")
    expect((await call(admin, "DELETE", `/api/v1/collections/${another.id}`)).status).toBe(204)
  })
})
