/**
 * PDF text, page by page, through unpdf's build of pdf.js (pure JavaScript, no worker thread, no
 * canvas). Each page is a step the caller's timeout can interrupt, and the loading task is
 * destroyed however the extraction ends.
 */
import { Effect } from "effect"
import { getResolvedPDFJS } from "unpdf"
import { CorruptFile, type ExtractionLimitExceeded, readableReason } from "./ExtractionErrors.ts"
import { storableText, tooMuchText } from "./TextFormats.ts"

export interface PdfText {
  /** Pages apart by blank lines. */
  readonly text: string
  readonly title: string | null
  readonly pageCount: number
  /**
   * Where page n's text begins in `text` (index n - 1), one per page: a page without text begins
   * where the next text does, so the page of offset o is the last page whose start is at most o.
   */
  readonly pageStarts: ReadonlyArray<number>
}

const endMarker = [..."%%EOF"].map((c) => c.charCodeAt(0))

/**
 * A whole PDF ends with `%%EOF` (readers allow up to 1 KB of trailing junk). pdf.js would
 * otherwise rebuild a truncated file's cross-references and quietly return the pages that
 * survived, so a cut upload would be indexed as if it were the document.
 */
const hasEndMarker = (bytes: Uint8Array) => {
  for (let at = bytes.byteLength - endMarker.length; at >= Math.max(0, bytes.byteLength - 1024); at--) {
    if (endMarker.every((byte, i) => bytes[at + i] === byte)) return true
  }
  return false
}

const openFailure = (error: unknown) => {
  const name = error instanceof Error ? error.name : ""
  if (name === "PasswordException") return CorruptFile.of("pdf", "it is protected by a password")
  if (name === "InvalidPDFException") return CorruptFile.of("pdf", "its structure is invalid")
  return CorruptFile.of("pdf", readableReason(error))
}

interface TextRun {
  readonly str: string
  readonly hasEOL: boolean
}

/** A page's text as it is stored (cleaned before trimming, so the page starts stay exact). */
const pageText = (items: ReadonlyArray<object>) =>
  storableText(
    items
      .filter((item): item is TextRun => "str" in item)
      .map((item) => item.str + (item.hasEOL ? "\n" : ""))
      .join("")
  )
    .split("\n")
    .map((line) => line.replace(/[ \t]+/g, " ").trim())
    .join("\n")
    .replace(/\n{3,}/g, "\n\n")
    .trim()

const titleFrom = (metadata: { info: object; metadata: { get(name: string): unknown } | null }) => {
  const info = "Title" in metadata.info ? metadata.info.Title : undefined
  const xmp = metadata.metadata?.get("dc:title")
  const title = [info, xmp].find((candidate): candidate is string => typeof candidate === "string" && candidate.trim() !== "")
  return title?.trim() ?? null
}

/** The text of `bytes`, which pdf.js takes over (detaches): pass a buffer no one else reads. */
export const pdfToText = (bytes: Uint8Array, maxCharacters: number): Effect.Effect<PdfText, CorruptFile | ExtractionLimitExceeded> =>
  Effect.scoped(
    Effect.gen(function* () {
      if (!hasEndMarker(bytes)) return yield* CorruptFile.of("pdf", "it is truncated (its end-of-file marker is missing)")
      const { getDocument } = yield* Effect.promise(() => getResolvedPDFJS())
      const task = yield* Effect.acquireRelease(
        Effect.sync(() => getDocument({ data: bytes, isEvalSupported: false, disableFontFace: true, verbosity: 0 })),
        (task) => Effect.promise(() => task.destroy())
      )
      const pdf = yield* Effect.tryPromise({ try: () => task.promise, catch: openFailure })
      const pages: Array<string> = []
      let length = 0
      for (let number = 1; number <= pdf.numPages; number++) {
        const text = yield* Effect.tryPromise({
          try: async () => {
            const page = await pdf.getPage(number)
            try {
              return pageText((await page.getTextContent()).items)
            } finally {
              page.cleanup()
            }
          },
          catch: (error) => CorruptFile.of("pdf", `page ${number} cannot be read: ${readableReason(error)}`)
        })
        length += text.length + 2
        if (length > maxCharacters) return yield* tooMuchText(maxCharacters)
        pages.push(text)
      }
      const title = yield* Effect.tryPromise(() => pdf.getMetadata()).pipe(
        Effect.map(titleFrom),
        Effect.orElseSucceed(() => null)
      )
      const pageStarts: Array<number> = []
      let text = ""
      for (const page of pages) {
        if (page !== "" && text !== "") text += "\n\n"
        pageStarts.push(text.length)
        text += page
      }
      // A page without text begins where the next page's text does.
      for (let i = pageStarts.length - 2; i >= 0; i--) if (pages[i] === "") pageStarts[i] = pageStarts[i + 1]!
      return { text, title, pageCount: pdf.numPages, pageStarts }
    })
  )
