/** API keys: shown once, stored hashed, capped at the creator's role, revocable, owner-only. */
import { createHash } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { postgresQuery, startServer, type TestServer } from "./support/server.ts"

const request = (method: string, token: string, body?: unknown): RequestInit => ({
  method,
  headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
  ...(body === undefined ? {} : { body: JSON.stringify(body) })
})

describe("API keys", () => {
  let server: TestServer
  let admin: string
  let basic: string

  beforeAll(async () => {
    server = await startServer({ BASALT_ALLOW_SIGNUP: "true" }, { emptyDatabase: true })
    const signUp = async (name: string) => {
      const credentials = { email: `${name}@example.com`, password: `${name} password long` }
      await server.request("/api/v1/auth/register", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ ...credentials, display_name: name })
      })
      const login = await server.request("/api/v1/auth/login", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(credentials)
      })
      return login.json().access_token as string
    }
    admin = await signUp("admin")
    basic = await signUp("basic")
  })
  afterAll(() => server.stop())

  it("creates a key whose secret is shown once, and which then authenticates", async () => {
    const created = await server.request("/api/v1/api-keys", request("POST", basic, { name: "  sync job " }))
    expect(created.status).toBe(201)
    const { key, secret } = created.json()
    expect(secret).toMatch(/^bsk_[A-Za-z0-9_-]{43}$/)
    expect(key).toMatchObject({ name: "sync job", role: "basic", prefix: secret.slice(0, 12), expires_at: null, last_used_at: null })
    const me = await server.request("/api/v1/users/me", { headers: { authorization: `Bearer ${secret}` } })
    expect(me.status).toBe(200)
    expect(me.json().email).toBe("basic@example.com")
    const listed = await server.request("/api/v1/api-keys", request("GET", basic))
    const [listedKey] = listed.json().items
    expect(listedKey.id).toBe(key.id)
    expect(listedKey.last_used_at).not.toBeNull()
    expect(JSON.stringify(listed.json())).not.toContain(secret)
  })

  // PGlite is reachable only from inside the server; the Postgres run looks at the table itself.
  it.runIf(process.env.DATABASE_URL !== undefined)("keeps only a hash of the secret", async () => {
    const { key, secret } = (await server.request("/api/v1/api-keys", request("POST", basic, { name: "hashed" }))).json()
    const rows = await postgresQuery<{ row: string; secret_hash: string }>(
      server.databaseUrl!,
      "SELECT to_jsonb(k)::text AS row, secret_hash FROM api_keys k WHERE id = $1",
      [key.id]
    )
    expect(rows).toHaveLength(1)
    expect(rows[0]!.row).not.toContain(secret)
    expect(rows[0]!.secret_hash).toBe(createHash("sha256").update(secret).digest("base64url"))
  })

  it("refuses a role above the creator's with 403, and an expiry in the past with 422", async () => {
    const above = await server.request("/api/v1/api-keys", request("POST", basic, { name: "escalate", role: "admin" }))
    expect(above.status).toBe(403)
    const past = await server.request("/api/v1/api-keys", request("POST", basic, { name: "old", expires_at: "2020-01-01T00:00:00Z" }))
    expect(past.status).toBe(422)
    expect(past.json().details[0].path).toBe("expires_at")
  })

  it("refuses null for an optional field and a name of only whitespace, naming the field", async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ name: "x", expires_at: null }, "expires_at"],
      [{ name: "x", role: null }, "role"],
      [{ name: "\ufeff\u00a0" }, "name"]
    ]
    for (const [body, path] of cases) {
      const response = await server.request("/api/v1/api-keys", request("POST", basic, body))
      expect(response.status, JSON.stringify(body)).toBe(422)
      expect(response.json().details.map((d: { path: string }) => d.path)).toEqual([path])
    }
  })

  it("acts with the key's role, not its creator's", async () => {
    const { secret } = (await server.request("/api/v1/api-keys", request("POST", admin, { name: "read-only", role: "basic" }))).json()
    expect((await server.request("/api/v1/admin/users", { headers: { authorization: `Bearer ${secret}` } })).status).toBe(403)
    const { secret: adminKey } = (await server.request("/api/v1/api-keys", request("POST", admin, { name: "ops" }))).json()
    expect((await server.request("/api/v1/admin/users", { headers: { authorization: `Bearer ${adminKey}` } })).status).toBe(200)
  })

  it("stops working once revoked; a second revoke, or another user's key, is 404", async () => {
    const { key, secret } = (await server.request("/api/v1/api-keys", request("POST", basic, { name: "temp" }))).json()
    expect((await server.request(`/api/v1/api-keys/${key.id}`, request("DELETE", admin))).status).toBe(404)
    expect((await server.request(`/api/v1/api-keys/${key.id}`, request("DELETE", basic))).status).toBe(204)
    expect((await server.request(`/api/v1/api-keys/${key.id}`, request("DELETE", basic))).status).toBe(404)
    expect((await server.request("/api/v1/users/me", { headers: { authorization: `Bearer ${secret}` } })).status).toBe(401)
  })

  it("stops working when the key has expired", async () => {
    const soon = new Date(Date.now() + 1500).toISOString()
    const { secret } = (await server.request("/api/v1/api-keys", request("POST", basic, { name: "short", expires_at: soon }))).json()
    expect((await server.request("/api/v1/users/me", { headers: { authorization: `Bearer ${secret}` } })).status).toBe(200)
    // Past the expiry and past the two seconds a caller is remembered (CallerCache).
    await new Promise((resolve) => setTimeout(resolve, 3600))
    expect((await server.request("/api/v1/users/me", { headers: { authorization: `Bearer ${secret}` } })).status).toBe(401)
  })
})
