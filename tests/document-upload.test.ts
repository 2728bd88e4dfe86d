/**
 * Uploads: real PDF and DOCX files built by pdfkit and docx, text formats, types sniffed from
 * the bytes (not the name), the per-file limit (413), unsupported types (415), corrupt files
 * (422 with the parser's reason), form fields, and nothing stored when one file fails.
 */
import { mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Document, HeadingLevel, Packer, Paragraph } from "docx"
import PDFDocument from "pdfkit"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Person, settled, signUp } from "./support/people.ts"
import { startServer, type TestServer } from "./support/server.ts"

const buildPdf = (title: string, text: string) =>
  new Promise<Uint8Array>((resolve, reject) => {
    const pdf = new PDFDocument({ info: { Title: title } })
    const chunks: Array<Buffer> = []
    pdf.on("data", (chunk: Buffer) => chunks.push(chunk))
    pdf.on("end", () => resolve(new Uint8Array(Buffer.concat(chunks))))
    pdf.on("error", reject)
    pdf.fontSize(12).text(text)
    pdf.end()
  })

const buildDocx = async (heading: string, text: string) =>
  new Uint8Array(
    await Packer.toBuffer(
      new Document({
        sections: [{ children: [new Paragraph({ text: heading, heading: HeadingLevel.HEADING_1 }), new Paragraph(text)] }]
      })
    )
  )

const uploadLimit = 64 * 1024

describe("document upload", () => {
  let server: TestServer
  let ada: Person

  // This file's own temporary directory (the server runs in this process), to see what uploads leave there.
  const ownTmp = mkdtempSync(join(tmpdir(), "basalt-upload-test-"))
  const previousTmp = process.env.TMPDIR

  beforeAll(async () => {
    process.env.TMPDIR = ownTmp
    server = await startServer(
      { BASALT_ALLOW_SIGNUP: "true", BASALT_UPLOAD_LIMIT: String(uploadLimit), BASALT_BODY_LIMIT: "16kb" },
      { emptyDatabase: true }
    )
    await signUp(server, "admin")
    ada = await signUp(server, "ada")
  })
  afterAll(async () => {
    await server.stop()
    process.env.TMPDIR = previousTmp
    rmSync(ownTmp, { recursive: true, force: true })
  })

  const upload = (form: FormData) =>
    server.request("/api/v1/documents/upload", { method: "POST", headers: { authorization: `Bearer ${ada.token}` }, body: form })
  const file = (bytes: Uint8Array | string, name: string, type = "application/octet-stream") =>
    [new Blob([typeof bytes === "string" ? bytes : Buffer.from(bytes)], { type }), name] as const
  const total = async () => (await ada.get("/api/v1/documents")).json().total as number
  const uploadDirs = () => readdirSync(ownTmp)

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
})
