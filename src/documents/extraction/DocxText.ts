/**
 * DOCX text: mammoth turns the document into HTML (headings by their Word styles, lists,
 * tables), which goes through the same HTML-to-text as uploaded HTML, so headings come out as
 * Markdown `#` lines. The title is the core properties' `dc:title`, else the first heading.
 */
import { Buffer } from "node:buffer"
import { Effect } from "effect"
import { DomUtils } from "htmlparser2"
import mammoth from "mammoth"
import type { ByteSource } from "./ByteSource.ts"
import { CorruptFile, ExtractionLimitExceeded, readableReason } from "./ExtractionErrors.ts"
import { htmlToText, parseBounded } from "./HtmlText.ts"
import { tooMuchText } from "./TextFormats.ts"
import { readZipDirectory, readZipEntry } from "./ZipDirectory.ts"

export interface DocxText {
  readonly text: string
  readonly title: string | null
}

const corePropertiesPart = "docProps/core.xml"
const maxCorePropertiesBytes = 1024 * 1024

/**
 * mammoth builds the promise it returns by assigning `__proto__`, which Deno turns into a plain
 * property unless started with `--unstable-unsafe-proto` (or `"unstable": ["unsafe-proto"]` in
 * deno.json).
 * Without it every DOCX would fail, through no fault of the file: that is a defect, said plainly.
 */
const protoAssignmentIgnored = (() => {
  const probe = {}
  const prototype = {}
  Reflect.set(probe, "__proto__", prototype)
  return Object.getPrototypeOf(probe) !== prototype
})()

// Images would come back as base64 data URIs in the HTML: megabytes of nothing to search.
const dropImages = mammoth.images.imgElement(() => Promise.resolve({ src: "" }))

const coreTitle = (xml: Uint8Array) => {
  const document = parseBounded(new TextDecoder().decode(xml), { xmlMode: true })
  // Properties nested that deep hold no title worth reading.
  if (document === undefined) return null
  // The prefix is whatever the file declares for Dublin Core; Word writes `dc:`.
  const element = DomUtils.findOne((e) => e.name === "title" || e.name.endsWith(":title"), document.children)
  const title = element === null ? "" : DomUtils.textContent(element).replace(/\s+/g, " ").trim()
  return title === "" ? null : title
}

/**
 * mammoth's own errors read well ("Could not find main document part"); XML errors and the
 * TypeErrors its walker throws on unexpected XML get a lead-in saying what was wrong.
 */
const docxFailure = (error: unknown) => {
  // mammoth reads the XML recursively: elements nested deep enough exhaust the stack.
  if (error instanceof RangeError && /call stack/i.test(error.message)) {
    return CorruptFile.of("docx", "its Word XML is nested too deeply to read")
  }
  const reason = readableReason(error)
  const malformed = error instanceof TypeError || /xmldom|parse error/i.test(String(error))
  return CorruptFile.of("docx", malformed ? `its Word XML is malformed (${reason})` : reason)
}

export const docxToText = (
  source: ByteSource,
  limits: { readonly maxCharacters: number; readonly maxUnpackedBytes: number }
): Effect.Effect<DocxText, CorruptFile | ExtractionLimitExceeded> =>
  Effect.gen(function* () {
    const directory = yield* readZipDirectory(source)
    if (directory._tag === "Unreadable") return yield* CorruptFile.of("docx", directory.reason)
    // mammoth unpacks every part it reads into memory; refuse a ZIP bomb before it starts.
    const unpacked = directory.entries.reduce((total, entry) => total + entry.uncompressedSize, 0)
    if (unpacked > limits.maxUnpackedBytes) {
      return yield* new ExtractionLimitExceeded({
        limit: "unpacked_size",
        message: `The DOCX document unpacks to ${unpacked} bytes, over the limit of ${limits.maxUnpackedBytes}`
      })
    }
    const core = directory.entries.find((entry) => entry.name === corePropertiesPart)
    const coreXml = core === undefined ? undefined : yield* readZipEntry(source, core, maxCorePropertiesBytes)
    if (protoAssignmentIgnored) {
      return yield* Effect.die(
        new Error("DOCX extraction needs assignments to __proto__ to set prototypes; under Deno, run with --unstable-unsafe-proto")
      )
    }
    const bytes = yield* source.readAll
    const html = yield* Effect.tryPromise({
      try: () =>
        mammoth.convertToHtml({ buffer: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) }, { convertImage: dropImages }),
      catch: docxFailure
    })
    const converted = yield* htmlToText(html.value, "docx")
    if (converted.text.length > limits.maxCharacters) return yield* tooMuchText(limits.maxCharacters)
    return {
      text: converted.text,
      title: (coreXml === undefined ? null : coreTitle(coreXml)) ?? converted.firstHeading
    }
  })
