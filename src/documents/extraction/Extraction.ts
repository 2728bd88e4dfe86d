/**
 * Text from an uploaded file, for indexing. The route streams an upload to a temporary file and
 * calls `extractFile`; the format is sniffed from the bytes (see Sniff.ts), then the format's
 * parser reads the file. Bounds: extracted characters (memory, and what one document adds to the
 * index), unpacked ZIP size (DOCX bombs) and wall time (a pathological PDF).
 *
 * A file with no text at all (empty, blank, a scanned PDF without a text layer) is a
 * `CorruptFile`: there is nothing to index, and the uploader should hear so rather than find an
 * empty document later. A file that cannot be read from disk is a defect, not an error of the
 * upload.
 */
import { Duration, Effect, Result } from "effect"
import { type ByteSource, bytesSource, fileSource } from "./ByteSource.ts"
import { docxToText } from "./DocxText.ts"
import {
  CorruptFile,
  type DocumentFormat,
  type ExtractionError,
  ExtractionLimitExceeded,
  readableReason,
  UnsupportedFileType
} from "./ExtractionErrors.ts"
import { htmlToText } from "./HtmlText.ts"
import { pdfToText } from "./PdfText.ts"
import { bestDelimiter, classifyText, sniff, stripBom, type TextualFormat } from "./Sniff.ts"
import { csvToText, jsonToText, markdownTitle, normalizeNewlines, storableText, tooMuchText } from "./TextFormats.ts"

export interface ExtractionLimits {
  /** Extracted text longer than this is refused. */
  readonly maxCharacters: number
  /** A DOCX whose parts add up to more than this, unpacked, is refused before parsing. */
  readonly maxUnpackedBytes: number
  /** JSON below this depth is shown as compact JSON instead of one line per leaf. */
  readonly maxJsonDepth: number
  readonly timeout: Duration.Input
}

export const defaultExtractionLimits: ExtractionLimits = {
  maxCharacters: 10_000_000,
  maxUnpackedBytes: 256 * 1024 * 1024,
  maxJsonDepth: 32,
  timeout: Duration.seconds(60)
}

export interface ExtractedDocument {
  readonly format: DocumentFormat
  readonly mediaType: string
  /** The format's own title when it has one (PDF metadata, `<title>`, DOCX core properties) or a first heading. */
  readonly title: string | null
  /** Headings as Markdown `#` lines where the format has headings. */
  readonly text: string
  /** PDF only. */
  readonly pageCount: number | null
  /** PDF only: where page n's text begins in `text` (index n - 1); see PdfText. */
  readonly pageStarts: ReadonlyArray<number> | null
}

export const mediaTypes: Record<DocumentFormat, string> = {
  txt: "text/plain",
  md: "text/markdown",
  html: "text/html",
  pdf: "application/pdf",
  docx: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  csv: "text/csv",
  json: "application/json"
}

/** The text of the file at `path`; `declaredName` (the upload's file name) only hints between textual formats. */
export const extractFile = (
  path: string,
  declaredName: string,
  limits: Partial<ExtractionLimits> = {}
): Effect.Effect<ExtractedDocument, ExtractionError> =>
  Effect.scoped(Effect.flatMap(fileSource(path), (source) => extract(source, declaredName, limits)))

/** The text of bytes already in memory. */
export const extractBytes = (
  bytes: Uint8Array,
  declaredName: string,
  limits: Partial<ExtractionLimits> = {}
): Effect.Effect<ExtractedDocument, ExtractionError> => extract(bytesSource(bytes), declaredName, limits)

const extract = (source: ByteSource, declaredName: string, overrides: Partial<ExtractionLimits>) => {
  const limits = { ...defaultExtractionLimits, ...overrides }
  const timeout = Duration.fromInputUnsafe(limits.timeout)
  return Effect.gen(function* () {
    const format = yield* sniff(source, declaredName)
    yield* Effect.annotateCurrentSpan({ "document.sniffed_format": format, "document.bytes": source.size })
    const extracted = yield* extractAs(format, source, declaredName, limits)
    if (extracted.text.trim() === "") {
      return yield* CorruptFile.of(
        extracted.format,
        format === "pdf" ? "it has no text layer (a scanned image?), and text recognition is not supported" : "it contains no text"
      )
    }
    return extracted
  }).pipe(
    Effect.timeoutOrElse({
      duration: timeout,
      orElse: () =>
        Effect.fail(
          new ExtractionLimitExceeded({
            limit: "time",
            message: `Reading the file took longer than the limit of ${Duration.format(timeout)}`
          })
        )
    }),
    Effect.withSpan("documents.extract")
  )
}

/** At most `max` UTF-16 code units of `text`, never half of a surrogate pair. */
export const truncated = (text: string, max: number) => {
  const cut = text.slice(0, max)
  return /[\ud800-\udbff]$/.test(cut) ? cut.slice(0, -1) : cut
}

/** A title is a label, not a paragraph: some files put a whole abstract in it. */
const shortened = (title: string) => (title.length <= 300 ? title : truncated(title, 299).trimEnd() + "…")

const document = (
  format: DocumentFormat,
  text: string,
  title: string | null,
  pages: { readonly pageCount: number; readonly pageStarts: ReadonlyArray<number> } | null = null
): ExtractedDocument => {
  const label = title === null ? "" : storableText(title).trim()
  const stored = storableText(text).trim()
  return {
    format,
    mediaType: mediaTypes[format],
    title: label === "" ? null : shortened(label),
    text: stored,
    pageCount: pages?.pageCount ?? null,
    // Page starts are offsets into the text as extracted: they hold only if storing changed nothing.
    pageStarts: pages !== null && stored === text ? pages.pageStarts : null
  }
}

const extractAs = (
  format: DocumentFormat,
  source: ByteSource,
  declaredName: string,
  limits: ExtractionLimits
): Effect.Effect<ExtractedDocument, ExtractionError> => {
  switch (format) {
    case "pdf":
      return Effect.flatMap(source.readAll, (bytes) => pdfToText(bytes, limits.maxCharacters)).pipe(
        Effect.map((pdf) => document("pdf", pdf.text, pdf.title, pdf))
      )
    case "docx":
      return docxToText(source, limits).pipe(Effect.map((docx) => document("docx", docx.text, docx.title)))
    default:
      return Effect.flatMap(readText(source, format, limits), (text) => textual(format, text, declaredName, limits))
  }
}

/** The whole file as text: UTF-8 throughout, no NULs, newlines as `\n`. */
const readText = (source: ByteSource, format: TextualFormat, limits: ExtractionLimits) =>
  Effect.gen(function* () {
    // No character takes more than 4 bytes, so a larger file cannot fit; refuse it unread. HTML is
    // exempt: markup is most of its bytes.
    if (format !== "html" && source.size > limits.maxCharacters * 4) return yield* tooMuchText(limits.maxCharacters)
    const bytes = yield* source.readAll
    const decoded = Result.try(() => new TextDecoder("utf-8", { fatal: true }).decode(bytes))
    // The head was checked when sniffing; the rest of the file gets its turn here.
    if (Result.isFailure(decoded)) return yield* UnsupportedFileType.of("text file that is not entirely UTF-8")
    if (decoded.success.includes("\0")) return yield* UnsupportedFileType.of("binary file")
    return normalizeNewlines(stripBom(decoded.success))
  })

const textual = (
  format: TextualFormat,
  text: string,
  declaredName: string,
  limits: ExtractionLimits
): Effect.Effect<ExtractedDocument, ExtractionError> =>
  Effect.gen(function* () {
    const bounded = (result: string) =>
      result.length > limits.maxCharacters ? Effect.fail(tooMuchText(limits.maxCharacters)) : Effect.succeed(result)
    switch (format) {
      case "txt":
        return document("txt", yield* bounded(text), null)
      case "md":
        return document("md", yield* bounded(text), markdownTitle(text))
      case "html": {
        const html = yield* htmlToText(text, "html")
        return document("html", yield* bounded(html.text), html.title)
      }
      case "csv": {
        const extension = declaredName.toLowerCase().endsWith(".tsv") ? "tsv" : "csv"
        const sample = text.slice(0, 64 * 1024)
        const delimiter = bestDelimiter(sample, sample.length === text.length, extension) ?? ","
        return document("csv", yield* csvToText(text, delimiter, limits.maxCharacters), null)
      }
      case "json": {
        const parsed = Result.try(() => JSON.parse(text) as unknown)
        if (Result.isSuccess(parsed)) {
          const json = yield* jsonToText(parsed.success, limits.maxJsonDepth, limits.maxCharacters)
          return document("json", json.text, json.title)
        }
        // Declared JSON that does not parse is broken; text that merely began with a bracket is text.
        if (/\.json$/i.test(declaredName)) {
          return yield* CorruptFile.of("json", `it is not valid JSON (${readableReason(parsed.failure)})`)
        }
        const fallback = classifyText(text, declaredName, { complete: true, allowJson: false })
        return yield* textual(fallback, text, declaredName, limits)
      }
    }
  })
