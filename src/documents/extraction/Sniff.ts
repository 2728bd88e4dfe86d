/**
 * What a file is, decided from its bytes. The declared name only helps choose between the textual
 * formats (a `.csv` of delimited lines is CSV, a `.md` is Markdown); it never makes bytes a PDF
 * or DOCX, or binary bytes text: `report.pdf` holding HTML is HTML, `x.txt` holding a PDF is a
 * PDF. A PDF must start with `%PDF-` (no junk before it). Sniffing reads the first 16 KB, and a
 * ZIP's directory at the end, not the whole file.
 */
import { Effect } from "effect"
import { type ByteSource, bytesSource, fileSource } from "./ByteSource.ts"
import { CorruptFile, type DocumentFormat, UnsupportedFileType } from "./ExtractionErrors.ts"
import { localEntryNames, readZipDirectory, type ZipEntry } from "./ZipDirectory.ts"

export const headBytes = 16 * 1024

export type TextualFormat = Exclude<DocumentFormat, "pdf" | "docx">

/** The file's format, read from the bytes at `path`. */
export const sniffFile = (path: string, declaredName: string): Effect.Effect<DocumentFormat, UnsupportedFileType | CorruptFile> =>
  Effect.scoped(Effect.flatMap(fileSource(path), (source) => sniff(source, declaredName)))

/** The format of bytes held in memory. */
export const sniffBytes = (bytes: Uint8Array, declaredName: string): Effect.Effect<DocumentFormat, UnsupportedFileType | CorruptFile> =>
  sniff(bytesSource(bytes), declaredName)

export const sniff = (source: ByteSource, declaredName: string): Effect.Effect<DocumentFormat, UnsupportedFileType | CorruptFile> =>
  Effect.gen(function* () {
    // An empty upload is a mistake worth telling apart from a wrong type.
    if (source.size === 0) return yield* CorruptFile.of(null, "the file is empty")
    const head = yield* source.read(0, headBytes)
    if (startsWith(head, "%PDF-")) return "pdf"
    if (isZip(head)) return yield* sniffZip(source, head)
    const binary = binaryKind(head)
    if (binary !== undefined) return yield* UnsupportedFileType.of(binary)
    const text = decodeHead(head, head.byteLength < source.size)
    if (text === undefined) return yield* UnsupportedFileType.of(undecodableKind(head))
    const markup = markupKind(text)
    if (markup !== undefined) return yield* UnsupportedFileType.of(markup)
    return classifyText(text, declaredName, { complete: head.byteLength === source.size, allowJson: true })
  })

// -- ZIP: only a DOCX is accepted ---------------------------------------------------------------

const isZip = (head: Uint8Array) =>
  head[0] === 0x50 && head[1] === 0x4b && (head[2] === 3 || head[2] === 5 || head[2] === 7) && head[3] === head[2] + 1

const docxMainPart = "word/document.xml"

/** What a ZIP that is not a DOCX most likely is, by the entries each format must have. */
const zipKinds: ReadonlyArray<readonly [test: (names: ReadonlySet<string>) => boolean, kind: string]> = [
  [(names) => names.has("xl/workbook.xml"), "an Excel workbook (XLSX)"],
  [(names) => names.has("ppt/presentation.xml"), "a PowerPoint presentation (PPTX)"],
  [(names) => names.has("mimetype") && names.has("content.xml"), "an OpenDocument file (ODT, ODS or ODP)"],
  [(names) => names.has("META-INF/container.xml") && names.has("mimetype"), "an EPUB book"],
  [(names) => names.has("AndroidManifest.xml"), "an Android package (APK)"],
  [(names) => names.has("META-INF/MANIFEST.MF"), "a Java archive (JAR)"],
  [(names) => names.has("[Content_Types].xml"), "an Office Open XML package without a Word document"]
]

const sniffZip = (source: ByteSource, head: Uint8Array) =>
  Effect.gen(function* () {
    const directory = yield* readZipDirectory(source)
    if (directory._tag === "Unreadable") {
      // With the directory gone, the local headers still tell a damaged DOCX from another ZIP.
      const looksLikeDocx = localEntryNames(head).some((name) => name.startsWith("word/"))
      if (looksLikeDocx) return yield* CorruptFile.of("docx", directory.reason)
      return yield* UnsupportedFileType.of("damaged ZIP archive")
    }
    const names = new Set(directory.entries.map((entry: ZipEntry) => entry.name))
    if (names.has(docxMainPart)) return "docx" as const
    const kind = zipKinds.find(([test]) => test(names))?.[1]
    return yield* UnsupportedFileType.of(
      kind === undefined ? "ZIP archive that is not a DOCX" : `ZIP archive that is not a DOCX: it looks like ${kind}`
    )
  })

// -- Binary formats, refused by their magic numbers ----------------------------------------------

const startsWith = (bytes: Uint8Array, prefix: string | ReadonlyArray<number>, at = 0) => {
  const expected = typeof prefix === "string" ? [...prefix].map((c) => c.charCodeAt(0)) : prefix
  return expected.every((byte, i) => bytes[at + i] === byte)
}

const magicNumbers: ReadonlyArray<readonly [test: (head: Uint8Array) => boolean, kind: string]> = [
  [(h) => startsWith(h, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), "PNG image"],
  [(h) => startsWith(h, [0xff, 0xd8, 0xff]), "JPEG image"],
  [(h) => startsWith(h, "GIF87a") || startsWith(h, "GIF89a"), "GIF image"],
  [(h) => startsWith(h, "RIFF") && startsWith(h, "WEBP", 8), "WebP image"],
  [(h) => startsWith(h, "RIFF") && startsWith(h, "WAVE", 8), "WAV audio file"],
  [(h) => startsWith(h, "RIFF") && startsWith(h, "AVI ", 8), "AVI video"],
  [(h) => startsWith(h, [0x49, 0x49, 0x2a, 0x00]) || startsWith(h, [0x4d, 0x4d, 0x00, 0x2a]), "TIFF image"],
  [(h) => startsWith(h, "ftyp", 4) && /^(heic|heix|mif1|avif)/.test(ascii(h, 8, 4)), "HEIF or AVIF image"],
  [(h) => startsWith(h, "ftyp", 4), "MP4 or QuickTime media file"],
  [(h) => startsWith(h, "ID3") || startsWith(h, [0xff, 0xfb]) || startsWith(h, [0xff, 0xf3]), "MP3 audio file"],
  [(h) => startsWith(h, "OggS"), "Ogg media file"],
  [(h) => startsWith(h, "fLaC"), "FLAC audio file"],
  [(h) => startsWith(h, [0x1a, 0x45, 0xdf, 0xa3]), "Matroska or WebM video"],
  [(h) => startsWith(h, [0x1f, 0x8b]), "gzip archive"],
  [(h) => startsWith(h, "BZh") && startsWith(h, [0x31, 0x41, 0x59, 0x26, 0x53, 0x59], 4), "bzip2 archive"],
  [(h) => startsWith(h, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), "xz archive"],
  [(h) => startsWith(h, [0x28, 0xb5, 0x2f, 0xfd]), "Zstandard archive"],
  [(h) => startsWith(h, [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c]), "7-Zip archive"],
  [(h) => startsWith(h, "Rar!\x1a\x07"), "RAR archive"],
  [(h) => startsWith(h, "ustar", 257), "tar archive"],
  [(h) => startsWith(h, [0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1]), "legacy or encrypted Office file (DOC, XLS, PPT)"],
  [(h) => startsWith(h, "SQLite format 3\0"), "SQLite database"],
  [(h) => startsWith(h, [0x7f, 0x45, 0x4c, 0x46]), "executable (ELF)"],
  [(h) => startsWith(h, "MZ") && h.includes(0), "executable (Windows PE)"],
  [
    (h) =>
      [
        [0xfe, 0xed, 0xfa, 0xce],
        [0xfe, 0xed, 0xfa, 0xcf],
        [0xce, 0xfa, 0xed, 0xfe],
        [0xcf, 0xfa, 0xed, 0xfe]
      ].some((m) => startsWith(h, m)),
    "executable (Mach-O)"
  ],
  [(h) => startsWith(h, [0xca, 0xfe, 0xba, 0xbe]), "Java class file or Mach-O executable"],
  [(h) => startsWith(h, [0x00, 0x61, 0x73, 0x6d]), "WebAssembly module"],
  [(h) => startsWith(h, "wOFF") || startsWith(h, "wOF2"), "web font"],
  [(h) => startsWith(h, "{\\rtf"), "RTF document"],
  [(h) => startsWith(h, "%!PS"), "PostScript document"],
  [(h) => startsWith(h, [0xff, 0xfe]) || startsWith(h, [0xfe, 0xff]), "UTF-16 text file (only UTF-8 text is supported)"]
]

const ascii = (bytes: Uint8Array, at: number, length: number) => String.fromCharCode(...bytes.subarray(at, at + length))

/** A binary format's name, or "binary file" for unknown bytes with NULs or many control codes. */
const binaryKind = (head: Uint8Array): string | undefined => {
  const known = magicNumbers.find(([test]) => test(head))?.[1]
  if (known !== undefined) return known
  let controls = 0
  for (const byte of head) {
    if (byte === 0) return "binary file"
    // Tab, newlines, form feed and ESC (colour codes in logs) belong in text; other C0 codes do not.
    if (byte < 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d && byte !== 0x0c && byte !== 0x1b) controls++
  }
  return controls > head.byteLength / 100 ? "binary file" : undefined
}

/** The head as text, or undefined when it is not UTF-8. A head cut mid-character is still text. */
const decodeHead = (head: Uint8Array, truncated: boolean): string | undefined => {
  try {
    // `stream` holds back an incomplete last character instead of failing on it.
    return stripBom(new TextDecoder("utf-8", { fatal: true }).decode(head, { stream: truncated }))
  } catch {
    return undefined
  }
}

const undecodableKind = (head: Uint8Array) => {
  // Mostly ASCII with a few high bytes is text in a legacy encoding; otherwise, unknown bytes.
  const high = head.reduce((count, byte) => count + (byte >= 0x80 ? 1 : 0), 0)
  return high < head.byteLength / 4 ? "text file that is not UTF-8 (perhaps Latin-1 or Windows-1252)" : "binary file"
}

export const stripBom = (text: string) => (text.charCodeAt(0) === 0xfeff ? text.slice(1) : text)

// -- The textual formats ------------------------------------------------------------------------

/** Leading whitespace and `<!-- comments -->`, which may precede an HTML document's first tag. */
const skipPreamble = (text: string) => text.replace(/^(\s|<!--[\s\S]*?-->)*/, "")

const htmlStart = /^<(!doctype\s+html|html|head|body)[\s>/]/i
const fragmentStart =
  /^<(a|article|aside|b|blockquote|br|div|dl|em|footer|form|h[1-6]|header|hr|i|img|link|main|meta|nav|ol|p|pre|script|section|span|strong|style|table|title|ul)[\s>/]/i

/** XML that is not HTML: refused, naming what it is. */
const markupKind = (text: string): string | undefined => {
  const start = skipPreamble(text)
  if (!start.startsWith("<?xml") && !/^<svg[\s>]/i.test(start)) return undefined
  const root = skipPreamble(start.replace(/^<\?xml[\s\S]*?\?>/, "")).replace(/^(<!DOCTYPE[^>]*>|<!--[\s\S]*?-->|\s)*/i, "")
  if (/^<html[\s>]/i.test(root) || /<!DOCTYPE\s+html/i.test(start.slice(0, 500))) return undefined
  return /^<svg[\s>]/i.test(root) ? "SVG image" : "XML document"
}

const extensionOf = (declaredName: string) => {
  const base = declaredName.split(/[\\/]/).pop() ?? ""
  const dot = base.lastIndexOf(".")
  return dot <= 0 ? "" : base.slice(dot + 1).toLowerCase()
}

const markdownExtensions = new Set(["md", "markdown", "mdown", "mkd", "mkdn"])
const htmlExtensions = new Set(["html", "htm", "xhtml"])
const csvExtensions = new Set(["csv", "tsv"])
/** A name that says which textual format it is, so content alone does not make it CSV. */
const hintsText = (extension: string) => extension === "txt" || markdownExtensions.has(extension) || htmlExtensions.has(extension)

/**
 * Which textual format `text` (the whole file, or its head when `complete` is false) is. HTML
 * documents and JSON are known by their first characters whatever the name; JSON is confirmed by
 * a full parse at extraction, which falls back here with `allowJson: false`. Between CSV,
 * Markdown and plain text the declared extension leads, and the content decides when the name
 * says nothing.
 */
export const classifyText = (
  text: string,
  declaredName: string,
  options: { readonly complete: boolean; readonly allowJson: boolean }
): TextualFormat => {
  const extension = extensionOf(declaredName)
  // XHTML may open with an XML declaration; other XML was refused before.
  const start = skipPreamble(skipPreamble(text).replace(/^<\?xml[\s\S]*?\?>/, ""))
  if (htmlStart.test(start)) return "html"
  if (fragmentStart.test(start) && !markdownExtensions.has(extension) && extension !== "txt") return "html"
  if (options.allowJson && /^[[{]/.test(text.trimStart())) return "json"
  if (htmlExtensions.has(extension) && /<[a-z][^>]*>/i.test(text)) return "html"
  if (csvExtensions.has(extension)) {
    // A `.csv` is CSV when most of its records are delimited; a lying name on prose is text.
    if (bestDelimiter(text, options.complete, extension) !== undefined) return "csv"
  } else if (!hintsText(extension) && looksTabular(text, options.complete)) {
    return "csv"
  }
  if (markdownExtensions.has(extension)) return "md"
  if (extension !== "txt" && looksLikeMarkdown(text)) return "md"
  return "txt"
}

const delimiters = [",", ";", "\t", "|"] as const
export type CsvDelimiter = (typeof delimiters)[number]

/** Fields per record in the first records of `text`, honouring quoted fields and newlines. */
const fieldCounts = (text: string, delimiter: string, complete: boolean, maxRecords = 50): Array<number> => {
  const counts: Array<number> = []
  let fields = 1
  let inQuotes = false
  let recordHasContent = false
  for (let i = 0; i < text.length && counts.length < maxRecords; i++) {
    const char = text[i]
    if (char === '"') inQuotes = !inQuotes
    else if (!inQuotes && char === delimiter) fields++
    else if (!inQuotes && (char === "\n" || char === "\r")) {
      if (recordHasContent || fields > 1) counts.push(fields)
      fields = 1
      recordHasContent = false
      continue
    }
    recordHasContent = true
  }
  // The last record is whole only when the text is the whole file.
  if (complete && (recordHasContent || fields > 1) && counts.length < maxRecords) counts.push(fields)
  return counts
}

/**
 * The delimiter most records use: for a `.csv`, one splitting at least half the records; for a
 * `.tsv`, tab first. Undefined when none does.
 */
export const bestDelimiter = (text: string, complete: boolean, extension = "csv"): CsvDelimiter | undefined => {
  const ordered = extension === "tsv" ? (["\t", ",", ";", "|"] as const) : delimiters
  let best: { delimiter: CsvDelimiter; score: number } | undefined
  for (const delimiter of ordered) {
    const counts = fieldCounts(text, delimiter, complete)
    if (counts.length === 0) continue
    const delimited = counts.filter((count) => count > 1).length
    if (delimited * 2 < counts.length) continue
    // Prefer the delimiter that splits records the same way every time, then the one used most.
    const consistent = counts.every((count) => count === counts[0])
    const score = delimited + (consistent ? counts.length : 0)
    if (best === undefined || score > best.score) best = { delimiter, score }
  }
  return best?.delimiter
}

/** Content alone makes CSV only when unmistakable: three or more records, all split alike. */
const looksTabular = (text: string, complete: boolean) =>
  delimiters.some((delimiter) => {
    const counts = fieldCounts(text, delimiter, complete)
    return counts.length >= 3 && counts[0]! >= 2 && counts.every((count) => count === counts[0])
  })

const looksLikeMarkdown = (text: string) => {
  if (/^#{1,6}[ \t]+\S/m.test(text)) return true
  if (/^(```|~~~)/m.test(text)) return true
  if (/^\S[^\n]*\n=+[ \t]*$/m.test(text)) return true
  const links = /\[[^\]\n]+\]\([^)\s]+\)/.test(text)
  const listItems = text.match(/^[ \t]*([-*+]|\d+\.)[ \t]+\S/gm)?.length ?? 0
  return links && listItems >= 2
}
