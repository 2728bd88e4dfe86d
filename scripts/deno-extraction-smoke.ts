/**
 * Document extraction under Deno 2 (or Node): builds a real PDF (pdfkit) and DOCX (docx), writes
 * them to a temporary folder as the upload route would, extracts both with `extractFile`, prints
 * what came out and exits non-zero unless the words, headings and titles survived.
 *
 *   node_modules/.bin/deno task smoke:extraction      (scripts/deno-smoke.sh runs it in CI)
 *
 * DOCX needs Deno's `unsafe-proto` (mammoth assigns `__proto__`; see DocxText.ts), which
 * deno.json turns on for every task.
 */
import { Buffer } from "node:buffer"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import process from "node:process"
import { Document, HeadingLevel, Packer, Paragraph } from "docx"
import { Cause, Effect, Exit } from "effect"
import PDFDocument from "pdfkit"
import { extractFile } from "../src/documents/extraction/Extraction.ts"

const runtime = "Deno" in globalThis ? "deno" : "node"

const pdfBytes = () =>
  new Promise<Uint8Array>((resolve, reject) => {
    const pdf = new PDFDocument({ info: { Title: "Smoke Report" } })
    const chunks: Array<Uint8Array> = []
    pdf.on("data", (chunk: Uint8Array) => chunks.push(chunk))
    pdf.on("end", () => resolve(new Uint8Array(Buffer.concat(chunks))))
    pdf.on("error", reject)
    pdf.fontSize(18).text("Basalt on Deno").fontSize(12).text("Extraction reads this sentence.")
    pdf.addPage().text("Second page words.")
    pdf.end()
  })

const docxBytes = async () =>
  new Uint8Array(
    await Packer.toBuffer(
      new Document({
        title: "Smoke Notes",
        sections: [
          {
            children: [
              new Paragraph({ text: "Deno Section", heading: HeadingLevel.HEADING_1 }),
              new Paragraph("Mammoth converts this paragraph.")
            ]
          }
        ]
      })
    )
  )

const checks: Array<[file: string, bytes: Uint8Array, expected: ReadonlyArray<string>, title: string]> = [
  ["report.pdf", await pdfBytes(), ["Basalt on Deno", "Extraction reads this sentence.", "Second page words."], "Smoke Report"],
  ["notes.docx", await docxBytes(), ["# Deno Section", "Mammoth converts this paragraph."], "Smoke Notes"]
]

const dir = await mkdtemp(join(tmpdir(), "basalt-extraction-smoke-"))
let failed = false
try {
  for (const [file, bytes, expected, title] of checks) {
    const path = join(dir, file)
    await writeFile(path, bytes)
    const started = performance.now()
    const exit = await Effect.runPromiseExit(extractFile(path, file))
    const ms = (performance.now() - started).toFixed(0)
    if (Exit.isFailure(exit)) {
      failed = true
      console.log(`${runtime}: ${file}: FAIL ${Cause.pretty(exit.cause).split("\n")[0]}`)
      continue
    }
    const doc = exit.value
    const missing = expected.filter((words) => !doc.text.includes(words))
    const ok = missing.length === 0 && doc.title === title
    failed ||= !ok
    console.log(
      `${runtime}: ${file}: ${ok ? "ok" : "FAIL"} in ${ms} ms, format=${doc.format} title=${JSON.stringify(doc.title)} ` +
        `pages=${doc.pageCount} text=${JSON.stringify(doc.text)}` +
        (missing.length > 0 ? ` missing=${JSON.stringify(missing)}` : "")
    )
  }
} finally {
  await rm(dir, { recursive: true, force: true })
}
process.exit(failed ? 1 : 0)
