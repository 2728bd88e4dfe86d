/**
 * Document extraction: sniffing from the bytes, text and titles from every format, refusals with
 * reasons, limits. PDFs and DOCX files are built here by pdfkit and docx, ZIPs by JSZip: real
 * files, never bytes typed by hand (PNG's magic number aside).
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { gzipSync } from "node:zlib"
import { Document, HeadingLevel, Packer, Paragraph, Table, TableCell, TableRow, TextRun } from "docx"
import { Effect, Result } from "effect"
import JSZip from "jszip"
import { buildPdf } from "./support/pdfFiles.ts"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type ExtractedDocument, extractBytes, extractFile, type ExtractionLimits } from "../src/documents/extraction/Extraction.ts"
import type { ExtractionError } from "../src/documents/extraction/ExtractionErrors.ts"
import { maxElementDepth } from "../src/documents/extraction/HtmlText.ts"
import { sniffBytes } from "../src/documents/extraction/Sniff.ts"

// -- Builders ----------------------------------------------------------------------------------

const designNotes = (title?: string) =>
  new Document({
    ...(title === undefined ? {} : { title }),
    sections: [
      {
        children: [
          new Paragraph({ text: "Architecture", heading: HeadingLevel.HEADING_1 }),
          new Paragraph({
            children: [new TextRun("Basalt indexes "), new TextRun({ text: "uploaded", bold: true }), new TextRun(" documents & more.")]
          }),
          new Paragraph({ text: "Details", heading: HeadingLevel.HEADING_2 }),
          new Paragraph({ text: "Sniffing reads the bytes", bullet: { level: 0 } }),
          new Paragraph({ text: "Parsers are maintained", bullet: { level: 0 } }),
          new Table({
            rows: [
              new TableRow({
                children: [new TableCell({ children: [new Paragraph("Format")] }), new TableCell({ children: [new Paragraph("Parser")] })]
              }),
              new TableRow({
                children: [new TableCell({ children: [new Paragraph("PDF")] }), new TableCell({ children: [new Paragraph("unpdf")] })]
              })
            ]
          })
        ]
      }
    ]
  })

const buildDocx = async (document: Document) => new Uint8Array(await Packer.toBuffer(document))

const buildZip = async (entries: Record<string, string | Uint8Array>) => {
  const zip = new JSZip()
  for (const [name, content] of Object.entries(entries)) zip.file(name, content)
  return zip.generateAsync({ type: "uint8array", compression: "DEFLATE" })
}

/** A valid DOCX with one part replaced: a file every ZIP reader opens but Word would not. */
const replacePart = async (docx: Uint8Array, name: string, content: string) => {
  const zip = await JSZip.loadAsync(docx)
  zip.file(name, content)
  return zip.generateAsync({ type: "uint8array", compression: "DEFLATE" })
}

// -- Running -----------------------------------------------------------------------------------

let dir: string
let counter = 0
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "basalt-extraction-"))
})
afterAll(() => rm(dir, { recursive: true, force: true }))

/** Writes the upload as the route would (to a temp file of its own), keeping the declared name apart. */
const upload = async (content: string | Uint8Array) => {
  const path = join(dir, `upload-${++counter}`)
  await writeFile(path, content)
  return path
}

const extract = async (
  declaredName: string,
  content: string | Uint8Array,
  limits?: Partial<ExtractionLimits>
): Promise<Result.Result<ExtractedDocument, ExtractionError>> =>
  Effect.runPromise(Effect.result(extractFile(await upload(content), declaredName, limits)))

const extracted = async (declaredName: string, content: string | Uint8Array, limits?: Partial<ExtractionLimits>) => {
  const result = await extract(declaredName, content, limits)
  if (Result.isFailure(result)) throw new Error(`expected text from ${declaredName}, got ${result.failure.message}`)
  return result.success
}

const refused = async (declaredName: string, content: string | Uint8Array, limits?: Partial<ExtractionLimits>) => {
  const result = await extract(declaredName, content, limits)
  if (Result.isSuccess(result)) throw new Error(`expected ${declaredName} to be refused, got ${result.success.format}`)
  return result.failure
}

const unsupported = async (declaredName: string, content: string | Uint8Array) => {
  const error = await refused(declaredName, content)
  if (error._tag !== "UnsupportedFileType") throw new Error(`expected UnsupportedFileType, got ${error._tag}: ${error.message}`)
  return error
}

const corrupt = async (declaredName: string, content: string | Uint8Array) => {
  const error = await refused(declaredName, content)
  if (error._tag !== "CorruptFile") throw new Error(`expected CorruptFile, got ${error._tag}: ${error.message}`)
  // One readable sentence: no stack, no second line.
  expect(error.reason).not.toMatch(/\n|\bat \S+ \(|node_modules/)
  expect(error.reason.length).toBeLessThanOrEqual(200)
  return error
}

const sniffed = (declaredName: string, content: string | Uint8Array) =>
  Effect.runPromise(
    Effect.result(sniffBytes(typeof content === "string" ? new TextEncoder().encode(content) : content, declaredName))
  ).then((result) => (Result.isSuccess(result) ? result.success : result.failure._tag))

const html = `<!DOCTYPE html>
<!-- generated by a CMS -->
<html lang="en">
<head>
  <title>Basalt &amp; Friends</title>
  <style>body { color: red } .leak-style { display: none }</style>
  <script>var leakedScript = "function should never appear"</script>
</head>
<body>
  <nav><a href="/">Home</a> <a href="/leak-nav">Navigation link</a></nav>
  <h1>Search &eacute;verywhere</h1>
  <p>Basalt finds&nbsp;documents
     across <b>every</b> team.</p>
  <template><p>Template leak</p></template>
  <div hidden>Hidden leak</div>
  <h2>Features</h2>
  <ul><li>Hybrid ranking</li><li>Chunked <em>indexing</em></li></ul>
  <table><tr><th>Plan</th><th>Price</th></tr><tr><td>Team</td><td>&euro;10</td></tr></table>
  <script type="module">console.log("module leak")</script>
  <noscript>Enable JavaScript leak</noscript>
</body>
</html>`

// -- Sniffing ----------------------------------------------------------------------------------

describe("sniffing decides from the bytes", () => {
  it("recognises every accepted format from its content", async () => {
    const pdf = await buildPdf([{ heading: "Sniff", body: "me" }])
    const docx = await buildDocx(designNotes())
    expect(await sniffed("a.pdf", pdf)).toBe("pdf")
    expect(await sniffed("a.docx", docx)).toBe("docx")
    expect(await sniffed("a.html", html)).toBe("html")
    expect(await sniffed("a", "\uFEFF  <!-- c -->\n<html><body>x</body></html>")).toBe("html")
    expect(await sniffed("a", '<?xml version="1.0"?>\n<!DOCTYPE html>\n<html><body>x</body></html>')).toBe("html")
    expect(await sniffed("a.json", '{"a": 1}')).toBe("json")
    expect(await sniffed("a.csv", "name,role\nAda,engineer\n")).toBe("csv")
    expect(await sniffed("export", "id;name;city\n1;Ada;London\n2;Grace;Arlington\n3;Alan;Wilmslow\n")).toBe("csv")
    expect(await sniffed("a.md", "Just a line of text")).toBe("md")
    expect(await sniffed("notes", "# Heading\n\nBody text")).toBe("md")
    expect(await sniffed("a.txt", "Plain words, nothing more.")).toBe("txt")
    expect(await sniffed("a.txt", "# Looks like markdown\nbut the name says text")).toBe("txt")
    // Between textual formats the name is a hint the content can overrule.
    expect(await sniffed("table.csv", "Dear team, the numbers are in.\nThanks.\nAda")).toBe("txt")
    expect(await sniffed("page.html", "Intro line, then <b>markup</b>.")).toBe("html")
  })

  it("believes the bytes, not a lying name, in both directions", async () => {
    const pdf = await buildPdf([{ heading: "Actually a PDF", body: "Despite the name." }])
    const docx = await buildDocx(designNotes("Really a DOCX"))

    const htmlAsPdf = await extracted("report.pdf", html)
    expect(htmlAsPdf.format).toBe("html")
    expect(htmlAsPdf.text).toContain("# Search éverywhere")

    const pdfAsText = await extracted("x.txt", pdf)
    expect(pdfAsText.format).toBe("pdf")
    expect(pdfAsText.text).toContain("Actually a PDF")

    const docxAsJson = await extracted("data.json", docx)
    expect(docxAsJson.format).toBe("docx")
    expect(docxAsJson.title).toBe("Really a DOCX")

    const markdownAsDocx = await extracted("letter.docx", "# Not Word\n\nJust Markdown text.")
    expect(markdownAsDocx.format).toBe("md")
    expect(markdownAsDocx.text).toContain("Just Markdown text.")

    const pngAsText = await unsupported("notes.txt", pngBytes)
    expect(pngAsText.detected).toBe("PNG image")
  })
})

// A PNG's signature and the start of its IHDR chunk: enough for any reader to call it a PNG.
const pngBytes = new Uint8Array([
  0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89
])

/** Deterministic noise: the same "random" bytes on every run. */
const noise = (length: number) => {
  const bytes = new Uint8Array(length)
  let state = 0x2545f491
  for (let i = 0; i < length; i++) {
    state ^= state << 13
    state ^= state >>> 17
    state ^= state << 5
    bytes[i] = state & 0xff
  }
  return bytes
}

// -- Refusals ----------------------------------------------------------------------------------

describe("unsupported types are refused with what they are (415)", () => {
  it("names images, archives, executables and other binary formats", async () => {
    expect((await unsupported("photo.jpg", pngBytes)).detected).toBe("PNG image")
    const jpeg = await unsupported("x.txt", new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46]))
    expect(jpeg.detected).toBe("JPEG image")
    expect((await unsupported("a.gif", new TextEncoder().encode("GIF89a\u0001\u0000"))).detected).toBe("GIF image")
    expect((await unsupported("notes.txt.gz", gzipSync("compressed words"))).detected).toBe("gzip archive")
    const elf = await unsupported("tool.md", new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, 0, 0, 0, 0]))
    expect(elf.detected).toBe("executable (ELF)")
    const random = await unsupported("data.csv", noise(4096))
    expect(random.detected).toBe("binary file")
    expect(random.message).toContain("not a supported type")
    expect(random.message).toContain("PDF, DOCX")
  })

  it("tells a DOCX from other ZIP archives by their entries", async () => {
    const xlsx = await buildZip({
      "[Content_Types].xml": "<Types/>",
      "xl/workbook.xml": "<workbook/>",
      "xl/worksheets/sheet1.xml": "<worksheet/>"
    })
    const error = await unsupported("budget.docx", xlsx)
    expect(error.detected).toBe("ZIP archive that is not a DOCX: it looks like an Excel workbook (XLSX)")
    expect(error.message).toContain("The file is a ZIP archive that is not a DOCX")

    const pptx = await buildZip({ "[Content_Types].xml": "<Types/>", "ppt/presentation.xml": "<p/>" })
    expect((await unsupported("deck.docx", pptx)).detected).toContain("PowerPoint presentation")

    const jar = await buildZip({ "META-INF/MANIFEST.MF": "Manifest-Version: 1.0\n", "App.class": noise(64) })
    expect((await unsupported("app.docx", jar)).detected).toContain("Java archive")

    const plain = await buildZip({ "readme.txt": "hello", "word/notes.txt": "a folder named word is not enough" })
    expect((await unsupported("files.zip", plain)).detected).toBe("ZIP archive that is not a DOCX")
  })

  it("refuses text that is not UTF-8, and XML that is not HTML", async () => {
    const latin1 = Buffer.from("Caf\u00e9 cr\u00e8me, na\u00efve fa\u00e7ade, r\u00e9sum\u00e9.", "latin1")
    expect((await unsupported("menu.txt", latin1)).detected).toContain("not UTF-8")
    const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from("hello world", "utf16le")])
    expect((await unsupported("hello.txt", utf16)).detected).toContain("UTF-16")
    // Valid in the head that sniffing reads, invalid further on.
    const lateInvalid = Buffer.concat([Buffer.from("ok line\n".repeat(4000)), Buffer.from([0xc3, 0x28])])
    expect((await unsupported("long.txt", lateInvalid)).detected).toContain("not entirely UTF-8")
    expect((await unsupported("feed.html", '<?xml version="1.0"?><rss><channel/></rss>')).detected).toBe("XML document")
    expect((await unsupported("logo.html", '<svg xmlns="http://www.w3.org/2000/svg"></svg>')).detected).toBe("SVG image")
  })
})

describe("corrupt files are refused with the parser's reason (422)", () => {
  it("an empty file, or one with no text", async () => {
    expect((await corrupt("empty.pdf", "")).reason).toBe("the file is empty")
    const blank = await corrupt("blank.txt", " \n\t\n ")
    expect(blank.reason).toBe("it contains no text")
    const scanned = await corrupt("scan.pdf", await buildPdf([], { drawingOnly: true }))
    expect(scanned.reason).toContain("no text layer")
  })

  it("a password-protected PDF", async () => {
    const locked = await buildPdf([{ heading: "Secret", body: "Salaries" }], { userPassword: "hunter2" })
    const error = await corrupt("locked.pdf", locked)
    expect(error.format).toBe("pdf")
    expect(error.reason).toBe("it is protected by a password")
    expect(error.message).toBe("The PDF could not be read: it is protected by a password")
  })

  it("a truncated or broken PDF", async () => {
    const whole = await buildPdf([
      { heading: "Complete", body: "A whole document." },
      { heading: "Two", body: "More." }
    ])
    const truncated = await corrupt("cut.pdf", whole.subarray(0, Math.floor(whole.length * 0.7)))
    expect(truncated.reason).toContain("truncated")
    const broken = await corrupt("broken.pdf", "%PDF-1.7\nthese are not PDF objects\n%%EOF\n")
    expect(broken.reason).toBe("its structure is invalid")
  })

  it("a truncated DOCX, and one whose document part is not XML", async () => {
    const docx = await buildDocx(designNotes("Whole"))
    const truncated = await corrupt("cut.docx", docx.subarray(0, Math.floor(docx.length / 2)))
    expect(truncated.format).toBe("docx")
    expect(truncated.reason).toContain("truncated")
    const mangled = await corrupt("mangled.docx", await replacePart(docx, "word/document.xml", "<w:document><w:body"))
    expect(mangled.format).toBe("docx")
    expect(mangled.reason).toMatch(/^its Word XML is malformed \(.+\)$/)
  })

  it("invalid JSON and CSV name the problem", async () => {
    const json = await corrupt("config.json", '{"name": "basalt", "tags": ["search",]}')
    expect(json.reason).toMatch(/^it is not valid JSON \(.+\)$/)
    const csv = await corrupt("people.csv", 'name,quote\nAda,"never closed\nGrace,ok\n')
    expect(csv.format).toBe("csv")
    expect(csv.reason).toMatch(/quote/i)
  })
})

// -- Extraction --------------------------------------------------------------------------------

describe("each format's text and title", () => {
  it("plain text as written, with newlines normalised", async () => {
    const doc = await extracted("notes.txt", "\uFEFFFirst line\r\nSecond line\rThird line\n")
    expect(doc).toEqual({
      format: "txt",
      mediaType: "text/plain",
      title: null,
      text: "First line\nSecond line\nThird line",
      pageCount: null,
      pageStarts: null
    })
  })

  it("Markdown kept as Markdown, titled by its first level-1 heading outside code", async () => {
    const markdown = "```sh\n# not a heading\n```\n\nIntro paragraph.\n\n# Basalt Guide\n\n## Install\n\nRun `npm ci`.\n"
    const doc = await extracted("guide.md", markdown)
    expect(doc.format).toBe("md")
    expect(doc.title).toBe("Basalt Guide")
    expect(doc.text).toContain("## Install")
    expect(doc.text).toContain("Run `npm ci`.")
    expect((await extracted("post.md", '---\ntitle: "From Front Matter"\n---\n\nBody\n')).title).toBe("From Front Matter")
  })

  it("HTML as Markdown-like text: headings, paragraphs, lists, tables, entities; no scripts or styles", async () => {
    const doc = await extracted("page.html", html)
    expect(doc.format).toBe("html")
    expect(doc.title).toBe("Basalt & Friends")
    expect(doc.text).toBe(
      [
        "# Search éverywhere",
        "Basalt finds documents across every team.",
        "## Features",
        "- Hybrid ranking\n- Chunked indexing",
        "Plan | Price\nTeam | €10"
      ].join("\n\n")
    )
    for (const leak of ["leak", "function", "color", "console", "Home", "JavaScript"]) expect(doc.text).not.toContain(leak)

    const untitled = await extracted("fragment.html", "<div><h1>First Heading</h1><p>text</p></div>")
    expect(untitled.title).toBe("First Heading")
    // No <head>: the title is still the title, not body text.
    const bare = await extracted("bare.html", "<!doctype html><title>Bare</title><h1>Top</h1><p>Body</p>")
    expect(bare).toMatchObject({ title: "Bare", text: "# Top\n\nBody" })
    const nested = await extracted("lists.html", "<ol><li>One<ul><li>One a</li></ul></li><li>Two</li></ol><p>After</p>")
    expect(nested.text).toBe("1. One\n  - One a\n2. Two\n\nAfter")
  })

  it("PDF: every page's words, pages apart, the metadata title", async () => {
    const pdf = await buildPdf(
      [
        { heading: "Quarterly Report", body: "Revenue grew in every region." },
        { heading: "Outlook", body: "Hiring continues next quarter." }
      ],
      { title: "Q3 Report" }
    )
    const doc = await extracted("q3.pdf", pdf)
    expect(doc.format).toBe("pdf")
    expect(doc.mediaType).toBe("application/pdf")
    expect(doc.title).toBe("Q3 Report")
    expect(doc.pageCount).toBe(2)
    expect(doc.text).toBe("Quarterly Report\nRevenue grew in every region.\n\nOutlook\nHiring continues next quarter.")
    expect((await extracted("untitled.pdf", await buildPdf([{ heading: "H", body: "B" }]))).title).toBeNull()
  })

  it("PDF: where each page begins in the text, a blank page where the next one's text does", async () => {
    const pdf = await buildPdf([
      { heading: "Scope", body: "This policy covers laptops." },
      { heading: "", body: "" },
      { heading: "Rotation", body: "Keys rotate every 90 days." },
      { heading: "", body: "" }
    ])
    const doc = await extracted("policy.pdf", pdf)
    expect(doc.pageCount).toBe(4)
    expect(doc.text).toBe("Scope\nThis policy covers laptops.\n\nRotation\nKeys rotate every 90 days.")
    const rotation = doc.text.indexOf("Rotation")
    expect(doc.pageStarts).toEqual([0, rotation, rotation, doc.text.length])
    // Formats without pages have none.
    expect((await extracted("notes.md", "# Notes\n\nText.")).pageStarts).toBeNull()
  })

  it("DOCX: headings as Markdown, lists, tables, the core properties title", async () => {
    const doc = await extracted("design.docx", await buildDocx(designNotes("Design Notes")))
    expect(doc.format).toBe("docx")
    expect(doc.title).toBe("Design Notes")
    expect(doc.text).toBe(
      [
        "# Architecture",
        "Basalt indexes uploaded documents & more.",
        "## Details",
        "- Sniffing reads the bytes\n- Parsers are maintained",
        "Format | Parser\nPDF | unpdf"
      ].join("\n\n")
    )
    expect((await extracted("untitled.docx", await buildDocx(designNotes()))).title).toBe("Architecture")
  })

  it("CSV: each row as header: value lines, with quotes, embedded newlines and a BOM", async () => {
    const csv =
      '\uFEFFname,role,notes\r\nAda Lovelace,engineer,"wrote ""the first"" program"\r\n' +
      'Grace Hopper,admiral,"first line\nsecond line"\r\n"Turing, Alan",,"comma, inside"\r\n'
    const doc = await extracted("people.csv", csv)
    expect(doc.format).toBe("csv")
    expect(doc.mediaType).toBe("text/csv")
    expect(doc.text).toBe(
      [
        'name: Ada Lovelace\nrole: engineer\nnotes: wrote "the first" program',
        "name: Grace Hopper\nrole: admiral\nnotes: first line\nsecond line",
        "name: Turing, Alan\nnotes: comma, inside"
      ].join("\n\n")
    )
    const semicolons = await extracted("prices.csv", "item;price\nTea;2,50\nCake;3,10\n")
    expect(semicolons.text).toBe("item: Tea\nprice: 2,50\n\nitem: Cake\nprice: 3,10")
    const tabs = await extracted("export.tsv", "id\tcity\n1\tOslo\n")
    expect(tabs.text).toBe("id: 1\ncity: Oslo")
  })

  it("JSON: nested values as path: value lines, depth bounded, a top-level title", async () => {
    const json = JSON.stringify({
      title: "Basalt release",
      version: 3,
      stable: true,
      authors: [{ name: "Ada", roles: ["design", "review"] }, { name: "Grace" }],
      "odd key": null,
      empty: {},
      deep: { a: { b: { c: { d: "bottom" } } } }
    })
    const doc = await extracted("release.json", json, { maxJsonDepth: 3 })
    expect(doc.format).toBe("json")
    expect(doc.title).toBe("Basalt release")
    expect(doc.text.split("\n")).toEqual([
      "title: Basalt release",
      "version: 3",
      "stable: true",
      "authors[0].name: Ada",
      'authors[0].roles: ["design","review"]',
      "authors[1].name: Grace",
      '["odd key"]: null',
      "empty: {}",
      'deep.a.b: {"c":{"d":"bottom"}}'
    ])
    const bracketedText = await extracted("notes.txt", "[1] The first note.\n[2] The second note.")
    expect(bracketedText.format).toBe("txt")
    expect(bracketedText.text).toContain("The second note.")
  })

  it("extractBytes agrees with extractFile", async () => {
    const pdf = await buildPdf([{ heading: "Same", body: "Either way." }], { title: "Bytes" })
    const fromBytes = await Effect.runPromise(extractBytes(pdf, "same.pdf"))
    expect(fromBytes).toEqual(await extracted("same.pdf", pdf))
  })
})

// -- Limits and large inputs -------------------------------------------------------------------

describe("nesting, at any depth: refused or read, never a stack overflow", () => {
  const nested = (open: string, close: string, depth: number, inner = "deep text") => open.repeat(depth) + inner + close.repeat(depth)

  it("refuses HTML nested past the bound as unreadable (422), and reads it at the bound", async () => {
    expect(maxElementDepth).toBe(1000)
    // The heading and the paragraph are the 1000th level.
    const atBound = await extracted("bound.html", nested("<div>", "</div>", maxElementDepth - 1, "<h1>Deep title</h1><p>deep text</p>"))
    expect(atBound).toMatchObject({ title: "Deep title", text: "# Deep title\n\ndeep text" })
    const pastBound = await corrupt("past.html", nested("<div>", "</div>", maxElementDepth + 1))
    expect(pastBound).toMatchObject({ format: "html", reason: "its content is nested more than 1000 levels deep" })
    // 50,000 deep, in each place the walk reads differently: blocks, a heading's inline text,
    // list items, a table cell, unclosed tags the parser nests itself.
    const started = performance.now()
    for (const html of [
      nested("<div>", "</div>", 50_000),
      "<h1>" + "<b>".repeat(50_000) + "deep",
      "<ul><li>".repeat(50_000) + "deep",
      "<table><tr><td>" + "<span>".repeat(50_000),
      "<p>x<font>".repeat(50_000)
    ]) {
      expect((await corrupt("deep.html", html)).reason).toBe("its content is nested more than 1000 levels deep")
    }
    // Refused while parsing: the parser's cost grows with the depth, so it must stop early.
    expect(performance.now() - started).toBeLessThan(10_000)
  })

  it("reads HTML as wide as it is shallow: 200,000 list items and 500,000 line breaks in seconds", async () => {
    const started = performance.now()
    const list = await extracted("list.html", `<ol>${"<li>item".repeat(200_000)}</ol>`)
    expect(list.text.endsWith("199999. item\n200000. item")).toBe(true)
    const lines = await extracted("lines.html", `<p>${"x<br>".repeat(500_000)}</p>`)
    expect(lines.text.split("\n")).toHaveLength(500_000)
    // Numbering each item by searching its siblings took minutes for a list a tenth as long.
    expect(performance.now() - started).toBeLessThan(30_000)
  })

  it("DOCX: deep Word XML is unreadable (422), deep core properties only lose the title", async () => {
    const docx = await buildDocx(designNotes("Design Notes"))
    const zip = await JSZip.loadAsync(docx)
    const documentXml = await zip.file("word/document.xml")!.async("string")
    const deepTables = nested("<w:tbl><w:tr><w:tc>", "</w:tc></w:tr></w:tbl>", 20_000, "<w:p><w:r><w:t>deep</w:t></w:r></w:p>")
    const deepDocx = await replacePart(docx, "word/document.xml", documentXml.replace("<w:body>", `<w:body>${deepTables}`))
    expect((await corrupt("deep.docx", deepDocx)).reason).toMatch(/nested/)

    const core = `<?xml version="1.0"?><cp:coreProperties xmlns:cp="c" xmlns:dc="d">${nested("<x>", "</x>", 100_000, "")}<dc:title>Deep</dc:title></cp:coreProperties>`
    const deepCore = await extracted("core.docx", await replacePart(docx, "docProps/core.xml", core))
    expect(deepCore.title).toBe("Architecture")
    expect(deepCore.text).toContain("# Architecture")
  })

  it("JSON nested 100,000 deep is read (deep values shown compactly or not at all), and a deep PDF is unreadable", async () => {
    const arrays = await extracted("arrays.json", nested("[", "]", 100_000, "1"))
    expect(arrays.format).toBe("json")
    expect(arrays.text.startsWith("[0]".repeat(32))).toBe(true)
    const objects = await extracted("objects.json", nested('{"a":', "}", 100_000, '"bottom"'))
    expect(objects.text).toBe(`${Array(32).fill("a").join(".")}: (nested too deeply to show)`)

    const pdf = new TextEncoder().encode(
      `%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R /X ${nested("[", "]", 100_000, "")} >> endobj\n` +
        "2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    )
    expect((await corrupt("deep.pdf", pdf)).format).toBe("pdf")
  })
})

describe("text Postgres cannot store is cleaned from what files hold", () => {
  const unstorable = (text: string) => text.includes("\u0000") || !text.isWellFormed()

  it("removes U+0000 and replaces lone surrogates in JSON, DOCX and HTML text and titles", async () => {
    const json = await extracted("escapes.json", JSON.stringify({ title: "Ti\u0000tle \ud800", body: "a\u0000b \udfffc" }))
    expect(json).toMatchObject({ title: "Title \ufffd", text: "title: Title \ufffd\nbody: ab \ufffdc" })

    const docx = await buildDocx(designNotes())
    const zip = await JSZip.loadAsync(docx)
    const documentXml = await zip.file("word/document.xml")!.async("string")
    const withNul = await extracted(
      "nul.docx",
      await replacePart(docx, "word/document.xml", documentXml.replace("Architecture", "Archi&#0;tecture"))
    )
    expect(withNul.title).toBe("Architecture")
    expect(withNul.text).toContain("# Architecture")

    const html = await extracted("refs.html", "<title>A&#0;B&#xD800;</title><p>x&#0;y&#xDC00;z</p>")
    for (const document of [json, withNul, html]) {
      expect(unstorable(document.text)).toBe(false)
      expect(unstorable(document.title ?? "")).toBe(false)
    }
  })

  it("keeps a surrogate pair whole when the title is shortened", async () => {
    const title = "a".repeat(298) + "😀" + "b".repeat(10)
    const doc = await extracted("long-title.json", JSON.stringify({ title, body: "x" }))
    expect(doc.title).toBe("a".repeat(298) + "…")
    expect(doc.title!.isWellFormed()).toBe(true)
  })
})

describe("limits and large inputs", () => {
  let bigPdf: Uint8Array
  beforeAll(async () => {
    const pages = Array.from({ length: 200 }, (_, i) => ({
      heading: `Chapter ${i + 1}`,
      body: `Page ${i + 1} marker-${i + 1}. ` + "Basalt searches documents for the whole company. ".repeat(40)
    }))
    bigPdf = await buildPdf(pages, { title: "Two Hundred Pages" })
  })

  it("refuses more text than the character limit", async () => {
    const tooLong = await refused("long.txt", "word ".repeat(1000), { maxCharacters: 1000 })
    expect(tooLong).toMatchObject({ _tag: "ExtractionLimitExceeded", limit: "characters" })
    const manyRows = await refused("rows.csv", "a,b\n" + "1,2\n".repeat(500), { maxCharacters: 1000 })
    expect(manyRows).toMatchObject({ _tag: "ExtractionLimitExceeded", limit: "characters" })
    const longPdf = await refused("long.pdf", bigPdf, { maxCharacters: 10_000 })
    expect(longPdf).toMatchObject({ _tag: "ExtractionLimitExceeded", limit: "characters" })
  })

  it("refuses a DOCX that unpacks larger than allowed, and a file that takes too long", async () => {
    const docx = await buildDocx(designNotes())
    const bomb = await refused("big.docx", docx, { maxUnpackedBytes: 10_000 })
    expect(bomb).toMatchObject({ _tag: "ExtractionLimitExceeded", limit: "unpacked_size" })
    const slow = await refused("slow.pdf", bigPdf, { timeout: "1 millis" })
    expect(slow).toMatchObject({ _tag: "ExtractionLimitExceeded", limit: "time" })
  })

  it("extracts a 5 MB text file and a 200-page PDF", async () => {
    const line = "Basalt keeps every document searchable, line after line of plain text.\n"
    const text = line.repeat(Math.ceil((5 * 1024 * 1024) / line.length)) + "THE END"
    let started = performance.now()
    const big = await extracted("big.txt", text)
    const textMs = performance.now() - started
    expect(big.text.length).toBe(text.length)
    expect(big.text.endsWith("THE END")).toBe(true)

    started = performance.now()
    const pdf = await extracted("book.pdf", bigPdf)
    const pdfMs = performance.now() - started
    expect(pdf.pageCount).toBe(200)
    expect(pdf.title).toBe("Two Hundred Pages")
    expect(pdf.text).toContain("Chapter 1\n")
    expect(pdf.text).toContain("marker-200.")
    expect(pdf.text.split("\n\n")).toHaveLength(200)

    console.log(
      `extraction: ${(text.length / 1024 / 1024).toFixed(1)} MB text in ${textMs.toFixed(0)} ms; ` +
        `${pdf.pageCount}-page PDF (${(bigPdf.byteLength / 1024).toFixed(0)} KB, ${pdf.text.length} characters) in ${pdfMs.toFixed(0)} ms`
    )
  })
})
