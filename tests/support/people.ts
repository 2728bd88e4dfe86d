/** Accounts for tests that need several people: the first to sign up is the admin. */
import type { TestServer } from "./server.ts"

/** Whatever answers requests: an in-process server, or a server process of a cluster. */
type Requester = Pick<TestServer, "request">

export interface Person {
  readonly id: string
  readonly token: string
  /** Headers for a JSON request as this person. */
  readonly json: (method: string, body?: unknown) => RequestInit
  readonly get: (path: string) => ReturnType<TestServer["request"]>
}

export const person = (server: Requester, id: string, token: string): Person => ({
  id,
  token,
  json: (method, body) => ({
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  }),
  get: (path) => server.request(path, { headers: { authorization: `Bearer ${token}` } })
})

/** Registers (self sign-up must be on) and logs in. */
export const signUp = async (server: Requester, name: string): Promise<Person> => {
  const credentials = { email: `${name}@example.com`, password: `${name} password long` }
  const registered = await server.request("/api/v1/auth/register", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ ...credentials, display_name: name })
  })
  if (registered.status !== 201) throw new Error(`sign-up of ${name}: ${registered.status} ${registered.text}`)
  const login = await server.request("/api/v1/auth/login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(credentials)
  })
  const session = login.json() as { access_token: string; user: { id: string } }
  return person(server, session.user.id, session.access_token)
}

/** Signs up `name` and has `admin` give them `role`. */
export const signUpAs = async (server: Requester, admin: Person, name: string, role: "curator" | "admin") => {
  const someone = await signUp(server, name)
  const changed = await server.request(`/api/v1/admin/users/${someone.id}`, admin.json("PATCH", { role }))
  if (changed.status !== 200) throw new Error(`role of ${name}: ${changed.status} ${changed.text}`)
  return someone
}

/** The document once background indexing has finished with it (indexed or failed). */
export const settled = async (someone: Person, documentId: string, timeoutMs = 30_000) => {
  const deadline = Date.now() + timeoutMs
  while (true) {
    const document = (await someone.get(`/api/v1/documents/${documentId}`)).json()
    if (document.status === "indexed" || document.status === "failed") return document
    if (Date.now() > deadline) throw new Error(`document ${documentId} still ${document.status} after ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
