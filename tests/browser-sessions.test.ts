/**
 * Browser sessions: login with `session_cookie` sets an HttpOnly, Secure, SameSite=Lax cookie
 * and hands out a CSRF token (never a token in the body); the cookie authenticates; unsafe
 * methods it authenticates need the matching X-CSRF-Token header; logout ends it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startServer, type TestResponse, type TestServer } from "./support/server.ts"

const json = (method: string, body: unknown, headers: Record<string, string> = {}): RequestInit => ({
  method,
  headers: { "content-type": "application/json", ...headers },
  body: JSON.stringify(body)
})

/** The `Set-Cookie` lines of a response, by cookie name. */
const setCookies = (response: TestResponse) =>
  new Map(response.headers.getSetCookie().map((line) => [line.slice(0, line.indexOf("=")), line]))

const cookieValue = (line: string) => line.slice(line.indexOf("=") + 1).split(";")[0]!

interface BrowserLogin {
  readonly cookie: string
  readonly csrf: string
  readonly response: TestResponse
}

describe("browser sessions (cookie + CSRF)", () => {
  let server: TestServer
  let adminToken: string
  const password = "correct horse battery"

  const browserLogin = async (email: string): Promise<BrowserLogin> => {
    const response = await server.request("/api/v1/auth/login", json("POST", { email, password, session_cookie: true }))
    expect(response.status).toBe(200)
    const session = setCookies(response).get("basalt_session")!
    return { cookie: `basalt_session=${cookieValue(session)}`, csrf: response.json().csrf_token, response }
  }

  beforeAll(async () => {
    server = await startServer({ BASALT_ALLOW_SIGNUP: "true" }, { emptyDatabase: true })
    for (const name of ["ada", "bob", "cy"]) {
      const registered = await server.request(
        "/api/v1/auth/register",
        json("POST", { email: `${name}@example.com`, password, display_name: name })
      )
      expect(registered.status).toBe(201)
    }
    const login = await server.request("/api/v1/auth/login", json("POST", { email: "ada@example.com", password }))
    adminToken = login.json().access_token
  })
  afterAll(() => server.stop())

  it("sets HttpOnly, Secure, SameSite=Lax session cookie and a readable CSRF cookie, and no token in the body", async () => {
    const { csrf, response } = await browserLogin("bob@example.com")
    const cookies = setCookies(response)
    const session = cookies.get("basalt_session")!
    expect(session).toMatch(/; HttpOnly/)
    expect(session).toMatch(/; Secure/)
    expect(session).toMatch(/; SameSite=Lax/)
    expect(session).toMatch(/; Path=\//)
    expect(session).toMatch(/; Max-Age=\d+/)
    const csrfCookie = cookies.get("basalt_csrf")!
    expect(csrfCookie).not.toMatch(/HttpOnly/)
    expect(csrfCookie).toMatch(/; Secure/)
    expect(cookieValue(csrfCookie)).toBe(csrf)
    const body = response.json()
    // The login answer's discriminator: a BrowserSession, not a TokenPair.
    expect(body.kind).toBe("browser_session")
    expect(body.user.email).toBe("bob@example.com")
    expect(body).not.toHaveProperty("access_token")
    expect(body).not.toHaveProperty("refresh_token")
    expect(Date.parse(body.expires_at)).toBeGreaterThan(Date.now())
    expect(response.headers.get("cache-control")).toBe("no-store")
  })

  it("authenticates safe methods by the cookie alone", async () => {
    const { cookie } = await browserLogin("bob@example.com")
    const me = await server.request("/api/v1/users/me", { headers: { cookie } })
    expect(me.status).toBe(200)
    expect(me.json().email).toBe("bob@example.com")
  })

  it("refuses unsafe methods without the CSRF header, or with another session's, with 403", async () => {
    const bob = await browserLogin("bob@example.com")
    const other = await browserLogin("bob@example.com")
    for (const headers of <Array<Record<string, string>>>[
      {},
      { "x-csrf-token": "" },
      { "x-csrf-token": other.csrf },
      { "x-csrf-token": `${bob.csrf}x` }
    ]) {
      const response = await server.request(
        "/api/v1/users/me",
        json("PATCH", { display_name: "Mallory" }, { cookie: bob.cookie, ...headers })
      )
      expect(response.status).toBe(403)
      expect(response.json().error).toBe("forbidden")
      expect(response.json().message).toMatch(/x-csrf-token/)
    }
    const unchanged = await server.request("/api/v1/users/me", { headers: { cookie: bob.cookie } })
    expect(unchanged.json().display_name).toBe("bob")
  })

  it("allows unsafe methods with the matching CSRF header", async () => {
    const { cookie, csrf } = await browserLogin("cy@example.com")
    const renamed = await server.request("/api/v1/users/me", json("PATCH", { display_name: "Cy Young" }, { cookie, "x-csrf-token": csrf }))
    expect(renamed.status).toBe(200)
    expect(renamed.json().display_name).toBe("Cy Young")
    const key = await server.request("/api/v1/api-keys", json("POST", { name: "from the browser" }, { cookie, "x-csrf-token": csrf }))
    expect(key.status).toBe(201)
  })

  it("judges a request with an Authorization header by that header alone", async () => {
    const { cookie } = await browserLogin("bob@example.com")
    const response = await server.request("/api/v1/users/me", { headers: { cookie, authorization: "Bearer not-a-token" } })
    expect(response.status).toBe(401)
    expect(response.headers.get("www-authenticate")).toMatch(/^Bearer/)
  })

  it("refuses an unknown or forged cookie with 401", async () => {
    for (const cookie of ["basalt_session=bsc_forged", "basalt_session=", "basalt_session=%00%ff"]) {
      const response = await server.request("/api/v1/users/me", { headers: { cookie } })
      expect(response.status).toBe(401)
      expect(response.headers.get("www-authenticate")).toMatch(/^Bearer/)
    }
  })

  it("ends the session on logout and tells the browser to forget both cookies", async () => {
    const { cookie, csrf } = await browserLogin("bob@example.com")
    const refused = await server.request("/api/v1/auth/logout", { method: "POST", headers: { cookie } })
    expect(refused.status).toBe(403)
    const logout = await server.request("/api/v1/auth/logout", { method: "POST", headers: { cookie, "x-csrf-token": csrf } })
    expect(logout.status).toBe(204)
    const cleared = setCookies(logout)
    for (const name of ["basalt_session", "basalt_csrf"]) {
      expect(cleared.get(name)).toMatch(/Max-Age=0|Expires=Thu, 01 Jan 1970/)
    }
    const after = await server.request("/api/v1/users/me", { headers: { cookie } })
    expect(after.status).toBe(401)
  })

  it("stops a deactivated account's cookie", async () => {
    const { cookie } = await browserLogin("cy@example.com")
    const users = await server.request("/api/v1/admin/users?email=cy%40example.com", { headers: { authorization: `Bearer ${adminToken}` } })
    const cy = users.json().items[0]
    const deactivate = await server.request(
      `/api/v1/admin/users/${cy.id}`,
      json("PATCH", { active: false }, { authorization: `Bearer ${adminToken}` })
    )
    expect(deactivate.status).toBe(200)
    const after = await server.request("/api/v1/users/me", { headers: { cookie } })
    expect(after.status).toBe(401)
    await server.request(`/api/v1/admin/users/${cy.id}`, json("PATCH", { active: true }, { authorization: `Bearer ${adminToken}` }))
  })

  it("ends other cookie sessions when the password changes", async () => {
    const kept = await browserLogin("bob@example.com")
    const ended = await browserLogin("bob@example.com")
    const change = await server.request(
      "/api/v1/users/me/password",
      json("POST", { current_password: password, new_password: password }, { cookie: kept.cookie, "x-csrf-token": kept.csrf })
    )
    expect(change.status).toBe(204)
    expect((await server.request("/api/v1/users/me", { headers: { cookie: ended.cookie } })).status).toBe(401)
    expect((await server.request("/api/v1/users/me", { headers: { cookie: kept.cookie } })).status).toBe(200)
  })
})
