/** Administration of accounts, and the caller's own profile. */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startServer, type TestServer } from "./support/server.ts"

const json = (method: string, body: unknown, token?: string): RequestInit => ({
  method,
  headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
  body: JSON.stringify(body)
})
const bearer = (token: string): RequestInit => ({ headers: { authorization: `Bearer ${token}` } })

describe("administration of accounts", () => {
  let server: TestServer
  let admin: { access_token: string; user: { id: string } }
  const ids: Record<string, string> = {}

  const login = async (name: string) => {
    const response = await server.request(
      "/api/v1/auth/login",
      json("POST", { email: `${name}@example.com`, password: `${name} password long` })
    )
    expect(response.status).toBe(200)
    return response.json() as { access_token: string; user: { id: string } }
  }

  beforeAll(async () => {
    server = await startServer({ BASALT_ALLOW_SIGNUP: "true" }, { emptyDatabase: true })
    for (const name of ["admin", "alice", "bob", "carol", "dave"]) {
      const response = await server.request(
        "/api/v1/auth/register",
        json("POST", { email: `${name}@example.com`, password: `${name} password long`, display_name: name })
      )
      ids[name] = response.json().id
    }
    admin = await login("admin")
  })
  afterAll(() => server.stop())

  it("lists accounts newest first, a page at a time, to the end", async () => {
    const seen: Array<string> = []
    let cursor: string | null = null
    do {
      const query: string = cursor === null ? "?limit=2" : `?limit=2&cursor=${encodeURIComponent(cursor)}`
      const page = await server.request(`/api/v1/admin/users${query}`, bearer(admin.access_token))
      expect(page.status).toBe(200)
      const body = page.json()
      expect(body.items.length).toBeLessThanOrEqual(2)
      seen.push(...body.items.map((user: { email: string }) => user.email))
      cursor = body.next_cursor
    } while (cursor !== null)
    expect(seen).toEqual(["dave", "carol", "bob", "alice", "admin"].map((name) => `${name}@example.com`))
  })

  it("searches by email, case-insensitively", async () => {
    const page = await server.request("/api/v1/admin/users?email=ALI", bearer(admin.access_token))
    expect(page.json().items.map((user: { email: string }) => user.email)).toEqual(["alice@example.com"])
  })

  it.each([
    ["a malformed cursor", "?cursor=bm90LWEtY3Vyc29y", "cursor"],
    ["a limit over 100", "?limit=101", "limit"],
    ["a limit that is not a number", "?limit=ten", "limit"]
  ])("refuses %s with 422", async (_, query, field) => {
    const page = await server.request(`/api/v1/admin/users${query}`, bearer(admin.access_token))
    expect(page.status).toBe(422)
    expect(page.json().details.map((d: { path: string }) => d.path)).toContain(field)
  })

  it("changes a role, and the new role applies at once", async () => {
    const bob = await login("bob")
    expect((await server.request("/api/v1/admin/users", bearer(bob.access_token))).status).toBe(403)
    const promoted = await server.request(`/api/v1/admin/users/${ids["bob"]}`, json("PATCH", { role: "admin" }, admin.access_token))
    expect(promoted.json().role).toBe("admin")
    expect((await server.request("/api/v1/admin/users", bearer(bob.access_token))).status).toBe(200)
  })

  it("deactivates an account: its tokens stop working and it cannot log in; reactivation restores it", async () => {
    const carol = await login("carol")
    const off = await server.request(`/api/v1/admin/users/${ids["carol"]}`, json("PATCH", { active: false }, admin.access_token))
    expect(off.json().active).toBe(false)
    expect((await server.request("/api/v1/users/me", bearer(carol.access_token))).status).toBe(401)
    const refused = await server.request(
      "/api/v1/auth/login",
      json("POST", { email: "carol@example.com", password: "carol password long" })
    )
    expect(refused.status).toBe(401)
    await server.request(`/api/v1/admin/users/${ids["carol"]}`, json("PATCH", { active: true }, admin.access_token))
    expect((await login("carol")).user.id).toBe(ids["carol"])
  })

  it("refuses to leave the system without an active admin (409)", async () => {
    const demoteBob = await server.request(`/api/v1/admin/users/${ids["bob"]}`, json("PATCH", { role: "basic" }, admin.access_token))
    expect(demoteBob.status).toBe(200)
    const self = await server.request(`/api/v1/admin/users/${ids["admin"]}`, json("PATCH", { active: false }, admin.access_token))
    expect(self.status).toBe(409)
    expect(self.json().error).toBe("conflict")
    expect((await server.request("/api/v1/users/me", bearer(admin.access_token))).json().active).toBe(true)
  })

  it("answers 404 for an unknown account and 422 for an empty change", async () => {
    const unknown = await server.request(
      "/api/v1/admin/users/7d4f1c2e-0000-4000-8000-000000000000",
      json("PATCH", { active: true }, admin.access_token)
    )
    expect(unknown.status).toBe(404)
    const empty = await server.request(`/api/v1/admin/users/${ids["dave"]}`, json("PATCH", {}, admin.access_token))
    expect(empty.status).toBe(422)
    const notUuid = await server.request("/api/v1/admin/users/42", json("PATCH", { active: true }, admin.access_token))
    expect(notUuid.status).toBe(422)
  })

  it("creates accounts with any role, refusing a taken email with 409", async () => {
    const created = await server.request(
      "/api/v1/admin/users",
      json("POST", { email: "Erin@Example.com", password: "erin password long", display_name: "Erin", role: "curator" }, admin.access_token)
    )
    expect(created.status).toBe(201)
    expect(created.json()).toMatchObject({ email: "erin@example.com", role: "curator" })
    expect((await login("erin")).user.id).toBe(created.json().id)
    const again = await server.request(
      "/api/v1/admin/users",
      json("POST", { email: "erin@example.com", password: "another long one", display_name: "E", role: "basic" }, admin.access_token)
    )
    expect(again.status).toBe(409)
  })

  it("lets a user change their own display name", async () => {
    const dave = await login("dave")
    const changed = await server.request("/api/v1/users/me", json("PATCH", { display_name: "  David " }, dave.access_token))
    expect(changed.status).toBe(200)
    expect(changed.json().display_name).toBe("David")
  })
})
