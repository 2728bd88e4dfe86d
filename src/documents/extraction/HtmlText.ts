/**
 * HTML to searchable text: headings become Markdown `#` lines (chunking splits on them), blocks
 * become paragraphs, list items `- ` lines and table rows `a | b` lines. Scripts, styles,
 * navigation, templates and hidden elements are dropped: their text is not the document's.
 * htmlparser2 builds the tree forgivingly and decodes entities. DOCX goes through here too, as
 * the HTML mammoth makes of it.
 */
import { ElementType, parseDocument } from "htmlparser2"

type HtmlDocument = ReturnType<typeof parseDocument>
type HtmlNode = HtmlDocument["children"][number]
type HtmlElement = Extract<HtmlNode, { readonly attribs: Record<string, string> }>

export interface HtmlText {
  readonly text: string
  /** `<title>`, else the first `<h1>`; null when neither has text. */
  readonly title: string | null
  /** The first heading of any level, for formats whose title is their first heading. */
  readonly firstHeading: string | null
}

// <title> too: htmlparser2 builds no implied <head>, so a bare <title> would land in the body.
const dropped = new Set([
  "title",
  "script",
  "style",
  "noscript",
  "template",
  "nav",
  "head",
  "svg",
  "math",
  "iframe",
  "object",
  "embed",
  "canvas",
  "select",
  "datalist",
  "audio",
  "video"
])

const blocks = new Set([
  "address",
  "article",
  "aside",
  "blockquote",
  "body",
  "caption",
  "center",
  "dd",
  "details",
  "dialog",
  "div",
  "dl",
  "dt",
  "fieldset",
  "figcaption",
  "figure",
  "footer",
  "form",
  "header",
  "hgroup",
  "hr",
  "html",
  "legend",
  "main",
  "menu",
  "ol",
  "p",
  "section",
  "summary",
  "table",
  "tbody",
  "tfoot",
  "thead",
  "ul"
])

const headingLevel = (name: string) => (/^h[1-6]$/.test(name) ? Number(name[1]) : undefined)

const isElement = (node: HtmlNode): node is HtmlElement => ElementType.isTag(node)

const isShown = (element: HtmlElement) =>
  !dropped.has(element.name) &&
  element.attribs["hidden"] === undefined &&
  element.attribs["aria-hidden"] !== "true" &&
  !/display\s*:\s*none/i.test(element.attribs["style"] ?? "")

const collapse = (text: string) => text.replace(/\s+/g, " ").trim()

/** An element's visible text on one line, whatever blocks it holds. */
const inlineText = (node: HtmlNode): string => {
  if (node.type === ElementType.Text) return node.data
  if (!isElement(node)) return ""
  if (!isShown(node)) return ""
  const inner = node.children.map(inlineText).join("")
  return blocks.has(node.name) || node.name === "br" || node.name === "li" || node.name === "td" || node.name === "th"
    ? ` ${inner} `
    : inner
}

/**
 * Paragraphs separated by blank lines; the items of one list and the rows of one table ("tight"
 * parts of one group) by single newlines.
 */
class TextWriter {
  private readonly parts: Array<{ readonly text: string; readonly tight: boolean; readonly group: number }> = []
  private inline = ""
  private prefix = ""
  private tight = false
  private group = 0

  /** A new list or table: its lines do not run on from the previous one's. */
  newGroup() {
    this.flush()
    this.group++
  }

  text(data: string) {
    this.inline += data.replace(/\s+/g, " ")
  }

  lineBreak() {
    this.inline += "\n"
  }

  /** Ends the running paragraph; the next one starts with `prefix` (a list marker). */
  startBlock(prefix = "", tight = false) {
    this.flush()
    this.prefix = prefix
    this.tight = tight
  }

  flush() {
    const lines = this.inline
      .split("\n")
      .map((line) => line.replace(/\s+/g, " ").trim())
      .filter((line) => line !== "")
    if (lines.length > 0) this.push(this.prefix + lines.join("\n"), this.tight)
    this.inline = ""
    this.prefix = ""
    this.tight = false
  }

  push(text: string, tight: boolean) {
    this.parts.push({ text, tight, group: this.group })
  }

  toString() {
    this.flush()
    return this.parts
      .map((part, i) => {
        const previous = this.parts[i - 1]
        if (previous === undefined) return part.text
        return (part.tight && previous.tight && part.group === previous.group ? "\n" : "\n\n") + part.text
      })
      .join("")
  }
}

const walkChildren = (node: { readonly children: ReadonlyArray<HtmlNode> }, out: TextWriter, listDepth: number) => {
  for (const child of node.children) walk(child, out, listDepth)
}

const walk = (node: HtmlNode, out: TextWriter, listDepth: number): void => {
  if (node.type === ElementType.Text) {
    out.text(node.data)
    return
  }
  if (node.type === ElementType.Root) {
    walkChildren(node, out, listDepth)
    return
  }
  if (!isElement(node) || !isShown(node)) return
  const name = node.name
  const level = headingLevel(name)
  if (level !== undefined) {
    out.flush()
    const heading = collapse(inlineText(node))
    if (heading !== "") out.push(`${"#".repeat(level)} ${heading}`, false)
    return
  }
  switch (name) {
    case "br":
      out.lineBreak()
      return
    case "pre": {
      out.flush()
      const preformatted = node.children.map(inlineText).join("").replace(/^\n/, "").trimEnd()
      if (preformatted.trim() !== "") out.push(preformatted, false)
      return
    }
    case "li": {
      const parent = node.parent
      const ordered = parent !== null && "name" in parent && parent.name === "ol"
      const position = parent === null ? 1 : parent.children.filter((c) => isElement(c) && c.name === "li").indexOf(node) + 1
      out.startBlock(`${"  ".repeat(Math.max(0, listDepth - 1))}${ordered ? `${position}.` : "-"} `, true)
      walkChildren(node, out, listDepth)
      out.flush()
      return
    }
    case "tr": {
      out.flush()
      const cells = node.children
        .filter((cell): cell is HtmlElement => isElement(cell) && (cell.name === "td" || cell.name === "th") && isShown(cell))
        .map((cell) => collapse(inlineText(cell)))
      if (cells.some((cell) => cell !== "")) out.push(cells.join(" | ").trimEnd(), true)
      return
    }
    case "ul":
    case "ol":
      // A nested list continues its parent's lines.
      if (listDepth === 0) out.newGroup()
      else out.flush()
      walkChildren(node, out, listDepth + 1)
      out.flush()
      return
    case "table":
      out.newGroup()
      walkChildren(node, out, listDepth)
      out.newGroup()
      return
  }
  if (blocks.has(name)) {
    out.flush()
    walkChildren(node, out, listDepth)
    out.flush()
    return
  }
  walkChildren(node, out, listDepth)
}

/** The first element passing `test`, in document order; hidden subtrees only when `inHidden`. */
const findFirst = (nodes: ReadonlyArray<HtmlNode>, test: (element: HtmlElement) => boolean, inHidden = false): HtmlElement | undefined => {
  for (const node of nodes) {
    if (!isElement(node) && node.type !== ElementType.Root) continue
    if (isElement(node)) {
      if (test(node)) return node
      // An SVG's <title> names the drawing, not the page.
      if ((!inHidden && !isShown(node)) || node.name === "svg") continue
    }
    const found = findFirst(node.children, test, inHidden)
    if (found !== undefined) return found
  }
  return undefined
}

const textOf = (element: HtmlElement | undefined) => {
  if (element === undefined) return null
  // <title> holds raw text only; other elements are read as shown.
  const text = collapse(element.name === "title" ? element.children.map(inlineText).join("") : inlineText(element))
  return text === "" ? null : text
}

export const htmlToText = (html: string): HtmlText => {
  const document = parseDocument(html)
  const out = new TextWriter()
  walk(document, out, 0)
  const firstH1 = textOf(findFirst(document.children, (e) => e.name === "h1" && isShown(e)))
  return {
    text: out.toString(),
    // <title> lives in <head>, which is otherwise dropped.
    title: textOf(findFirst(document.children, (e) => e.name === "title", true)) ?? firstH1,
    firstHeading: firstH1 ?? textOf(findFirst(document.children, (e) => headingLevel(e.name) !== undefined && isShown(e)))
  }
}
