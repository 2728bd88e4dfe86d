/**
 * Accounts and sessions through the API: registration (first account admin, sign-up closed by
 * default), login, the access token's checks, refresh-token rotation and replay, logout.
 */
import { SignJWT, UnsecuredJWT } from "jose"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { contract } from "./support/contract.ts"
import { startServer, type TestServer } from "./support/server.ts"

const secret = "test-secret-of-at-least-thirty-two-characters"
const key = new TextEncoder().encode(secret)
const json = (body: unknown): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body)
})
const bearer = (token: string): RequestInit => ({ headers: { authorization: `Bearer ${token}` } })

describe("accounts, sign-up closed (the default)", () => {
  let server: TestServer
  let admin: { id: string }
  const password = "correct horse battery"

  beforeAll(async () => {
    server = await startServer({ BASALT_JWT_SECRET: secret }, { emptyDatabase: true })
    const response = await server.request("/api/v1/auth/register", json({ email: "Ada@Example.COM", password, display_name: " Ada " }))
    expect(response.status).toBe(201)
    admin = response.json()
  })
  afterAll(() => server.stop())

  const login = async () => {
    const response = await server.request("/api/v1/auth/login", json({ email: "ada@example.com", password }))
    expect(response.status).toBe(200)
    return response.json()
  }

  it("makes the first account an admin, with its email normalised", () => {
    expect(admin).toMatchObject({ email: "ada@example.com", display_name: "Ada", role: "admin", active: true })
  })

  it("refuses a second self sign-up with 403", async () => {
    const response = await server.request(
      "/api/v1/auth/register",
      json({ email: "bob@example.com", password: "long enough pw", display_name: "Bob" })
    )
    expect(response.status).toBe(403)
    expect(response.json().error).toBe("forbidden")
  })

  it.each([
    ["a short password", { email: "c@example.com", password: "short", display_name: "C" }, "password"],
    ["a bad email", { email: "not-an-email", password: "long enough pw", display_name: "C" }, "email"],
    // The contract's `format: email` has no surrounding spaces: the server takes no more than it.
    ["an email with spaces around it", { email: " c@example.com ", password: "long enough pw", display_name: "C" }, "email"],
    ["an unknown field", { email: "c@example.com", password: "long enough pw", display_name: "C", role: "admin" }, "role"]
  ])("refuses %s with 422 naming the field", async (_, body, field) => {
    const response = await server.request("/api/v1/auth/register", json(body))
    expect(response.status).toBe(422)
    expect(response.json().details.map((d: { path: string }) => d.path)).toContain(field)
  })

  it("logs in, and the access token identifies the account", async () => {
    const tokens = await login()
    expect(tokens).toMatchObject({ kind: "token_pair", token_type: "Bearer", expires_in: 900, user: { id: admin.id, role: "admin" } })
    expect(tokens.refresh_token).toMatch(/^bsr_/)
    const me = await server.request("/api/v1/users/me", bearer(tokens.access_token))
    expect(me.status).toBe(200)
    expect(me.json()).toEqual(admin)
  })

  it("answers a wrong password and an unknown email with the same 401", async () => {
    const wrong = await server.request("/api/v1/auth/login", json({ email: "ada@example.com", password: "wrong password" }))
    const unknown = await server.request("/api/v1/auth/login", json({ email: "nobody@example.com", password }))
    for (const response of [wrong, unknown]) {
      expect(response.status).toBe(401)
      expect(response.headers.get("www-authenticate")).toBe('Bearer realm="basalt"')
    }
    const { request_id: _a, ...wrongBody } = wrong.json()
    const { request_id: _b, ...unknownBody } = unknown.json()
    expect(wrongBody).toEqual(unknownBody)
  })

  describe("refuses /users/me with 401 for", () => {
    const claims = async () => {
      const tokens = await login()
      const [, payload] = tokens.access_token.split(".")
      return JSON.parse(Buffer.from(payload, "base64url").toString()) as { sub: string; sid: string }
    }
    const signed = (payload: Record<string, unknown>, signingKey: Uint8Array, expires: string | number = "5m") =>
      new SignJWT(payload)
        .setProtectedHeader({ alg: "HS256" })
        .setIssuer("basalt")
        .setAudience("basalt")
        .setIssuedAt()
        .setExpirationTime(expires)
        .sign(signingKey)

    it.each([
      ["no credentials", async () => undefined],
      ["a malformed token", async () => "not.a.jwt"],
      ["an expired token", async () => signed(await claims(), key, Math.floor(Date.now() / 1000) - 60)],
      ["a token signed by another key", async () => signed(await claims(), new TextEncoder().encode("x".repeat(40)))],
      [
        "a token signed with the key whose subject and session are not UUIDs",
        async () => signed({ sub: "' OR 1=1 --", sid: "not-a-uuid" }, key)
      ],
      [
        "an unsigned token (alg none)",
        async () => {
          const { sid, sub } = await claims()
          return new UnsecuredJWT({ sid }).setSubject(sub).setIssuer("basalt").setAudience("basalt").setExpirationTime("5m").encode()
        }
      ]
    ])("%s", async (_, token) => {
      const value = await token()
      const response = await server.request("/api/v1/users/me", value === undefined ? {} : bearer(value))
      expect(response.status).toBe(401)
      expect(response.json().error).toBe("unauthorized")
      expect(response.headers.get("www-authenticate")).toMatch(/^Bearer/)
    })

    it("a correctly signed token of a session that does not exist", async () => {
      const { sub } = await claims()
      const token = await signed({ sub, sid: crypto.randomUUID() }, key)
      expect((await server.request("/api/v1/users/me", bearer(token))).status).toBe(401)
    })
  })

  it("rotates the refresh token, and a replayed one revokes the session", async () => {
    const first = await login()
    const rotated = await server.request("/api/v1/auth/refresh", json({ refresh_token: first.refresh_token }))
    expect(rotated.status).toBe(200)
    const second = rotated.json()
    expect(second.refresh_token).not.toBe(first.refresh_token)
    expect((await server.request("/api/v1/users/me", bearer(second.access_token))).status).toBe(200)

    const replay = await server.request("/api/v1/auth/refresh", json({ refresh_token: first.refresh_token }))
    expect(replay.status).toBe(401)
    expect(replay.json().message).toMatch(/already used; the session has been revoked/)
    // The whole session is gone: the newest refresh token and the access token too.
    expect((await server.request("/api/v1/auth/refresh", json({ refresh_token: second.refresh_token }))).status).toBe(401)
    expect((await server.request("/api/v1/users/me", bearer(second.access_token))).status).toBe(401)
  })

  it("logout ends the session: its access and refresh tokens stop working", async () => {
    const tokens = await login()
    const logout = await server.request("/api/v1/auth/logout", { method: "POST", ...bearer(tokens.access_token) })
    expect(logout.status).toBe(204)
    expect((await server.request("/api/v1/users/me", bearer(tokens.access_token))).status).toBe(401)
    expect((await server.request("/api/v1/auth/refresh", json({ refresh_token: tokens.refresh_token }))).status).toBe(401)
    // Another session of the same account is untouched.
    const other = await login()
    expect((await server.request("/api/v1/users/me", bearer(other.access_token))).status).toBe(200)
  })

  describe("the OAuth2 password grant (form-encoded)", () => {
    const form = (fields: Record<string, string>): RequestInit => ({
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(fields).toString()
    })

    it("issues tokens that work, marked not to be cached, ignoring fields it does not use", async () => {
      const response = await server.request(
        "/api/v1/auth/token",
        form({ grant_type: "password", username: "ada@example.com", password, scope: "", client_id: "swagger" })
      )
      expect(response.status).toBe(200)
      expect(response.headers.get("cache-control")).toBe("no-store")
      const token = response.json()
      // The same value as the login's TokenPair (RFC 6750's spelling).
      expect(token.token_type).toBe("Bearer")
      expect((await server.request("/api/v1/users/me", bearer(token.access_token))).json().email).toBe("ada@example.com")
    })

    it("ignores the empty client credentials Swagger UI sends in an Authorization header", async () => {
      const response = await server.request("/api/v1/auth/token", {
        ...form({ grant_type: "password", username: "ada@example.com", password }),
        headers: { "content-type": "application/x-www-form-urlencoded", authorization: `Basic ${btoa(":")}` }
      })
      expect(response.status).toBe(200)
    })

    it("takes the refresh grant at the contract's refreshUrl (RFC 6749 section 6), rotating the refresh token", async () => {
      const { flows } = contract.components.securitySchemes.oauth2Password
      expect(flows.password.refreshUrl).toBe("/api/v1/auth/token")
      const first = (
        await server.request("/api/v1/auth/token", form({ grant_type: "password", username: "ada@example.com", password }))
      ).json()
      const refreshed = await server.request(
        flows.password.refreshUrl,
        form({ grant_type: "refresh_token", refresh_token: first.refresh_token })
      )
      expect(refreshed.status).toBe(200)
      expect(refreshed.headers.get("cache-control")).toBe("no-store")
      const second = refreshed.json()
      expect(second).toMatchObject({ token_type: "Bearer", expires_in: 900 })
      expect(second.refresh_token).not.toBe(first.refresh_token)
      expect((await server.request("/api/v1/users/me", bearer(second.access_token))).json().email).toBe("ada@example.com")
      // The presented token is spent: presenting it again is invalid_grant, and revokes the session.
      const replay = await server.request("/api/v1/auth/token", form({ grant_type: "refresh_token", refresh_token: first.refresh_token }))
      expect(replay.status).toBe(400)
      expect(replay.json()).toMatchObject({ error: "invalid_grant", message: expect.stringMatching(/already used/) })
      expect((await server.request("/api/v1/users/me", bearer(second.access_token))).status).toBe(401)
      const unknown = await server.request("/api/v1/auth/token", form({ grant_type: "refresh_token", refresh_token: "bsr_unknown" }))
      expect(unknown.status).toBe(400)
      expect(unknown.json().error).toBe("invalid_grant")
      const missing = await server.request("/api/v1/auth/token", form({ grant_type: "refresh_token" }))
      expect(missing.status).toBe(422)
      expect(missing.json().details.map((detail: { path: string }) => detail.path)).toEqual(["refresh_token"])
    })

    it("answers wrong credentials with 400 invalid_grant, another grant with 400 unsupported_grant_type", async () => {
      const wrong = await server.request(
        "/api/v1/auth/token",
        form({ grant_type: "password", username: "ada@example.com", password: "nope nope" })
      )
      expect(wrong.status).toBe(400)
      expect(wrong.json().error).toBe("invalid_grant")
      const other = await server.request("/api/v1/auth/token", form({ grant_type: "client_credentials", username: "x", password: "y" }))
      expect(other.status).toBe(400)
      expect(other.json().error).toBe("unsupported_grant_type")
    })

    it("takes only a form: JSON is 415, a missing field 422", async () => {
      const asJson = await server.request("/api/v1/auth/token", json({ grant_type: "password", username: "ada@example.com", password }))
      expect(asJson.status).toBe(415)
      const missing = await server.request("/api/v1/auth/token", form({ grant_type: "password", username: "ada@example.com" }))
      expect(missing.status).toBe(422)
      expect(missing.json().details[0].path).toBe("password")
    })

    it("ignores the fields OAuth2 tools add that no grant knows, whatever the grant", async () => {
      const extras = { scope: "openid", client_id: "tool", audience: "basalt", resource: "https://example.com" }
      const issued = await server.request(
        "/api/v1/auth/token",
        form({ grant_type: "password", username: "ada@example.com", password, ...extras })
      )
      expect(issued.status).toBe(200)
      const refreshed = await server.request(
        "/api/v1/auth/token",
        form({ grant_type: "refresh_token", refresh_token: issued.json().refresh_token, username: "ignored", ...extras })
      )
      expect(refreshed.status).toBe(200)
      const unsupported = await server.request("/api/v1/auth/token", form({ grant_type: "", ...extras }))
      expect(unsupported.status).toBe(400)
      expect(unsupported.json().error).toBe("unsupported_grant_type")
    })
  })

  it("changes the password: the old one stops working and other sessions end, this one stays", async () => {
    const other = await login()
    const current = await login()
    const change = (body: unknown) =>
      server.request("/api/v1/users/me/password", {
        ...json(body),
        headers: { "content-type": "application/json", authorization: `Bearer ${current.access_token}` }
      })
    expect((await change({ current_password: "not it at all", new_password: "a brand new passphrase" })).status).toBe(403)
    expect((await change({ current_password: password, new_password: "a brand new passphrase" })).status).toBe(204)
    expect((await server.request("/api/v1/users/me", bearer(current.access_token))).status).toBe(200)
    expect((await server.request("/api/v1/users/me", bearer(other.access_token))).status).toBe(401)
    expect((await server.request("/api/v1/auth/refresh", json({ refresh_token: other.refresh_token }))).status).toBe(401)
    expect((await server.request("/api/v1/auth/login", json({ email: "ada@example.com", password }))).status).toBe(401)
    // Put it back for the other tests of this server.
    expect((await change({ current_password: "a brand new passphrase", new_password: password })).status).toBe(204)
  })

  it("refuses an unknown refresh token with 401", async () => {
    const response = await server.request("/api/v1/auth/refresh", json({ refresh_token: "bsr_unknown" }))
    expect(response.status).toBe(401)
  })
})

describe("accounts, sign-up open", () => {
  let server: TestServer
  beforeAll(async () => {
    server = await startServer({ BASALT_ALLOW_SIGNUP: "true" }, { emptyDatabase: true })
  })
  afterAll(() => server.stop())

  it("makes later accounts basic, and refuses a taken email in any case with 409", async () => {
    const register = (email: string) =>
      server.request("/api/v1/auth/register", json({ email, password: "long enough pw", display_name: "Someone" }))
    expect((await register("first@example.com")).json().role).toBe("admin")
    const second = await register("second@example.com")
    expect(second.status).toBe(201)
    expect(second.json().role).toBe("basic")
    const taken = await register("SECOND@example.com")
    expect(taken.status).toBe(409)
    expect(taken.json().error).toBe("conflict")
  })

  it("signs with a generated key kept in the database when none is configured", async () => {
    const login = await server.request("/api/v1/auth/login", json({ email: "second@example.com", password: "long enough pw" }))
    expect(login.status).toBe(200)
    const me = await server.request("/api/v1/users/me", bearer(login.json().access_token))
    expect(me.json().email).toBe("second@example.com")
  })
})
