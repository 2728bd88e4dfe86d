/**
 * Input that Postgres cannot store, nests too deep, or is large and wrong, on the real server: it
 * is refused with a short 4xx in the one error shape that names the field in words, never a 500,
 * never an echo of a secret, never the text of a Schema. (Path parameters: tests/errors.test.ts,
 * whose probe has a free-text one; every real one is a UUID or an enum.)
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Person, signUp } from "./support/people.ts"
import { startServer, type TestResponse, type TestServer } from "./support/server.ts"

const nul = "\u0000"
const loneSurrogate = "\ud800"

/** What no message may contain: the signatures and placeholders of Schemas instead of words. */
const schemaText = /readonly|ReadonlyArray|Expected undefined|\bundefined\b|<filter>|RegExp|\{ *readonly|\| null|Expected string$/

/** A body nested `levels` deep at `key` of `body`: `{"key": [[[…]]]}`, as text (JSON.stringify would recurse). */
const nestedAt = (body: Record<string, unknown>, key: string, levels: number) => {
  const text = JSON.stringify({ ...body, [key]: "NESTED" })
  return text.replace('"NESTED"', "[".repeat(levels) + "]".repeat(levels))
}

describe("hostile input", () => {
  let server: TestServer
  let admin: Person

  beforeAll(async () => {
    server = await startServer({ BASALT_ALLOW_SIGNUP: "true" }, { emptyDatabase: true })
    admin = await signUp(server, "admin")
  })
  afterAll(() => server.stop())

  /** A JSON body as text, so that escapes such as `\ud800` reach the server as written. */
  const postText = (path: string, text: string, who?: Person) =>
    server.request(path, {
      method: "POST",
      headers: { "content-type": "application/json", ...(who ? { authorization: `Bearer ${who.token}` } : {}) },
      body: text
    })
  const post = (path: string, body: unknown, who?: Person) => postText(path, JSON.stringify(body), who)
  const postForm = (path: string, form: string) =>
    server.request(path, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: form })

  /** A 422 in the one shape (the contract validated it already), every message in words; its details. */
  const refused = (response: TestResponse, status = 422) => {
    expect(response.status, response.text).toBe(status)
    const body = response.json()
    expect(body.error).toBe(status === 422 ? "validation_failed" : "malformed_json")
    for (const message of [body.message, ...(body.details ?? []).map((detail: { message: string }) => detail.message)]) {
      expect(message).not.toMatch(schemaText)
    }
    return body as { message: string; details: ReadonlyArray<{ path: string; message: string }> }
  }

  /** Refused with a detail at `path` saying what is wrong with the text. */
  const refusedText = (response: TestResponse, path: string, what: RegExp) => {
    const body = refused(response)
    expect(body.details).toContainEqual({ path, message: expect.stringMatching(what) })
    expect(body.message).toContain(path)
  }
  const NUL = /U\+0000/
  const SURROGATE = /lone surrogate/

  describe("text Postgres cannot store: U+0000 and lone surrogates, refused naming the field", () => {
    it("in the login body, without credentials (was 500)", async () => {
      refusedText(await post("/api/v1/auth/login", { email: `a${nul}b@example.com`, password: "x" }), "email", NUL)
      refusedText(await post("/api/v1/auth/login", { email: `a${loneSurrogate}@example.com`, password: "x" }), "email", SURROGATE)
      const password = await post("/api/v1/auth/login", { email: "someone@example.com", password: `hunter2${loneSurrogate}` })
      refusedText(password, "password", SURROGATE)
      expect(password.text).not.toContain("hunter2")
    })

    it("in the sign-up body", async () => {
      const body = { email: "grace@example.com", password: "a long password", display_name: `Grace${nul}` }
      refusedText(await post("/api/v1/auth/register", body), "display_name", NUL)
    })

    it("in the form-encoded token grant, a surrogate as the escapes of its UTF-8-like bytes", async () => {
      refusedText(await postForm("/api/v1/auth/token", "grant_type=password&username=a%00b&password=x"), "username", NUL)
      const escaped = await postForm("/api/v1/auth/token", "grant_type=password&username=a%40b.c&password=secret%ED%A0%80")
      refusedText(escaped, "password", /not UTF-8/)
      expect(escaped.text).not.toContain("secret")
      // A field the grant ignores (OAuth tools send their own) is not read, so not refused.
      const ignored = await postForm("/api/v1/auth/token", "grant_type=password&username=a%40b.c&password=x&tool_note=a%00b")
      expect(ignored.json().error).toBe("invalid_grant")
    })

    it("in a document's title, content, metadata keys and metadata values at any depth", async () => {
      const document = { title: "Title", content: "Content", source: "wiki" }
      refusedText(await post("/api/v1/documents", { ...document, title: `T${nul}` }, admin), "title", NUL)
      refusedText(await post("/api/v1/documents", { ...document, content: `C${loneSurrogate}` }, admin), "content", SURROGATE)
      refusedText(await post("/api/v1/documents", { ...document, metadata: { [`k${nul}`]: 1 } }, admin), "metadata", /key that contains/)
      const deepValue = { ...document, metadata: { a: { b: ["fine", `x${loneSurrogate}`] } } }
      refusedText(await post("/api/v1/documents", deepValue, admin), "metadata.a.b.1", SURROGATE)
      // A surrogate pair (an emoji) is text like any other.
      const emoji = await post("/api/v1/documents", { ...document, title: "😀", metadata: { mood: "😀" } }, admin)
      expect(emoji.status).toBe(202)
      expect(emoji.json()).toMatchObject({ title: "😀", metadata: { mood: "😀" } })
    })

    it("in a batch, the item alone: the others are stored", async () => {
      const good = { title: "Good", content: "Content", source: "wiki" }
      const response = await post("/api/v1/documents/batch", { documents: [good, { ...good, title: `Bad${nul}` }] }, admin)
      expect(response.status).toBe(207)
      const { results } = response.json()
      expect(results[0].status).toBe(202)
      expect(results[1].status).toBe(422)
      expect(results[1].error.details).toContainEqual({ path: "documents.1.title", message: expect.stringMatching(NUL) })
    })

    it("in a search", async () => {
      refusedText(await post("/api/v1/search", { query: `q${nul}` }, admin), "query", NUL)
      refusedText(await post("/api/v1/search", { query: "q", filters: { tags: [loneSurrogate] } }, admin), "filters.tags.0", SURROGATE)
    })

    it("in query parameters, and escapes that are not UTF-8 (a parser would make them U+FFFD)", async () => {
      refusedText(await admin.get("/api/v1/admin/users?email=a%00b"), "email", NUL)
      refusedText(await admin.get("/api/v1/documents?tags=a%00b"), "tags", NUL)
      refusedText(await admin.get("/api/v1/admin/users?email=a%ED%A0%80"), "email", /not UTF-8/)
      refusedText(await admin.get("/api/v1/admin/users?email=%FF"), "email", /not UTF-8/)
      // A stray `%` and proper UTF-8 escapes are read as before.
      expect((await admin.get("/api/v1/admin/users?email=%E2%82%AC%")).status).toBe(200)
    })

    it("in a JSON body's raw bytes that are not UTF-8: 400, not U+FFFD", async () => {
      const bytes = Buffer.concat([Buffer.from('{"email":"a'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('@b.c","password":"x"}')])
      const response = await server.request("/api/v1/auth/login", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: bytes
      })
      expect(refused(response, 400).message).toMatch(/not valid UTF-8/)
    })

    it("in multipart text fields", async () => {
      const form = new FormData()
      form.append("files", new Blob(["hello"], { type: "text/plain" }), "hello.txt")
      form.append("tags", `a${nul}b`)
      const response = await server.request("/api/v1/documents/upload", {
        method: "POST",
        headers: { authorization: `Bearer ${admin.token}` },
        body: form
      })
      refusedText(response, "tags.0", NUL)
    })

    it("in multipart text fields' raw bytes that are not UTF-8: 422 naming the field, not U+FFFD (was 202)", async () => {
      const boundary = "basalt-hostile-boundary"
      const field = (name: string, value: Buffer) =>
        Buffer.concat([Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n`), value, Buffer.from("\r\n")])
      const upload = (...fields: ReadonlyArray<Buffer>) =>
        server.request("/api/v1/documents/upload", {
          method: "POST",
          headers: { authorization: `Bearer ${admin.token}`, "content-type": `multipart/form-data; boundary=${boundary}` },
          body: Buffer.concat([
            Buffer.from(
              `--${boundary}\r\nContent-Disposition: form-data; name="files"; filename="hello.txt"\r\nContent-Type: text/plain\r\n\r\nhello\r\n`
            ),
            ...fields,
            Buffer.from(`--${boundary}--\r\n`)
          ])
        })
      const bytes = (...parts: ReadonlyArray<string | ReadonlyArray<number>>) =>
        Buffer.concat(parts.map((part) => (typeof part === "string" ? Buffer.from(part) : Buffer.from(part))))
      const NOT_UTF8 = /not valid UTF-8/
      // A lone surrogate encoded as if it were UTF-8, in the second tag.
      refusedText(await upload(field("tags", bytes("ok")), field("tags", bytes("a", [0xed, 0xa0, 0x80], "b"))), "tags.1", NOT_UTF8)
      // A stray byte and a sequence cut short.
      refusedText(await upload(field("tags", bytes([0xff]))), "tags.0", NOT_UTF8)
      refusedText(await upload(field("collection_ids", bytes([0xe2, 0x82]))), "collection_ids.0", NOT_UTF8)
      refusedText(await upload(field("visibility", bytes("priv", [0xc3, 0x28], "ate"))), "visibility", NOT_UTF8)
      // Proper UTF-8 is read as sent.
      const accepted = await upload(field("tags", bytes("café €")))
      expect(accepted.status, accepted.text).toBe(202)
      expect(accepted.json().items[0].tags).toEqual(["café €"])
    })
  })

  describe("deep nesting: bounded before decoding, metadata to 32 levels", () => {
    const deepBodies = [
      { name: "login", path: "/api/v1/auth/login", body: { password: "x" }, key: "email", authenticated: false },
      {
        name: "sign-up",
        path: "/api/v1/auth/register",
        body: { password: "a long password", display_name: "D" },
        key: "email",
        authenticated: false
      },
      {
        name: "document",
        path: "/api/v1/documents",
        body: { title: "T", content: "C", source: "wiki" },
        key: "metadata",
        authenticated: true
      },
      { name: "batch", path: "/api/v1/documents/batch", body: {}, key: "documents", authenticated: true },
      { name: "search", path: "/api/v1/search", body: { query: "q" }, key: "filters", authenticated: true }
    ]
    for (const levels of [3_000, 100_000]) {
      for (const { name, path, body, key, authenticated } of deepBodies) {
        it(`${levels} levels at ${name} answer 422, not 500`, async () => {
          const response = await postText(path, nestedAt(body, key, levels), authenticated ? admin : undefined)
          expect(refused(response).message).toMatch(/more than 64 levels deep/)
        })
      }
    }

    /** `{"a": {"a": … {}}}`, `levels` objects deep (the outer one is level 1). */
    const metadataOf = (levels: number): Record<string, unknown> => {
      let metadata: Record<string, unknown> = {}
      for (let level = 1; level < levels; level++) metadata = { a: metadata }
      return metadata
    }

    it("metadata 32 levels deep is stored and listed; 33 is refused", async () => {
      const document = { title: "Deep", content: "Content", source: "deep" }
      const accepted = await post("/api/v1/documents", { ...document, metadata: metadataOf(32) }, admin)
      expect(accepted.status).toBe(202)
      expect(accepted.json().metadata).toEqual(metadataOf(32))
      const listed = await admin.get("/api/v1/documents?sources=deep")
      expect(listed.status).toBe(200)
      expect(listed.json().items[0].metadata).toEqual(metadataOf(32))

      const body = refused(await post("/api/v1/documents", { ...document, external_id: "deeper", metadata: metadataOf(33) }, admin))
      expect(body.details).toEqual([{ path: "metadata", message: expect.stringMatching(/at most 32 levels/) }])
      const deepArray = refused(await post("/api/v1/documents", { ...document, metadata: { a: JSON.parse(nestedAt({}, "a", 32)) } }, admin))
      expect(deepArray.details.map((detail) => detail.path)).toEqual(["metadata"])
    })

    it("the contract declares the bound", async () => {
      const yaml = (await server.request("/openapi.json")).json()
      expect(yaml.components.schemas.DocumentMetadata["x-max-depth"]).toBe(32)
    })
  })

  describe("text bounds as the contract counts them: code points, on the text as sent", () => {
    const emoji = "\u{1F600}"

    it("500 emoji are a title of 500 characters (JavaScript counts 1,000 units), 501 are not", async () => {
      const document = { content: "Emoji.", source: "bounds" }
      const stored = await post("/api/v1/documents", { ...document, title: emoji.repeat(500), external_id: emoji.repeat(512) }, admin)
      expect(stored.status).toBe(202)
      expect(stored.json().title).toBe(emoji.repeat(500))
      const tooLong = refused(await post("/api/v1/documents", { ...document, title: emoji.repeat(501) }, admin))
      expect(tooLong.details).toEqual([{ path: "title", message: expect.stringMatching(/at most 500 characters/) }])
    })

    it("a trimmed field is bounded before the trim: 2,000 characters and a space are too many", async () => {
      const tooLong = refused(await post("/api/v1/collections", { name: "Bounds", description: `${"d".repeat(2000)} ` }, admin))
      expect(tooLong.details).toEqual([{ path: "description", message: expect.stringMatching(/at most 2000 characters/) }])
      const created = await post("/api/v1/collections", { name: `  ${emoji.repeat(198)}`, description: "d".repeat(2000) }, admin)
      expect(created.status).toBe(201)
      expect(created.json().name).toBe(emoji.repeat(198))
    })

    it("only spaces are refused as the contract's pattern refuses them, empty text by its length", async () => {
      const blank = refused(await post("/api/v1/collections", { name: " \u00a0\t" }, admin))
      expect(blank.details).toEqual([
        { path: "name", message: expect.stringMatching(/^Expected at least one character that is not a space/) }
      ])
      const empty = refused(await post("/api/v1/collections", { name: "" }, admin))
      expect(empty.details).toEqual([{ path: "name", message: expect.stringMatching(/^Expected a non-empty string/) }])
    })
  })

  describe("errors a person can read", () => {
    const megabyte = "x".repeat(1_000_000)

    it("a 1 MB wrong value gets a short answer that quotes at most a short prefix", async () => {
      const tooLong = await post("/api/v1/auth/login", { email: megabyte, password: "x" })
      expect(tooLong.text.length).toBeLessThan(1_000)
      expect(refused(tooLong).details).toEqual([{ path: "email", message: "Expected at most 254 characters, got 1000000" }])

      const notAnId = await post("/api/v1/documents", { title: "T", content: "C", source: "wiki", collection_ids: [megabyte] }, admin)
      expect(notAnId.text.length).toBeLessThan(1_000)
      const [detail] = refused(notAnId).details
      expect(detail).toEqual({ path: "collection_ids.0", message: expect.stringMatching(/^Expected a UUID, got "x{39}…"$/) })

      const longName = await post("/api/v1/auth/login", { email: "a@b.c", password: "x", [megabyte]: 1 })
      expect(longName.text.length).toBeLessThan(1_000)
      expect(refused(longName).details[0]!.message).toMatch(/^Not a known field/)
    })

    it("many problems: one detail per field, at most 20, the answer bounded", async () => {
      const unknownFields = Object.fromEntries(Array.from({ length: 5_000 }, (_, index) => [`field_${index}`, megabyte.slice(0, 100)]))
      const response = await post("/api/v1/auth/login", { email: "a@b.c", password: "x", ...unknownFields })
      const body = refused(response)
      expect(body.details).toHaveLength(20)
      expect(body.message).toMatch(/and 4999 more problems, the first 20 in details/)
      expect(response.text.length).toBeLessThan(5_000)

      const limit = refused(await admin.get("/api/v1/documents?limit=abc&status=nope"))
      const paths = limit.details.map((detail) => detail.path)
      expect(new Set(paths).size).toBe(paths.length)
      expect(limit.details).toContainEqual({
        path: "status",
        message: 'Expected one of queued, parsing, chunking, embedding, indexed, failed, got "nope"'
      })
    })

    it("never quotes a password, wherever it is wrong", async () => {
      const secret = "correct-horse-battery"
      const responses = [
        await post("/api/v1/auth/register", { email: "h@example.com", password: 12345678, display_name: "H" }),
        await post("/api/v1/auth/register", { email: "h@example.com", password: secret.slice(0, 5), display_name: "H" }),
        await post("/api/v1/auth/login", { email: "h@example.com", password: [secret] }),
        await post("/api/v1/auth/login", { email: "h@example.com", password: secret.repeat(10) }),
        await postText("/api/v1/auth/login", `{"email":"h@example.com","password":"${secret}" x}`),
        await post("/api/v1/users/me/password", { current_password: secret, new_password: secret.slice(0, 3) }, admin),
        await postForm("/api/v1/auth/token", `grant_type=password&username=h&password=${secret.repeat(10)}`)
      ]
      for (const response of responses) {
        expect(response.status).toBeGreaterThanOrEqual(400)
        expect(response.status).toBeLessThan(500)
        expect(response.text).not.toMatch(/correct|horse|12345678|\bcorre/)
      }
      expect(responses[0]!.json().details).toEqual([{ path: "password", message: "Expected a string" }])
    })

    it("says what is expected in words, never a Schema's signature", async () => {
      const responses = [
        await post("/api/v1/auth/login", [1]),
        await post("/api/v1/auth/login", { email: 1, password: null }),
        await post("/api/v1/documents", { title: 1, content: [], source: "Not A Source", url: 5, tags: "x", visibility: "secret" }, admin),
        await post("/api/v1/search", { query: " ", mode: "fuzzy", filters: 5, limit: 0, weights: { keyword: "a" } }, admin),
        await admin.get("/api/v1/documents?limit=0&updated_after=yesterday"),
        await server.request("/api/v1/documents/00000000-0000-4000-8000-000000000000", admin.json("PATCH", { url: 5 }))
      ]
      for (const response of responses) refused(response)
      expect(responses[1]!.json().details).toEqual([
        { path: "email", message: "Expected a string, got 1" },
        { path: "password", message: "Expected a string" }
      ])
      const document = responses[2]!.json().details
      expect(document).toContainEqual({ path: "url", message: "Expected a string, got 5" })
      expect(document).toContainEqual({ path: "visibility", message: 'Expected one of private, public, got "secret"' })
      expect(document).toContainEqual({ path: "tags", message: 'Expected an array, got "x"' })
    })
  })
})
