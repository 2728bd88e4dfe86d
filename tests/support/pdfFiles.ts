/** Real PDF files, built by pdfkit: one page per entry, each a heading then a body (both may be empty). */
import PDFDocument from "pdfkit"

export interface PdfPage {
  readonly heading: string
  readonly body: string
}

export interface PdfOptions {
  readonly title?: string
  readonly userPassword?: string
  /** A drawing and no text: what a scan without a text layer looks like to a reader. */
  readonly drawingOnly?: boolean
}

export const buildPdf = (pages: ReadonlyArray<PdfPage>, options: PdfOptions = {}) =>
  new Promise<Uint8Array>((resolve, reject) => {
    const pdf = new PDFDocument({
      ...(options.title === undefined ? {} : { info: { Title: options.title } }),
      ...(options.userPassword === undefined ? {} : { userPassword: options.userPassword, pdfVersion: "1.7" as const })
    })
    const chunks: Array<Buffer> = []
    pdf.on("data", (chunk: Buffer) => chunks.push(chunk))
    pdf.on("end", () => resolve(new Uint8Array(Buffer.concat(chunks))))
    pdf.on("error", reject)
    if (options.drawingOnly) pdf.rect(100, 100, 200, 100).fill("#336699")
    pages.forEach((page, i) => {
      if (i > 0) pdf.addPage()
      pdf.fontSize(20).text(page.heading).moveDown().fontSize(12).text(page.body)
    })
    pdf.end()
  })
