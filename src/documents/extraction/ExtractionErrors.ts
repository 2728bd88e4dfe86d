/**
 * Why a file yields no text. The upload route answers `UnsupportedFileType` with 415,
 * `CorruptFile` with 422 and `ExtractionLimitExceeded` with 413 (too much text, or a ZIP that
 * unpacks too large) or 422 (too slow to read). Messages are written for the person who uploaded
 * the file: one sentence, never a stack.
 */
import { Schema } from "effect"

/** The formats extraction accepts, named by their usual extension. */
export const DocumentFormat = Schema.Literals(["txt", "md", "html", "pdf", "docx", "csv", "json"])
export type DocumentFormat = typeof DocumentFormat.Type

/** How a message names each format. */
export const formatLabel: Record<DocumentFormat, string> = {
  txt: "text file",
  md: "Markdown file",
  html: "HTML file",
  pdf: "PDF",
  docx: "DOCX document",
  csv: "CSV file",
  json: "JSON file"
}

const supportedList = "plain text, Markdown, HTML, PDF, DOCX, CSV and JSON"

/** The bytes are none of the accepted formats; `detected` says what they look like instead. */
export class UnsupportedFileType extends Schema.TaggedError<UnsupportedFileType>()("UnsupportedFileType", {
  detected: Schema.String,
  message: Schema.String
}) {
  static of(detected: string) {
    return new UnsupportedFileType({
      detected,
      message: `The file is ${withArticle(detected)}, which is not a supported type (supported: ${supportedList})`
    })
  }
}

/** The bytes are an accepted format, but its parser could not read them; `reason` says why. */
export class CorruptFile extends Schema.TaggedError<CorruptFile>()("CorruptFile", {
  /** Null when the file is refused before its format is known (an empty file). */
  format: Schema.NullOr(DocumentFormat),
  reason: Schema.String,
  message: Schema.String
}) {
  static of(format: DocumentFormat | null, reason: string) {
    const subject = format === null ? "The file" : `The ${formatLabel[format]}`
    return new CorruptFile({ format, reason, message: `${subject} could not be read: ${reason}` })
  }
}

/** A bound that keeps one upload from taking the server's memory or time. */
export class ExtractionLimitExceeded extends Schema.TaggedError<ExtractionLimitExceeded>()("ExtractionLimitExceeded", {
  limit: Schema.Literals(["characters", "unpacked_size", "time"]),
  message: Schema.String
}) {}

export type ExtractionError = UnsupportedFileType | CorruptFile | ExtractionLimitExceeded

// By sound: "an MP3", "an XML document", but "a UTF-16 text file".
const withArticle = (noun: string) =>
  ((/^[aeiou]/i.test(noun) && !/^(utf|uni)/i.test(noun)) || /^(MP\d|SVG|XML|RTF|HTML)/.test(noun) ? "an " : "a ") + noun

const maxReasonLength = 200

/**
 * A parser's error as one readable sentence: its message's first line, without the error class
 * prefix or a trailing period, cut to a bounded length. Parsers put stacks, offsets and internal
 * names in their errors; the person uploading needs only the gist.
 */
export const readableReason = (error: unknown): string => {
  const raw = error instanceof Error ? error.message : typeof error === "string" ? error : String(error)
  const firstLine = raw.split(/\r?\n/).find((line) => line.trim() !== "") ?? ""
  const sentence = firstLine
    // Class names and tags such as "TypeError:" or "[xmldom error]" say nothing to the uploader.
    .replace(/\[[^\]]*\]\s*/g, "")
    .replace(/(^|:\s*)(error|\w*(Error|Exception)):\s*/gi, "$1")
    .replace(/\s+/g, " ")
    .trim()
    .replace(/\.$/, "")
  if (sentence === "") return "the parser gave no reason"
  return sentence.length > maxReasonLength ? sentence.slice(0, maxReasonLength - 1).trimEnd() + "…" : sentence
}
