/**
 * The 403 and 422 examples of openapi.yaml are what each operation answers: every example is
 * provoked here on its own operation and must equal the answer (all but the request id). An
 * operation that cannot answer 403 (a read: a document or collection the caller may not see is
 * 404) shows no 403 example. Single sign-on's callback needs a provider: its examples are checked
 * as messages the code writes.
 */
import { readFileSync, readdirSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { contract } from "./support/contract.ts"
import { type Person, person } from "./support/people.ts"
import { startServer, type TestResponse, type TestServer } from "./support/server.ts"

type Json = Record<string, any>
type Who = "nobody" | "admin" | "ada" | "ada's cookie"

interface Provocation {
  readonly who: Who
  readonly method: string
  readonly path: string
  /** JSON, or a multipart form. */
  readonly body?: unknown
}

const deref = (node: Json): Json =>
  typeof node?.$ref === "string"
    ? deref(
        node.$ref
          .slice(2)
          .split("/")
          .reduce((at: Json, key: string) => at?.[key], contract)
      )
    : node

/** Each operation's examples of `status`, by name: their values. */
const declaredExamples = (status: "403" | "422") =>
  Object.entries<Json>(contract.paths).flatMap(([path, item]) =>
    Object.entries<Json>(item)
      .filter(([, op]) => op?.operationId !== undefined && op.responses[status] !== undefined)
      .map(([method, op]) => {
        const media = deref(op.responses[status]).content["application/json"]
        const examples = Object.fromEntries(
          Object.entries<Json>(media.examples ?? {}).map(([name, example]) => [name, deref(example).value])
        )
        return { operationId: op.operationId as string, method, path, examples }
      })
  )

const ids = {
  collection: "{collection}",
  document: "{document}",
  admin: "{admin}",
  ada: "{ada}"
}
const textFile = () => {
  const form = new FormData()
  form.append("files", new Blob(["Notes"], { type: "text/plain" }), "notes.txt")
  form.append("visibility", "public")
  return form
}

/** The request that provokes each example, by operation and example name. */
const forbidden: Record<string, Record<string, Provocation>> = {
  register: {
    sign_up_closed: {
      who: "nobody",
      method: "POST",
      path: "/api/v1/auth/register",
      body: { email: "eve@example.com", password: "long enough pw", display_name: "Eve" }
    }
  },
  changePassword: {
    wrong_password: {
      who: "ada",
      method: "POST",
      path: "/api/v1/users/me/password",
      body: { current_password: "not it at all", new_password: "a brand new passphrase" }
    }
  },
  listUsers: { admin_only: { who: "ada", method: "GET", path: "/api/v1/admin/users" } },
  createUser: {
    admin_only: {
      who: "ada",
      method: "POST",
      path: "/api/v1/admin/users",
      body: { email: "bob@example.com", password: "a long passphrase", display_name: "Bob", role: "curator" }
    }
  },
  listAuditEvents: { admin_only: { who: "ada", method: "GET", path: "/api/v1/admin/audit" } },
  updateUser: { admin_only: { who: "ada", method: "PATCH", path: `/api/v1/admin/users/${ids.admin}`, body: { active: false } } },
  createApiKey: { role_too_high: { who: "ada", method: "POST", path: "/api/v1/api-keys", body: { name: "nightly sync", role: "admin" } } },
  createDocument: {
    publish: {
      who: "ada",
      method: "POST",
      path: "/api/v1/documents",
      body: { title: "Notes", content: "Notes", source: "api", visibility: "public" }
    },
    collection_role: {
      who: "ada",
      method: "POST",
      path: "/api/v1/documents",
      body: { title: "Notes", content: "Notes", source: "api", collection_ids: [ids.collection] }
    }
  },
  uploadDocuments: { publish: { who: "ada", method: "POST", path: "/api/v1/documents/upload", body: textFile } },
  updateDocument: { not_changeable: { who: "ada", method: "PATCH", path: `/api/v1/documents/${ids.document}`, body: { tags: ["mine"] } } },
  deleteDocument: { not_changeable: { who: "ada", method: "DELETE", path: `/api/v1/documents/${ids.document}` } },
  updateCollection: {
    editors_only: { who: "ada", method: "PATCH", path: `/api/v1/collections/${ids.collection}`, body: { name: "Mine" } }
  },
  deleteCollection: { owners_only: { who: "ada", method: "DELETE", path: `/api/v1/collections/${ids.collection}` } },
  addCollectionMember: {
    owners_only: {
      who: "ada",
      method: "POST",
      path: `/api/v1/collections/${ids.collection}/members`,
      body: { email: "admin@example.com", role: "viewer" }
    }
  },
  setCollectionMember: {
    owners_only: {
      who: "ada",
      method: "PUT",
      path: `/api/v1/collections/${ids.collection}/members/${ids.ada}`,
      body: { role: "owner" }
    }
  },
  removeCollectionMember: {
    owners_only: { who: "ada", method: "DELETE", path: `/api/v1/collections/${ids.collection}/members/${ids.admin}` }
  },
  addCollectionDocument: {
    editors_only: { who: "ada", method: "POST", path: `/api/v1/collections/${ids.collection}/documents/${ids.document}` }
  },
  removeCollectionDocument: {
    editors_only: { who: "ada", method: "DELETE", path: `/api/v1/collections/${ids.collection}/documents/${ids.document}` }
  }
}

/** An unknown query parameter: refused by every operation that reads no query of its own. */
const unknownParameter = (method: string, path: string, who: Who = "ada"): Record<string, Provocation> => ({
  unknown_parameter: { who, method, path: `${path}?colour=blue` }
})

const invalid: Record<string, Record<string, Provocation>> = {
  getHealth: unknownParameter("GET", "/health", "nobody"),
  getReadiness: unknownParameter("GET", "/ready", "nobody"),
  getRoot: unknownParameter("GET", "/", "nobody"),
  getOpenApiJson: unknownParameter("GET", "/openapi.json", "nobody"),
  getOpenApiYaml: unknownParameter("GET", "/openapi.yaml", "nobody"),
  getSwaggerUi: unknownParameter("GET", "/docs", "nobody"),
  getRedoc: unknownParameter("GET", "/redoc", "nobody"),
  logout: unknownParameter("POST", "/api/v1/auth/logout"),
  getCurrentUser: unknownParameter("GET", "/api/v1/users/me"),
  listApiKeys: unknownParameter("GET", "/api/v1/api-keys"),
  documentEvents: unknownParameter("GET", "/api/v1/documents/events"),
  getDocsAsset: { unknown_asset: { who: "nobody", method: "GET", path: "/docs/assets/logo.png" } },
  register: {
    invalid_fields: {
      who: "nobody",
      method: "POST",
      path: "/api/v1/auth/register",
      body: { email: "ada", password: "short", display_name: "Ada" }
    }
  },
  login: { missing_password: { who: "nobody", method: "POST", path: "/api/v1/auth/login", body: { email: "ada@example.com" } } },
  issueToken: {
    missing_password: {
      who: "nobody",
      method: "POST",
      path: "/api/v1/auth/token",
      body: new URLSearchParams({ grant_type: "password", username: "ada@example.com" })
    }
  },
  startOidcSignIn: {
    return_to_elsewhere: { who: "nobody", method: "GET", path: "/api/v1/auth/oidc/authorize?return_to=https://elsewhere.example" }
  },
  completeOidcSignIn: { state_too_long: { who: "nobody", method: "GET", path: `/api/v1/auth/oidc/callback?state=${"s".repeat(513)}` } },
  refreshSession: { missing_refresh_token: { who: "nobody", method: "POST", path: "/api/v1/auth/refresh", body: {} } },
  updateCurrentUser: { empty_display_name: { who: "ada", method: "PATCH", path: "/api/v1/users/me", body: { display_name: " " } } },
  changePassword: {
    short_password: {
      who: "ada",
      method: "POST",
      path: "/api/v1/users/me/password",
      body: { current_password: "ada password long", new_password: "short" }
    }
  },
  listUsers: { limit_too_high: { who: "admin", method: "GET", path: "/api/v1/admin/users?limit=500" } },
  createUser: {
    unknown_role: {
      who: "admin",
      method: "POST",
      path: "/api/v1/admin/users",
      body: { email: "bob@example.com", password: "a long passphrase", display_name: "Bob", role: "owner" }
    }
  },
  listAuditEvents: { unknown_action: { who: "admin", method: "GET", path: "/api/v1/admin/audit?action=signed_in" } },
  updateUser: { nothing_to_change: { who: "admin", method: "PATCH", path: `/api/v1/admin/users/${ids.ada}`, body: {} } },
  createApiKey: { empty_name: { who: "ada", method: "POST", path: "/api/v1/api-keys", body: { name: "" } } },
  revokeApiKey: { malformed_id: { who: "ada", method: "DELETE", path: "/api/v1/api-keys/42" } },
  createDocument: {
    invalid_fields: {
      who: "ada",
      method: "POST",
      path: "/api/v1/documents",
      body: { title: "Onboarding", content: " ", source: "Confluence" }
    }
  },
  listDocuments: { unknown_status: { who: "ada", method: "GET", path: "/api/v1/documents?status=done" } },
  getIndexingProgress: { not_a_filter_here: { who: "ada", method: "GET", path: "/api/v1/documents/progress?status=queued" } },
  createDocumentsBatch: { empty_batch: { who: "ada", method: "POST", path: "/api/v1/documents/batch", body: { documents: [] } } },
  uploadDocuments: {
    no_files: {
      who: "ada",
      method: "POST",
      path: "/api/v1/documents/upload",
      body: () => {
        const form = new FormData()
        form.append("source", "local")
        return form
      }
    }
  },
  getDocument: { malformed_id: { who: "ada", method: "GET", path: "/api/v1/documents/42" } },
  updateDocument: { nothing_to_change: { who: "admin", method: "PATCH", path: `/api/v1/documents/${ids.document}`, body: {} } },
  deleteDocument: { malformed_id: { who: "ada", method: "DELETE", path: "/api/v1/documents/42" } },
  listDocumentChunks: { limit_too_high: { who: "ada", method: "GET", path: `/api/v1/documents/${ids.document}/chunks?limit=500` } },
  createCollection: { empty_name: { who: "ada", method: "POST", path: "/api/v1/collections", body: { name: " " } } },
  listCollections: { limit_too_low: { who: "ada", method: "GET", path: "/api/v1/collections?limit=0" } },
  getCollection: { malformed_id: { who: "ada", method: "GET", path: "/api/v1/collections/42" } },
  updateCollection: { nothing_to_change: { who: "admin", method: "PATCH", path: `/api/v1/collections/${ids.collection}`, body: {} } },
  deleteCollection: { malformed_id: { who: "ada", method: "DELETE", path: "/api/v1/collections/42" } },
  listCollectionMembers: { malformed_id: { who: "ada", method: "GET", path: "/api/v1/collections/42/members" } },
  addCollectionMember: {
    email_and_user_id: {
      who: "admin",
      method: "POST",
      path: `/api/v1/collections/${ids.collection}/members`,
      body: { email: "ada@example.com", user_id: ids.ada, role: "editor" }
    }
  },
  setCollectionMember: {
    unknown_role: {
      who: "admin",
      method: "PUT",
      path: `/api/v1/collections/${ids.collection}/members/${ids.ada}`,
      body: { role: "admin" }
    }
  },
  removeCollectionMember: {
    malformed_id: { who: "admin", method: "DELETE", path: `/api/v1/collections/${ids.collection}/members/42` }
  },
  addCollectionDocument: {
    malformed_id: { who: "admin", method: "POST", path: `/api/v1/collections/${ids.collection}/documents/42` }
  },
  removeCollectionDocument: {
    malformed_id: { who: "admin", method: "DELETE", path: `/api/v1/collections/${ids.collection}/documents/42` }
  },
  search: { blank_query: { who: "ada", method: "POST", path: "/api/v1/search", body: { query: " " } } },
  createChatSession: { blank_title: { who: "ada", method: "POST", path: "/api/v1/chat/sessions", body: { title: " " } } },
  listChatSessions: { limit_too_low: { who: "ada", method: "GET", path: "/api/v1/chat/sessions?limit=0" } },
  getChatSession: { malformed_id: { who: "ada", method: "GET", path: "/api/v1/chat/sessions/42" } },
  updateChatSession: {
    nothing_to_change: { who: "ada", method: "PATCH", path: "/api/v1/chat/sessions/00000000-0000-4000-8000-000000000000", body: {} }
  },
  deleteChatSession: { malformed_id: { who: "ada", method: "DELETE", path: "/api/v1/chat/sessions/42" } },
  setMessageFeedback: {
    malformed_id: { who: "ada", method: "POST", path: "/api/v1/chat/messages/42/feedback", body: { rating: "positive" } }
  },
  deleteMessageFeedback: { malformed_id: { who: "ada", method: "DELETE", path: "/api/v1/chat/messages/42/feedback" } },
  sendChatMessage: {
    empty_message: {
      who: "ada",
      method: "POST",
      path: "/api/v1/chat/sessions/00000000-0000-4000-8000-000000000000/messages",
      body: { message: "" }
    }
  },
  streamChatMessage: {
    malformed_id: { who: "ada", method: "GET", path: "/api/v1/chat/sessions/00000000-0000-4000-8000-000000000000/messages/42/stream" }
  },
  chatWebSocket: unknownParameter("GET", "/api/v1/chat/ws"),
  stopChatMessage: {
    malformed_id: { who: "ada", method: "POST", path: "/api/v1/chat/sessions/00000000-0000-4000-8000-000000000000/messages/42/stop" }
  }
}

const csrfExample = "csrf_token_missing"
const pathIds: Record<string, string> = {
  collection_id: ids.collection,
  document_id: ids.document,
  user_id: ids.ada,
  key_id: "00000000-0000-4000-8000-000000000000",
  session_id: "00000000-0000-4000-8000-000000000000",
  message_id: "00000000-0000-4000-8000-000000000000"
}
const unsafe = new Set(["post", "put", "patch", "delete"])
const secured = (method: string, path: string) => (contract.paths[path][method].security ?? contract.security ?? []).length > 0

describe("the 403 and 422 examples of openapi.yaml", () => {
  let server: TestServer
  const people: Partial<Record<Who, Person>> = {}
  let adaCookie = ""
  const fill: Record<string, string> = {}

  beforeAll(async () => {
    server = await startServer({}, { emptyDatabase: true })
    const post = (path: string, body: unknown, token?: string) =>
      server.request(path, {
        method: "POST",
        headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify(body)
      })
    await post("/api/v1/auth/register", { email: "admin@example.com", password: "admin password long", display_name: "Admin" })
    const adminLogin = (await post("/api/v1/auth/login", { email: "admin@example.com", password: "admin password long" })).json()
    people.admin = person(server, adminLogin.user.id, adminLogin.access_token)
    await post(
      "/api/v1/admin/users",
      { email: "ada@example.com", password: "ada password long", display_name: "Ada", role: "basic" },
      adminLogin.access_token
    )
    const adaLogin = (await post("/api/v1/auth/login", { email: "ada@example.com", password: "ada password long" })).json()
    people.ada = person(server, adaLogin.user.id, adaLogin.access_token)
    const cookieLogin = await post("/api/v1/auth/login", { email: "ada@example.com", password: "ada password long", session_cookie: true })
    adaCookie = cookieLogin.headers
      .getSetCookie()
      .find((line) => line.startsWith("basalt_session="))!
      .split(";")[0]!
    // A collection of the admin's where Ada is a viewer, holding a document of the admin's.
    const collection = (await post("/api/v1/collections", { name: "Handbook" }, adminLogin.access_token)).json()
    await post(`/api/v1/collections/${collection.id}/members`, { email: "ada@example.com", role: "viewer" }, adminLogin.access_token)
    const document = (
      await post(
        "/api/v1/documents",
        { title: "Policy", content: "Policy", source: "api", collection_ids: [collection.id] },
        adminLogin.access_token
      )
    ).json()
    Object.assign(fill, {
      [ids.collection]: collection.id,
      [ids.document]: document.id,
      [ids.admin]: adminLogin.user.id,
      [ids.ada]: adaLogin.user.id
    })
  })
  afterAll(() => server?.stop())

  const filled = (text: string) => Object.entries(fill).reduce((at, [placeholder, id]) => at.replaceAll(placeholder, id), text)

  const send = async ({ who, method, path, body }: Provocation): Promise<TestResponse> => {
    const headers: Record<string, string> = {}
    if (who === "admin" || who === "ada") headers.authorization = `Bearer ${people[who]!.token}`
    if (who === "ada's cookie") headers.cookie = adaCookie
    const made = typeof body === "function" ? (body as () => FormData)() : body
    let sent: RequestInit["body"]
    if (made instanceof FormData || made instanceof URLSearchParams) sent = made
    else if (made !== undefined) {
      headers["content-type"] = "application/json"
      sent = filled(JSON.stringify(made))
    }
    return server.request(filled(path), { method, headers, body: sent })
  }

  const withoutRequestId = ({ request_id: _, ...body }: Json) => body

  for (const status of ["403", "422"] as const) {
    describe(status, () => {
      for (const { operationId, method, path, examples } of declaredExamples(status)) {
        const provocations: Record<string, Provocation> = { ...(status === "403" ? forbidden : invalid)[operationId] }
        if (status === "403" && unsafe.has(method) && secured(method, path)) {
          // Any body the guard lets through: the CSRF check comes before the body is decoded.
          const takesBody = contract.paths[path][method].requestBody !== undefined
          const body = takesBody ? (forbidden[operationId] ? Object.values(forbidden[operationId]!)[0]!.body : {}) : undefined
          const target = path.replace(/\{([^}]+)\}/g, (_, parameter: string) => pathIds[parameter] ?? parameter)
          provocations[csrfExample] = { who: "ada's cookie", method: method.toUpperCase(), path: target, body }
        }
        if (operationId === "completeOidcSignIn" && status === "403") continue

        it(`${operationId}: each example is the answer to its mistake, and each mistake has an example`, async () => {
          expect(Object.keys(examples).sort()).toEqual(Object.keys(provocations).sort())
          for (const [name, provocation] of Object.entries(provocations)) {
            const response = await send(provocation)
            expect({ name, status: response.status, body: withoutRequestId(response.json()) }).toEqual({
              name,
              status: Number(status),
              body: withoutRequestId(JSON.parse(filled(JSON.stringify(examples[name]))))
            })
          }
        })
      }
    })
  }

  it("completeOidcSignIn: its 403 examples are messages the code answers", () => {
    const sources = readdirSync(join(import.meta.dirname, "../src/accounts"))
      .map((file) => readFileSync(join(import.meta.dirname, "../src/accounts", file), "utf8"))
      .join("\n")
    const examples = declaredExamples("403").find(({ operationId }) => operationId === "completeOidcSignIn")!.examples
    expect(Object.keys(examples).length).toBeGreaterThan(0)
    for (const example of Object.values<Json>(examples)) {
      // A message with a value in it (`Accounts of example.org …`) is written as a template.
      const pattern = new RegExp(
        example.message
          .split(/example\.org/)
          .map((part: string) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
          .join("\\$\\{[^}]+\\}")
      )
      expect(sources).toMatch(pattern)
    }
  })
})
