/** The audit log records who did what to whom, and admins can page and filter it. */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startServer, type TestServer } from "./support/server.ts"

const json = (method: string, body: unknown, token?: string): RequestInit => ({
  method,
  headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
  body: JSON.stringify(body)
})

describe("audit log", () => {
  let server: TestServer
  let adminToken: string
  let adminId: string
  let bobId: string
  let keyId: string

  const events = async (query = "") => {
    const response = await server.request(`/api/v1/admin/audit${query}`, { headers: { authorization: `Bearer ${adminToken}` } })
    expect(response.status).toBe(200)
    return response.json() as { items: Array<Record<string, any>>; next_cursor: string | null }
  }

  beforeAll(async () => {
    server = await startServer({ BASALT_ALLOW_SIGNUP: "true" }, { emptyDatabase: true })
    const register = (name: string) =>
      server.request(
        "/api/v1/auth/register",
        json("POST", { email: `${name}@example.com`, password: `${name} password long`, display_name: name })
      )
    adminId = (await register("admin")).json().id
    bobId = (await register("bob")).json().id
    const login = await server.request("/api/v1/auth/login", json("POST", { email: "admin@example.com", password: "admin password long" }))
    adminToken = login.json().access_token
    await server.request("/api/v1/auth/login", json("POST", { email: "bob@example.com", password: "wrong password!" }))
    await server.request(`/api/v1/admin/users/${bobId}`, json("PATCH", { role: "curator" }, adminToken))
    await server.request(`/api/v1/admin/users/${bobId}`, json("PATCH", { active: false }, adminToken))
    const key = await server.request("/api/v1/api-keys", json("POST", { name: "ci" }, adminToken))
    keyId = key.json().key.id
    await server.request(`/api/v1/api-keys/${keyId}`, { method: "DELETE", headers: { authorization: `Bearer ${adminToken}` } })
  })
  afterAll(() => server.stop())

  it("records each action, newest first, with actor, subject and what changed", async () => {
    const { items } = await events()
    expect(items.map((event) => event.action)).toEqual([
      "api_key_revoked",
      "api_key_created",
      "user_deactivated",
      "role_changed",
      "sign_in_failed",
      "sign_in_succeeded",
      "user_created",
      "user_created"
    ])
    const byAction = Object.fromEntries(items.map((event) => [event.action, event]))
    expect(byAction["role_changed"]).toMatchObject({ actor_id: adminId, subject_id: bobId, details: { from: "basic", to: "curator" } })
    expect(byAction["sign_in_failed"]).toMatchObject({ actor_id: null, subject_id: bobId, details: { email: "bob@example.com" } })
    expect(byAction["api_key_revoked"]).toMatchObject({ actor_id: adminId, subject_id: keyId })
    expect(byAction["sign_in_succeeded"].client_ip).toMatch(/127\.0\.0\.1/)
  })

  it("filters by action and by actor", async () => {
    expect((await events("?action=user_created")).items).toHaveLength(2)
    const byAdmin = await events(`?actor_id=${adminId}`)
    expect(byAdmin.items.every((event) => event.actor_id === adminId)).toBe(true)
    expect(byAdmin.items.length).toBe(6)
  })

  it("pages through everything with the cursor", async () => {
    const seen: Array<string> = []
    let cursor: string | null = null
    do {
      const page: { items: Array<Record<string, any>>; next_cursor: string | null } = await events(
        cursor === null ? "?limit=3" : `?limit=3&cursor=${cursor}`
      )
      seen.push(...page.items.map((event) => event.id))
      cursor = page.next_cursor
    } while (cursor !== null)
    expect(seen).toHaveLength(8)
    expect(new Set(seen).size).toBe(8)
  })

  it.each([
    ["a malformed cursor", "?cursor=%21%21"],
    ["an unknown action", "?action=everything"],
    ["a malformed date", "?since=yesterday"]
  ])("refuses %s with 422", async (_, query) => {
    const response = await server.request(`/api/v1/admin/audit${query}`, { headers: { authorization: `Bearer ${adminToken}` } })
    expect(response.status).toBe(422)
  })
})
