/**
 * Uploads: real PDF and DOCX files built by pdfkit and docx, text formats, types sniffed from
 * the bytes (not the name), the per-file limit (413), unsupported types (415), corrupt files
 * (422 with the parser's reason), form fields, and nothing stored when one file fails. Hostile
 * bodies go over raw sockets (what fetch would never send): malformed multipart (400), bodies
 * that stall or never end (408), and the spool directory gone after every one of them, and after
 * a shutdown that cuts an upload.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs"
import { connect, type Socket } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Document, HeadingLevel, Packer, Paragraph } from "docx"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { parse as parseYaml } from "yaml"
import { type Person, settled, signUp } from "./support/people.ts"
import { buildPdf as buildPdfPages } from "./support/pdfFiles.ts"
import { receive, startServer, type TestResponse, type TestServer } from "./support/server.ts"

/** A one-page PDF: `text` under no heading, `title` in its metadata. */
const buildPdf = (title: string, text: string) => buildPdfPages([{ heading: "", body: text }], { title })

const buildDocx = async (heading: string, text: string) =>
  new Uint8Array(
    await Packer.toBuffer(
      new Document({
        sections: [{ children: [new Paragraph({ text: heading, heading: HeadingLevel.HEADING_1 }), new Paragraph(text)] }]
      })
    )
  )

const uploadLimit = 64 * 1024
const uploadTimeoutSeconds = 3
const uploadPath = "/api/v1/documents/upload"

/** The spool directories of uploads in `directory` (the temporary directory of a server). */
const spoolDirectories = (directory: string) => readdirSync(directory).filter((name) => name.startsWith("basalt-upload-"))

interface RawExchange {
  readonly response: TestResponse
  readonly elapsedMs: number
}

/**
 * One upload on a connection of its own: `head` and then whatever `send` writes, as raw bytes.
 * Resolves with the response (Content-Length framed, validated against the contract) once it is
 * complete, or rejects when none comes within `boundMs` (a bound against a hang, not a
 * measurement). `send` may keep writing: it gets the socket and is told when the answer came.
 */
const exchange = (port: number, head: string, send: (socket: Socket, answered: () => boolean) => void = () => {}, boundMs = 30_000) =>
  new Promise<RawExchange>((resolve, reject) => {
    const started = performance.now()
    const socket = connect(port, "127.0.0.1")
    let received = Buffer.alloc(0)
    let done = false
    const finish = (outcome: RawExchange | Error) => {
      if (done) return
      done = true
      clearTimeout(bound)
      socket.destroy()
      if (outcome instanceof Error) reject(outcome)
      else resolve(outcome)
    }
    const parse = (closed: boolean) => {
      const headEnd = received.indexOf("\r\n\r\n")
      if (headEnd === -1) {
        if (closed) finish(new Error(`the connection closed without a response: ${JSON.stringify(received.toString("latin1"))}`))
        return
      }
      const [statusLine = "", ...lines] = received.subarray(0, headEnd).toString("latin1").split("\r\n")
      const headers = new Headers(lines.map((line) => [line.slice(0, line.indexOf(":")).trim(), line.slice(line.indexOf(":") + 1).trim()]))
      const length = Number(headers.get("content-length"))
      const body = received.subarray(headEnd + 4, headEnd + 4 + length)
      if (body.length < length && !closed) return
      const status = Number(statusLine.split(" ")[1])
      receive("POST", uploadPath, new Response(status === 204 ? null : body, { status, headers })).then(
        (response) => finish({ response, elapsedMs: performance.now() - started }),
        (error: Error) => finish(error)
      )
    }
    const bound = setTimeout(() => finish(new Error(`no response within ${boundMs} ms`)), boundMs)
    socket.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk])
      parse(false)
    })
    // The server may answer and close while the body is still being written.
    socket.on("error", () => {})
    socket.on("close", () => parse(true))
    socket.write(head)
    send(socket, () => done)
  })

/** A request head for an upload, framed by Content-Length or (for `length` undefined) chunked. */
const uploadHead = (token: string, contentType: string, length?: number) =>
  `POST ${uploadPath} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\nContent-Type: ${contentType}\r\n` +
  (length === undefined ? "Transfer-Encoding: chunked" : `Content-Length: ${length}`) +
  "\r\n\r\n"

const chunk = (data: string | Buffer) => `${Buffer.byteLength(data).toString(16)}\r\n${data}\r\n`

const boundary = "basalt-test-boundary"
const multipart = `multipart/form-data; boundary=${boundary}`
const filePart = (name: string, content: string) =>
  `--${boundary}\r\nContent-Disposition: form-data; name="files"; filename="${name}"\r\nContent-Type: text/plain\r\n\r\n${content}\r\n`
const closing = `--${boundary}--\r\n`

describe("document upload", () => {
  let server: TestServer
  let ada: Person

  // This file's own temporary directory (the server runs in this process), to see what uploads
  // leave there. Made in beforeAll: a run that skips these tests skips afterAll too.
  let ownTmp: string
  const previousTmp = process.env.TMPDIR

  beforeAll(async () => {
    ownTmp = mkdtempSync(join(tmpdir(), "basalt-upload-test-"))
    process.env.TMPDIR = ownTmp
    server = await startServer(
      {
        BASALT_ALLOW_SIGNUP: "true",
        BASALT_UPLOAD_LIMIT: String(uploadLimit),
        BASALT_BODY_LIMIT: "16kb",
        BASALT_UPLOAD_TIMEOUT: `${uploadTimeoutSeconds} seconds`
      },
      { emptyDatabase: true }
    )
    await signUp(server, "admin")
    ada = await signUp(server, "ada")
  })
  afterAll(async () => {
    await server.stop()
    if (previousTmp === undefined) delete process.env.TMPDIR
    else process.env.TMPDIR = previousTmp
    rmSync(ownTmp, { recursive: true, force: true })
  })

  const upload = (form: FormData) =>
    server.request("/api/v1/documents/upload", { method: "POST", headers: { authorization: `Bearer ${ada.token}` }, body: form })
  const file = (bytes: Uint8Array | string, name: string, type = "application/octet-stream") =>
    [new Blob([typeof bytes === "string" ? bytes : Buffer.from(bytes)], { type }), name] as const
  const total = async () => (await ada.get("/api/v1/documents")).json().total as number
  const uploadDirs = () => readdirSync(ownTmp)
  const port = () => Number(new URL(server.url).port)
  /** A whole body at once, with Content-Length. */
  const rawUpload = (body: string, contentType = multipart) =>
    exchange(port(), uploadHead(ada.token, contentType, Buffer.byteLength(body)) + body).then(({ response }) => response)

  it("turns a PDF, a DOCX and a Markdown file into queued documents, with the form's fields, that then get indexed", async () => {
    const collection = (await server.request("/api/v1/collections", ada.json("POST", { name: "Uploads" }))).json()
    const form = new FormData()
    form.append("files", ...file(await buildPdf("Quarterly report", "Revenue grew in every region."), "report.pdf", "application/pdf"))
    form.append("files", ...file(await buildDocx("Design notes", "Sniffing reads the bytes."), "notes.docx"))
    form.append("files", ...file("# Runbook\n\nRestart the service.", "runbook.md", "text/markdown"))
    form.append("source", "local")
    form.append("tags", " Reports ")
    form.append("tags", "q3")
    form.append("collection_ids", collection.id)
    const response = await upload(form)
    expect(response.status).toBe(202)
    const items = response.json().items
    expect(items.map((d: { title: string }) => d.title)).toEqual(["Quarterly report", "Design notes", "Runbook"])
    for (const document of items) {
      expect(document).toMatchObject({ status: "queued", source: "local", tags: ["reports", "q3"], collection_ids: [collection.id] })
    }
    expect(items[0].metadata).toMatchObject({ file_name: "report.pdf", media_type: "application/pdf", page_count: 1 })
    expect(items[1].metadata).toMatchObject({ file_name: "notes.docx" })
    expect(items[2].content_length).toBeGreaterThan(10)
    for (const document of items) expect(await settled(ada, document.id)).toMatchObject({ status: "indexed", chunk_count: 1 })
  })

  it("sniffs the type from the bytes, not the name", async () => {
    const form = new FormData()
    form.append("files", ...file(await buildPdf("Disguised", "A PDF named as text."), "disguised.txt", "text/plain"))
    const response = await upload(form)
    expect(response.status).toBe(202)
    expect(response.json().items[0].metadata.media_type).toBe("application/pdf")
  })

  it("refuses an unsupported type with 415 and a corrupt file with 422 and the reason; stores none of the request", async () => {
    const before = await total()
    const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52])
    const unsupported = new FormData()
    unsupported.append("files", ...file("Fine text", "fine.txt"))
    unsupported.append("files", ...file(png, "picture.pdf"))
    const refused = await upload(unsupported)
    expect(refused.status).toBe(415)
    expect(refused.json().message).toMatch(/picture\.pdf/)

    const pdf = await buildPdf("Broken", "This file will be cut short.")
    const corrupt = new FormData()
    corrupt.append("files", ...file("Fine text", "fine.txt"))
    corrupt.append("files", ...file(pdf.slice(0, 400), "broken.pdf"))
    const unreadable = await upload(corrupt)
    expect(unreadable.status).toBe(422)
    expect(unreadable.json().message).toMatch(/broken\.pdf/)
    expect(unreadable.json().details[0].path).toBe("files.1")

    const empty = new FormData()
    empty.append("files", ...file("", "empty.txt"))
    expect((await upload(empty)).status).toBe(422)
    expect(await total()).toBe(before)
  })

  it("refuses a file over BASALT_UPLOAD_LIMIT with 413, though the JSON body limit is lower", async () => {
    const before = await total()
    const small = new FormData()
    small.append("files", ...file("word ".repeat(Math.floor(uploadLimit / 10)), "half.txt"))
    expect((await upload(small)).status).toBe(202)
    const big = new FormData()
    big.append("files", ...file("word ".repeat(Math.ceil(uploadLimit / 4)), "big.txt"))
    const response = await upload(big)
    expect(response.status).toBe(413)
    expect(response.json().error).toBe("payload_too_large")
    expect(await total()).toBe(before + 1)
  })

  it("refuses bad form fields and a form without files with 422", async () => {
    const noFiles = new FormData()
    noFiles.append("source", "local")
    expect((await upload(noFiles)).status).toBe(422)
    const badFields = new FormData()
    badFields.append("files", ...file("Text", "a.txt"))
    badFields.append("visibility", "secret")
    badFields.append("colour", "red")
    const response = await upload(badFields)
    expect(response.status).toBe(422)
    expect(new Set(response.json().details.map((d: { path: string }) => d.path))).toEqual(new Set(["colour", "visibility"]))
    const unknownCollection = new FormData()
    unknownCollection.append("files", ...file("Text", "a.txt"))
    unknownCollection.append("collection_ids", "00000000-0000-4000-8000-000000000000")
    expect((await upload(unknownCollection)).status).toBe(404)
  })

  it("leaves no temporary files behind", async () => {
    const before = uploadDirs()
    const form = new FormData()
    form.append("files", ...file("Temporary", "t.txt"))
    expect((await upload(form)).status).toBe(202)
    const failing = new FormData()
    failing.append("files", ...file(new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), "x.png"))
    expect((await upload(failing)).status).toBe(415)
    expect(uploadDirs()).toEqual(before)
  })

  it("refuses a file 10 times the limit and far beyond it with 413 naming the limit, sent at once or in many chunks", async () => {
    const before = await total()
    const expectOverLimit = (response: TestResponse) => {
      expect(response.status).toBe(413)
      expect(response.json()).toMatchObject({
        error: "payload_too_large",
        message: `A file is over the upload limit of ${uploadLimit} bytes`
      })
    }
    for (const times of [10, 200]) {
      const form = new FormData()
      form.append("files", ...file("small", "first.txt"))
      form.append("files", ...file(new Uint8Array(uploadLimit * times).fill(0x61), "huge.txt"))
      expectOverLimit(await upload(form))
    }
    // Chunk after chunk (16 KB each, as a slow client sends), so that the limit is passed while
    // the file is being written.
    const { response } = await exchange(port(), uploadHead(ada.token, multipart), (socket, answered) => {
      socket.write(chunk(`--${boundary}\r\nContent-Disposition: form-data; name="files"; filename="trickle.txt"\r\n\r\n`))
      let sent = 0
      const next = () => {
        if (answered() || socket.destroyed || sent >= uploadLimit * 10) return
        sent += 16 * 1024
        socket.write(chunk("a".repeat(16 * 1024)), () => setTimeout(next, 1))
      }
      next()
    })
    expectOverLimit(response)
    expect(await total()).toBe(before)
    expect(spoolDirectories(ownTmp)).toEqual([])
  })

  it("names the limit that was reached: parts, files", async () => {
    const fields = new FormData()
    fields.append("files", ...file("Text", "a.txt"))
    for (let i = 0; i < 170; i++) fields.append("tags", `tag${i}`)
    const tooManyParts = await upload(fields)
    expect(tooManyParts.status).toBe(413)
    expect(tooManyParts.json().message).toBe("The upload has more than 160 parts (at most 100 files, and the form fields)")

    const files = new FormData()
    for (let i = 0; i < 101; i++) files.append("files", ...file(`File ${i}`, `f${i}.txt`))
    const tooManyFiles = await upload(files)
    expect(tooManyFiles.status).toBe(413)
    expect(tooManyFiles.json().message).toBe("At most 100 files per upload")
  })

  it("answers a malformed multipart body with 400 in the error shape, never 5xx", async () => {
    const malformed = async (body: string, reason: RegExp, contentType = multipart) => {
      const response = await rawUpload(body, contentType)
      expect(response.status).toBe(400)
      expect(response.json().error).toBe("malformed_body")
      expect(response.json().message).toMatch(reason)
    }
    const part = filePart("a.txt", "hello") + closing
    await malformed(part, /no boundary/, "multipart/form-data")
    await malformed(part, /no boundary/, "multipart/form-data; boundary=")
    // The headers of the first part never end: no blank line before its content.
    await malformed(`--${boundary}\r\nContent-Disposition: form-data; name="files"; filename="a.txt"\r\nhello\r\n${closing}`, /blank line/)
    await malformed(filePart("a.txt", "hello"), /before its closing boundary/)
    await malformed("", /before its closing boundary/)
    await malformed("not multipart at all", /before its closing boundary/)
    await malformed(`--${boundary}\r\nContent-Disposition: attachment; filename="a.txt"\r\n\r\nhello\r\n${closing}`, /no name/)
    await malformed(
      `--${boundary}\r\nContent-Disposition: form-data; name="files"; filename="${"a".repeat(100_000)}"\r\n\r\nx\r\n${closing}`,
      /headers/
    )
    expect(spoolDirectories(ownTmp)).toEqual([])
  })

  it(`answers 408 when the body stalls mid-way, never sends its closing boundary, or trickles past BASALT_UPLOAD_TIMEOUT`, {
    timeout: 60_000
  }, async () => {
    const before = await total()
    const [stalled, unclosed, trickling] = await Promise.all([
      // Declares more than it sends, and stops half-way through a file.
      exchange(port(), uploadHead(ada.token, multipart, 100_000), (socket) => {
        socket.write(filePart("half.txt", "half ".repeat(2000)).slice(0, 5000))
      }),
      // Every part, then neither the closing boundary nor the end of the chunked body.
      exchange(port(), uploadHead(ada.token, multipart), (socket) => {
        socket.write(chunk(filePart("whole.txt", "All of it.")))
      }),
      // Keeps sending a little, so only a bound on the whole body ends it.
      exchange(port(), uploadHead(ada.token, multipart), (socket, answered) => {
        socket.write(chunk(`--${boundary}\r\nContent-Disposition: form-data; name="files"; filename="slow.txt"\r\n\r\n`))
        const drip = setInterval(() => {
          if (answered() || socket.destroyed) clearInterval(drip)
          else socket.write(chunk("drip "))
        }, 200)
      })
    ])
    for (const { response, elapsedMs } of [stalled, unclosed, trickling]) {
      expect(response.status).toBe(408)
      expect(response.json()).toMatchObject({
        error: "request_timeout",
        message: `The upload did not arrive in full within ${uploadTimeoutSeconds} seconds`
      })
      expect(response.headers.get("connection")).toBe("close")
      expect(elapsedMs).toBeGreaterThanOrEqual(uploadTimeoutSeconds * 1000 - 100)
      // Bounded by the setting, not by Node's own five-minute request timeout.
      expect(elapsedMs).toBeLessThan(uploadTimeoutSeconds * 1000 + 15_000)
    }
    expect(await total()).toBe(before)
    expect(spoolDirectories(ownTmp)).toEqual([])
  })

  it("removes the spool directory when the client goes away mid-upload", async () => {
    const socket = connect(port(), "127.0.0.1")
    socket.on("error", () => {})
    socket.write(uploadHead(ada.token, multipart, 1_000_000) + filePart("gone.txt", "going ".repeat(4000)).slice(0, 20_000))
    const deadline = Date.now() + 15_000
    while (spoolDirectories(ownTmp).length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    expect(spoolDirectories(ownTmp)).toHaveLength(1)
    socket.destroy()
    while (spoolDirectories(ownTmp).length > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    expect(spoolDirectories(ownTmp)).toEqual([])
  })

  it("refuses HTML nested 15,000 deep with 422 naming the file, as it does any unreadable file", async () => {
    const form = new FormData()
    form.append("files", ...file("<i>".repeat(15_000) + "deep", "deep.html"))
    const response = await upload(form)
    expect(response.status).toBe(422)
    expect(response.json().message).toBe("deep.html: The HTML file could not be read: its content is nested more than 1000 levels deep")
    expect(response.json().details).toEqual([{ path: "files.0", message: "its content is nested more than 1000 levels deep" }])
  })

  it("stores the text of files without U+0000 and lone surrogates, and refuses a file name with them", async () => {
    const form = new FormData()
    form.append("files", ...file(JSON.stringify({ title: "Nul\u0000 and \ud800 half", body: "a\u0000b \udc00" }), "escapes.json"))
    const response = await upload(form)
    expect(response.status).toBe(202)
    const [document] = response.json().items
    expect(document.title).toBe("Nul and \ufffd half")
    expect(document.content_length).toBe(Buffer.byteLength("title: Nul and \ufffd half\nbody: ab \ufffd"))
    expect((await ada.get(`/api/v1/documents/${document.id}`)).json().title).toBe("Nul and \ufffd half")

    const named = await rawUpload(
      `--${boundary}\r\nContent-Disposition: form-data; name="files"; filename*=UTF-8''a%00b.txt\r\n\r\nhello\r\n${closing}`
    )
    expect(named.status).toBe(422)
    expect(named.json().details).toEqual([
      { path: "files.0", message: "The file name contains the character U+0000 (NUL), which cannot be stored" }
    ])
  })

  it("declares the files as binary in the contract, so that Swagger UI and generated clients send files", () => {
    const contract = parseYaml(readFileSync(new URL("../openapi.yaml", import.meta.url), "utf8"))
    const body = contract.paths[uploadPath].post.requestBody.content["multipart/form-data"].schema
    const schema = contract.components.schemas[body.$ref.split("/").at(-1)]
    expect(schema.properties.files.items).toEqual({ type: "string", format: "binary", contentMediaType: "application/octet-stream" })
  })
})

/**
 * The server as a process (as `npm start` runs it), for what only a process shows: what it
 * leaves on disk when a signal stops it.
 */
describe("upload spool directories left by a process that was killed", () => {
  it("are removed when old, at start, and nothing else is", async () => {
    const previousTmp = process.env.TMPDIR
    const shared = mkdtempSync(join(tmpdir(), "basalt-spool-sweep-"))
    const make = (name: string, ageHours: number) => {
      const path = join(shared, name)
      mkdirSync(path)
      writeFileSync(join(path, "0"), "bytes of an upload")
      const at = new Date(Date.now() - ageHours * 3_600_000)
      utimesSync(path, at, at)
      return path
    }
    const stale = make("basalt-upload-stale", 7)
    const live = make("basalt-upload-live", 0)
    const foreign = make("someone-elses-old-directory", 30)
    process.env.TMPDIR = shared
    const server = await startServer({}, { emptyDatabase: true })
    try {
      for (let waited = 0; existsSync(stale) && waited < 10_000; waited += 50) await new Promise((resolve) => setTimeout(resolve, 50))
      expect(existsSync(stale)).toBe(false)
      expect([existsSync(live), existsSync(foreign)]).toEqual([true, true])
    } finally {
      await server.stop()
      if (previousTmp === undefined) delete process.env.TMPDIR
      else process.env.TMPDIR = previousTmp
      rmSync(shared, { recursive: true, force: true })
    }
  })
})

describe("document upload cut by shutdown", () => {
  const repoRoot = new URL("..", import.meta.url).pathname
  const directories: Array<string> = []
  const children: Array<ChildProcess> = []
  afterAll(() => {
    for (const child of children) child.kill("SIGKILL")
    for (const directory of directories) rmSync(directory, { recursive: true, force: true })
  })

  it("removes the spool directory of an upload the shutdown grace period cuts", { timeout: 150_000 }, async () => {
    const spool = mkdtempSync(join(tmpdir(), "basalt-spool-test-"))
    const dataDir = mkdtempSync(join(tmpdir(), "basalt-upload-shutdown-"))
    directories.push(spool, dataDir)
    const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
      cwd: repoRoot,
      env: {
        PATH: process.env.PATH ?? "",
        HOME: process.env.HOME ?? tmpdir(),
        // Where the server spools uploads (and tsx keeps its cache).
        TMPDIR: spool,
        PORT: "0",
        HOST: "127.0.0.1",
        BASALT_DATA_DIR: dataDir,
        BASALT_ALLOW_SIGNUP: "true",
        BASALT_SHUTDOWN_GRACE: "1 second",
        BASALT_UPLOAD_TIMEOUT: "5 minutes",
        ...(process.env.DATABASE_URL ? { DATABASE_URL: process.env.DATABASE_URL } : {})
      },
      stdio: ["ignore", "pipe", "pipe"]
    })
    children.push(child)
    let stdout = ""
    child.stdout!.setEncoding("utf8").on("data", (text: string) => {
      stdout += text
    })
    child.stderr!.resume()
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once("exit", (code, signal) => resolve({ code, signal }))
    )
    const until = async (condition: () => boolean, what: string, boundMs = 90_000) => {
      const deadline = Date.now() + boundMs
      while (!condition()) {
        if (child.exitCode !== null) throw new Error(`the server exited before ${what}:\n${stdout}`)
        if (Date.now() > deadline) throw new Error(`not ${what} within ${boundMs} ms:\n${stdout}`)
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    }
    const listening = () => /"Basalt listening on http:\/\/[^:]+:(\d+)/.exec(stdout)
    await until(() => listening() !== null, "listening")
    const port = Number(listening()![1])
    const url = `http://127.0.0.1:${port}`
    const call = async (path: string, body: unknown) =>
      receive(
        "POST",
        path,
        await fetch(`${url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })
      )
    const credentials = { email: "spool@example.com", password: "spool password long" }
    const registered = await call("/api/v1/auth/register", { ...credentials, display_name: "Spool" })
    // An account from an earlier run on a shared Postgres database logs in instead.
    expect([201, 409]).toContain(registered.status)
    const { access_token: token } = (await call("/api/v1/auth/login", credentials)).json()

    // Uploads in flight, their bytes spooled: one stalls half-way through a file, the others keep
    // arriving slowly after 90 whole files. The process used to exit before such directories were
    // removed (the more files, the likelier).
    const stalled = connect(port, "127.0.0.1")
    stalled.on("error", () => {})
    stalled.write(uploadHead(token, multipart, 1_000_000) + filePart("stalled.txt", "cut ".repeat(10_000)).slice(0, 30_000))
    const trickling = Array.from({ length: 8 }, (_, i) => {
      const socket = connect(port, "127.0.0.1")
      socket.on("error", () => {})
      const whole = Array.from({ length: 90 }, (_, file) => filePart(`whole-${file}.txt`, "whole ".repeat(100))).join("")
      socket.write(uploadHead(token, multipart, 10_000_000) + whole + filePart(`trickling-${i}.txt`, "").slice(0, -2))
      return socket
    })
    const drip = setInterval(() => {
      for (const socket of trickling) socket.write("drip ".repeat(200))
    }, 50)
    const spooledFiles = () => spoolDirectories(spool).filter((directory) => readdirSync(join(spool, directory)).length > 0)
    try {
      await until(() => spooledFiles().length === 1 + trickling.length, "spooling every upload", 30_000)
      child.kill("SIGTERM")
      const exit = await Promise.race([
        exited,
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error("the server did not exit within 60 s")), 60_000).unref())
      ])
      expect(exit).toEqual({ code: 0, signal: null })
    } finally {
      clearInterval(drip)
      for (const socket of [stalled, ...trickling]) socket.destroy()
    }
    expect(stdout).toContain(`shutdown grace period over: cutting ${1 + trickling.length} request(s)`)
    expect(spoolDirectories(spool)).toEqual([])
  })
})
