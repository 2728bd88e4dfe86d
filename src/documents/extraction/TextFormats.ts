/**
 * The formats that are text already: plain text and Markdown are kept as written; CSV rows and
 * JSON leaves become `name: value` lines, so a search for a value finds the row or field that
 * holds it, with the column or path that says what it is.
 */
import { parse as parseCsv } from "csv-parse/sync"
import { Effect } from "effect"
import { CorruptFile, ExtractionLimitExceeded, readableReason } from "./ExtractionErrors.ts"
import type { CsvDelimiter } from "./Sniff.ts"

/**
 * `text` as Postgres can store it: without U+0000, and with each lone surrogate (half of a UTF-16
 * pair) replaced by U+FFFD. Files carry both (JSON escapes, PDF text layers, Word XML character
 * references); the uploader can neither see nor easily remove them, so they are cleaned here
 * rather than refused, unlike the same characters in the API's own input.
 */
export const storableText = (text: string) => text.replaceAll("\u0000", "").toWellFormed()

export const normalizeNewlines = (text: string) => text.replace(/\r\n?/g, "\n")

export const tooMuchText = (maxCharacters: number) =>
  new ExtractionLimitExceeded({
    limit: "characters",
    message: `The extracted text is over the limit of ${maxCharacters} characters`
  })

/** Lines added up to a budget of characters, so a small file that renders huge stops early. */
class BoundedLines {
  readonly lines: Array<string> = []
  private length = 0
  constructor(private readonly maxCharacters: number) {}

  /** False once the budget is spent. */
  add(line: string) {
    this.length += line.length + 1
    if (this.length > this.maxCharacters) return false
    this.lines.push(line)
    return true
  }
}

/**
 * The first level-1 heading (`# Title` or `Title` over `===`) outside code fences, or a YAML
 * front matter `title:`.
 */
export const markdownTitle = (markdown: string): string | null => {
  const frontMatter = /^---\n([\s\S]*?)\n---\n/.exec(markdown)?.[1]
  const declared = frontMatter === undefined ? undefined : /^title:[ \t]*(.+)$/m.exec(frontMatter)?.[1]
  if (declared !== undefined) {
    const title = declared
      .trim()
      .replace(/^(["'])(.*)\1$/, "$2")
      .trim()
    if (title !== "") return title
  }
  const lines = markdown.split("\n")
  let fence: string | undefined
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!
    if (fence !== undefined) {
      if (line.trimStart().startsWith(fence)) fence = undefined
      continue
    }
    const opening = /^ {0,3}(```|~~~)/.exec(line)?.[1]
    if (opening !== undefined) {
      fence = opening
      continue
    }
    const atx = /^ {0,3}#[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$/.exec(line)?.[1]
    if (atx !== undefined) return atx.trim()
    if (line.trim() !== "" && /^ {0,3}=+[ \t]*$/.test(lines[i + 1] ?? "")) return line.trim()
  }
  return null
}

/** Each record after the header as `header: value` lines (empty values left out), records apart. */
export const csvToText = (
  csv: string,
  delimiter: CsvDelimiter,
  maxCharacters: number
): Effect.Effect<string, CorruptFile | ExtractionLimitExceeded> =>
  Effect.gen(function* () {
    const records = yield* Effect.try({
      try: () =>
        parseCsv(csv, {
          bom: true,
          delimiter,
          // Short and long rows are common in exported spreadsheets; their values are still data.
          relax_column_count: true,
          skip_empty_lines: true
        }),
      catch: (error) => CorruptFile.of("csv", readableReason(error))
    })
    const [header, ...rows] = records
    if (header === undefined) return ""
    const labels = header.map((label, i) => label.trim() || `column ${i + 1}`)
    const out = new BoundedLines(maxCharacters)
    if (rows.length === 0 && !out.add(labels.join(" | "))) return yield* tooMuchText(maxCharacters)
    for (const [r, row] of rows.entries()) {
      if (r > 0 && !out.add("")) return yield* tooMuchText(maxCharacters)
      for (const [i, raw] of row.entries()) {
        const value = raw.trim()
        if (value === "") continue
        if (!out.add(`${labels[i] ?? `column ${i + 1}`}: ${value}`)) return yield* tooMuchText(maxCharacters)
      }
    }
    return out.lines.join("\n")
  })

const plainKey = /^[\p{L}_$][\p{L}\p{N}_$-]*$/u

const pathTo = (parent: string, key: string | number) => {
  if (typeof key === "number") return `${parent}[${key}]`
  if (plainKey.test(key)) return parent === "" ? key : `${parent}.${key}`
  return `${parent}[${JSON.stringify(key)}]`
}

const compact = (value: unknown) => {
  try {
    return JSON.stringify(value)
  } catch {
    // Nesting deep enough to overflow the stack: nothing a reader would search for.
    return "(nested too deeply to show)"
  }
}

export interface JsonText {
  readonly text: string
  /** A top-level string `title`, when there is one. */
  readonly title: string | null
}

/**
 * Every leaf as a `path: value` line (`authors[0].name: Ada`). Below `maxDepth` levels a value is
 * shown as compact JSON on one line instead, which bounds the recursion.
 */
export const jsonToText = (value: unknown, maxDepth: number, maxCharacters: number): Effect.Effect<JsonText, ExtractionLimitExceeded> => {
  const out = new BoundedLines(maxCharacters)
  const emit = (path: string, shown: string) => out.add(path === "" ? shown : `${path}: ${shown}`)
  const visit = (node: unknown, path: string, depth: number): boolean => {
    if (node === null || typeof node !== "object") return emit(path, String(node))
    if (depth >= maxDepth) return emit(path, compact(node))
    if (Array.isArray(node)) {
      if (node.length === 0) return emit(path, "[]")
      return node.every((item, i) => visit(item, pathTo(path, i), depth + 1))
    }
    const entries = Object.entries(node)
    if (entries.length === 0) return emit(path, "{}")
    return entries.every(([key, item]) => visit(item, pathTo(path, key), depth + 1))
  }
  if (!visit(value, "", 0)) return Effect.fail(tooMuchText(maxCharacters))
  const title =
    value !== null &&
    typeof value === "object" &&
    !Array.isArray(value) &&
    "title" in value &&
    typeof value.title === "string" &&
    value.title.trim() !== ""
      ? value.title.trim()
      : null
  return Effect.succeed({ text: out.lines.join("\n"), title })
}
