/**
 * Every protected operation of openapi.yaml (not a hand-written list) against every way of
 * failing to be allowed: each gets its 401 (with WWW-Authenticate) or 403, never a 2xx. An
 * operation is protected when its `security` names a scheme; admin operations carry the tag
 * `admin`.
 */
import { SignJWT, UnsecuredJWT } from "jose"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { contract } from "./support/contract.ts"
import { receive, startServer, type TestServer } from "./support/server.ts"

const secret = "matrix-secret-of-at-least-thirty-two-chars"
const key = new TextEncoder().encode(secret)

type Json = Record<string, any>

const protectedOperations = Object.entries<Json>(contract.paths).flatMap(([path, item]) =>
  (["get", "post", "put", "patch", "delete"] as const)
    .filter((method) => item[method]?.security?.some((requirement: Json) => Object.keys(requirement).length > 0))
    .map((method) => ({
      id: String(item[method].operationId),
      method: method.toUpperCase(),
      // Any well-formed value: authorization is decided before the resource is looked up.
      path: path.replace(/\{[^}]+\}/g, "00000000-0000-4000-8000-000000000000"),
      hasBody: item[method].requestBody !== undefined,
      bodyType: Object.keys(item[method].requestBody?.content ?? {})[0] as string | undefined,
      // A stream that stays open (server-sent events): judged by its status and headers alone.
      streams: item[method].responses?.["200"]?.content?.["text/event-stream"] !== undefined,
      // Its path names a resource; here one that does not exist.
      namesResource: /\{[^}]+\}/.test(path),
      // A WebSocket route: let in, a plain request is told to upgrade (426).
      upgrades: item[method].responses?.["101"] !== undefined,
      adminOnly: (item[method].tags ?? []).includes("admin")
    }))
)

const json = (body: unknown): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body)
})

/**
 * The status and headers of an operation that streams, validated against the contract; the
 * stream is then closed. An error is an ordinary response and is read whole.
 */
const streamOpening = async (server: TestServer, path: string, init: RequestInit) => {
  const abort = new AbortController()
  const response = await fetch(`${server.url}${path}`, { ...init, signal: abort.signal })
  if (response.status !== 200) return receive(init.method ?? "GET", path, response)
  expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/)
  abort.abort()
  return { status: response.status, headers: response.headers, text: "", json: () => undefined }
}

describe("authorization matrix", () => {
  let server: TestServer
  const tokens: Record<string, string> = {}
  // A fresh session per use: the matrix includes logout, which ends the session it is called with.
  let basicSession: () => Promise<string>
  let basicKey: string
  const cookies: Record<string, string> = {}
  let adminBrowser: { cookie: string; csrf: string }

  beforeAll(async () => {
    server = await startServer({ BASALT_JWT_SECRET: secret, BASALT_ALLOW_SIGNUP: "true" }, { emptyDatabase: true })
    const login = async (name: string) => {
      const response = await server.request("/api/v1/auth/login", json({ email: `${name}@example.com`, password: `${name} password long` }))
      return response.json() as { access_token: string; user: { id: string } }
    }
    const signUp = async (name: string) => {
      const registered = await server.request(
        "/api/v1/auth/register",
        json({ email: `${name}@example.com`, password: `${name} password long`, display_name: name })
      )
      expect(registered.status).toBe(201)
      return login(name)
    }
    const admin = await signUp("admin")
    const basic = await signUp("basic")
    const deactivated = await signUp("deactivated")
    const deactivate = await server.request(`/api/v1/admin/users/${deactivated.user.id}`, {
      method: "PATCH",
      headers: { "content-type": "application/json", authorization: `Bearer ${admin.access_token}` },
      body: JSON.stringify({ active: false })
    })
    expect(deactivate.status).toBe(200)
    const [, payload] = basic.access_token.split(".")
    const claims = JSON.parse(Buffer.from(payload!, "base64url").toString()) as { sub: string; sid: string }
    const sign = (signingKey: Uint8Array, expires: number | string) =>
      new SignJWT({ sid: claims.sid })
        .setProtectedHeader({ alg: "HS256" })
        .setSubject(claims.sub)
        .setIssuer("basalt")
        .setAudience("basalt")
        .setExpirationTime(expires)
        .sign(signingKey)
    tokens["malformed token"] = "not-a-jwt"
    tokens["expired token"] = await sign(key, Math.floor(Date.now() / 1000) - 60)
    tokens["token signed by another key"] = await sign(new TextEncoder().encode("y".repeat(40)), "5m")
    tokens["alg none"] = new UnsecuredJWT({ sid: claims.sid })
      .setSubject(claims.sub)
      .setIssuer("basalt")
      .setAudience("basalt")
      .setExpirationTime("5m")
      .encode()
    tokens["token of a deactivated user"] = deactivated.access_token
    basicSession = () => login("basic").then((session) => session.access_token)
    const created = await server.request("/api/v1/api-keys", {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${admin.access_token}` },
      body: JSON.stringify({ name: "to revoke" })
    })
    const { key: revokedKey, secret: apiKey } = created.json()
    const revoked = await server.request(`/api/v1/api-keys/${revokedKey.id}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${admin.access_token}` }
    })
    expect(revoked.status).toBe(204)
    tokens["revoked API key"] = apiKey
    tokens["unknown API key"] = "bsk_not-a-key-this-server-issued"
    // An API key limited to the basic role, made by an admin: it must not act above it.
    const limited = await server.request("/api/v1/api-keys", {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${admin.access_token}` },
      body: JSON.stringify({ name: "basic only", role: "basic" })
    })
    basicKey = limited.json().secret
    const browserLogin = async (name: string) => {
      const response = await server.request(
        "/api/v1/auth/login",
        json({ email: `${name}@example.com`, password: `${name} password long`, session_cookie: true })
      )
      const line = response.headers.getSetCookie().find((cookie) => cookie.startsWith("basalt_session="))!
      return { cookie: line.split(";")[0]!, csrf: response.json().csrf_token as string }
    }
    adminBrowser = await browserLogin("admin")
    const loggedOut = await browserLogin("basic")
    const logout = await server.request("/api/v1/auth/logout", {
      method: "POST",
      headers: { cookie: loggedOut.cookie, "x-csrf-token": loggedOut.csrf }
    })
    expect(logout.status).toBe(204)
    cookies["session cookie of a logged-out session"] = loggedOut.cookie
    cookies["forged session cookie"] = "basalt_session=bsc_forged-by-the-caller"
  })
  afterAll(() => server.stop())

  it("covers the protected operations of the contract", () => {
    expect(protectedOperations.map((op) => op.id)).toEqual(
      expect.arrayContaining([
        "logout",
        "getCurrentUser",
        "updateCurrentUser",
        "listUsers",
        "updateUser",
        "createUser",
        "changePassword",
        "listAuditEvents",
        "createApiKey",
        "listApiKeys",
        "revokeApiKey",
        "createDocument",
        "createDocumentsBatch",
        "uploadDocuments",
        "listDocuments",
        "getIndexingProgress",
        "documentEvents",
        "getDocument",
        "updateDocument",
        "deleteDocument",
        "listDocumentChunks",
        "createCollection",
        "listCollections",
        "getCollection",
        "updateCollection",
        "deleteCollection",
        "listCollectionMembers",
        "setCollectionMember",
        "removeCollectionMember",
        "addCollectionDocument",
        "removeCollectionDocument"
      ])
    )
  })

  const cases = [
    "no credentials",
    "malformed token",
    "expired token",
    "token signed by another key",
    "alg none",
    "token of a deactivated user",
    "revoked API key",
    "unknown API key",
    "basic role",
    "basic-role API key of an admin",
    "forged session cookie",
    "session cookie of a logged-out session",
    "admin's session cookie without the CSRF header"
  ] as const

  describe.each(protectedOperations)("$method $path ($id)", (op) => {
    it.each(cases)("%s", async (credentials) => {
      // A body of the operation's own type, so that the body check (415) cannot answer first.
      const multipart = op.bodyType === "multipart/form-data"
      const headers: Record<string, string> = op.hasBody && !multipart ? { "content-type": "application/json" } : {}
      const token =
        credentials === "basic role"
          ? await basicSession()
          : credentials === "basic-role API key of an admin"
            ? basicKey
            : tokens[credentials]
      if (token !== undefined) headers["authorization"] = `Bearer ${token}`
      const cookie = credentials === "admin's session cookie without the CSRF header" ? adminBrowser.cookie : cookies[credentials]
      if (cookie !== undefined) headers["cookie"] = cookie
      const form = new FormData()
      form.append("files", new Blob(["a few words"], { type: "text/plain" }), "matrix.txt")
      const init: RequestInit = { method: op.method, headers, ...(op.hasBody ? { body: multipart ? form : "{}" } : {}) }
      const response = op.streams ? await streamOpening(server, op.path, init) : await server.request(op.path, init)
      if (credentials === "basic role" || credentials === "basic-role API key of an admin") {
        // A basic user may use what is not admin-only: let in (whatever the empty body then gets).
        if (!op.adminOnly) return expect([401, 403, 500]).not.toContain(response.status)
        expect(response.status).toBe(403)
        return
      }
      if (credentials === "admin's session cookie without the CSRF header") {
        // Reading needs no CSRF token; anything that changes state does.
        if (op.method === "GET") return expect(response.status).toBe(op.upgrades ? 426 : op.namesResource ? 404 : 200)
        expect(response.status).toBe(403)
        expect(response.json().message).toMatch(/x-csrf-token/)
        return
      }
      expect(response.status).toBe(401)
      expect(response.headers.get("www-authenticate")).toMatch(/^Bearer /)
      expect(response.json().error).toBe("unauthorized")
    })
  })
})

/**
 * Who sees which document, everywhere a document can be reached: another user's private
 * document is 404 on every operation and absent from lists; a shared collection, being public,
 * or being an admin makes it visible; an admin's API key limited to the basic role acts basic.
 */
describe("document visibility matrix", () => {
  let server: TestServer
  const tokens: Record<"admin" | "owner" | "other" | "member" | "curator" | "adminBasicKey", string> = {} as never
  let privateId: string
  let sharedId: string
  let publicId: string
  let othersCollection: string

  const as = (who: keyof typeof tokens, method = "GET", body?: unknown): RequestInit => ({
    method,
    headers: { authorization: `Bearer ${tokens[who]}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  })
  const listedIds = async (who: keyof typeof tokens) => {
    const page = (await server.request("/api/v1/documents?limit=100", as(who))).json()
    return { ids: page.items.map((d: { id: string }) => d.id) as Array<string>, total: page.total as number }
  }

  beforeAll(async () => {
    server = await startServer({ BASALT_ALLOW_SIGNUP: "true" }, { emptyDatabase: true })
    const ids: Record<string, string> = {}
    for (const name of ["admin", "owner", "other", "member", "curator"] as const) {
      await server.request(
        "/api/v1/auth/register",
        json({ email: `${name}@example.com`, password: `${name} password long`, display_name: name })
      )
      const session = (
        await server.request("/api/v1/auth/login", json({ email: `${name}@example.com`, password: `${name} password long` }))
      ).json()
      tokens[name] = session.access_token
      ids[name] = session.user.id
    }
    expect((await server.request(`/api/v1/admin/users/${ids.curator}`, as("admin", "PATCH", { role: "curator" }))).status).toBe(200)
    tokens.adminBasicKey = (await server.request("/api/v1/api-keys", as("admin", "POST", { name: "basic", role: "basic" }))).json().secret
    const create = async (who: keyof typeof tokens, body: Record<string, unknown>) => {
      const response = await server.request("/api/v1/documents", as(who, "POST", { content: "Some text", source: "api", ...body }))
      expect(response.status).toBe(202)
      return response.json().id as string
    }
    privateId = await create("owner", { title: "Private" })
    const shared = (await server.request("/api/v1/collections", as("owner", "POST", { name: "Shared" }))).json()
    expect(
      (await server.request(`/api/v1/collections/${shared.id}/members/${ids.member}`, as("owner", "PUT", { role: "viewer" }))).status
    ).toBe(200)
    sharedId = await create("owner", { title: "Shared", collection_ids: [shared.id] })
    publicId = await create("curator", { title: "Public", visibility: "public" })
    othersCollection = (await server.request("/api/v1/collections", as("other", "POST", { name: "Other's" }))).json().id
  })
  afterAll(() => server.stop())

  it.each([
    ["GET", "", undefined],
    ["GET", "/chunks", undefined],
    ["PATCH", "", { tags: ["mine"] }],
    ["DELETE", "", undefined]
  ] as const)("another user's private document: %s %s is 404", async (method, suffix, body) => {
    for (const who of ["other", "member", "curator", "adminBasicKey"] as const) {
      const response = await server.request(`/api/v1/documents/${privateId}${suffix}`, as(who, method, body))
      expect(response.status, who).toBe(404)
    }
  })

  it("another user's private document cannot be added to a collection (404)", async () => {
    const response = await server.request(`/api/v1/collections/${othersCollection}/documents/${privateId}`, as("other", "POST"))
    expect(response.status).toBe(404)
  })

  it("lists hold exactly what each caller may see", async () => {
    const expected: Record<string, Array<string>> = {
      owner: [privateId, sharedId, publicId],
      other: [publicId],
      member: [sharedId, publicId],
      curator: [publicId],
      adminBasicKey: [publicId],
      admin: [privateId, sharedId, publicId]
    }
    for (const [who, ids] of Object.entries(expected)) {
      const listed = await listedIds(who as keyof typeof tokens)
      expect(listed.ids.sort(), who).toEqual([...ids].sort())
      expect(listed.total, who).toBe(ids.length)
    }
  })

  it("a shared collection's members, everyone for a public document, and admins can read", async () => {
    const readers: Array<[keyof typeof tokens, string]> = [
      ["member", sharedId],
      ["other", publicId],
      ["adminBasicKey", publicId],
      ["admin", privateId],
      ["admin", sharedId]
    ]
    for (const [who, id] of readers) {
      expect((await server.request(`/api/v1/documents/${id}`, as(who))).status, `${who} ${id}`).toBe(200)
      expect((await server.request(`/api/v1/documents/${id}/chunks`, as(who))).status, `${who} ${id}`).toBe(200)
    }
    // Reading is not changing: a viewer of the collection, and anyone for a public document, get 403.
    expect((await server.request(`/api/v1/documents/${sharedId}`, as("member", "PATCH", { tags: ["x"] }))).status).toBe(403)
    expect((await server.request(`/api/v1/documents/${publicId}`, as("other", "DELETE"))).status).toBe(403)
  })

  it("an admin's API key limited to basic can do only what a basic user can", async () => {
    const publish = { title: "Announcement", content: "Hello", source: "api", visibility: "public" }
    expect((await server.request("/api/v1/documents", as("adminBasicKey", "POST", publish))).status).toBe(403)
    expect((await server.request("/api/v1/documents", as("other", "POST", publish))).status).toBe(403)
    expect((await server.request(`/api/v1/documents/${privateId}`, as("adminBasicKey", "PATCH", { tags: ["x"] }))).status).toBe(404)
    expect((await server.request(`/api/v1/documents/${privateId}`, as("admin", "PATCH", { tags: ["checked"] }))).status).toBe(200)
    expect((await server.request("/api/v1/documents", as("admin", "POST", publish))).status).toBe(202)
  })
})
