/**
 * HTML to searchable text: headings become Markdown `#` lines (chunking splits on them), blocks
 * become paragraphs, list items `- ` lines and table rows `a | b` lines. Scripts, styles,
 * navigation, templates and hidden elements are dropped: their text is not the document's.
 * htmlparser2 builds the tree forgivingly and decodes entities. DOCX goes through here too, as
 * the HTML mammoth makes of it.
 *
 * Nesting is bounded, and the tree is walked without recursion: a file of 50,000 nested `<div>`s
 * is a few hundred kilobytes, and htmlparser2 pays for every tag in proportion to the depth (its
 * stack is an array it shifts), so a deep file is refused while parsing, before that cost grows.
 */
import { Effect } from "effect"
import { DomHandler, type DomHandlerOptions, ElementType, Parser } from "htmlparser2"
import { CorruptFile, type DocumentFormat } from "./ExtractionErrors.ts"

type HtmlDocument = DomHandler["root"]
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

/** Elements deeper than this make a document unreadable; real documents stay far below it. */
export const maxElementDepth = 1_000

const tooDeep = Symbol("nested too deeply")

/** Builds the tree, and stops the parser (by throwing) once elements nest deeper than `maxDepth`. */
class DepthBoundedHandler extends DomHandler {
  constructor(
    private readonly maxDepth: number,
    options: DomHandlerOptions
  ) {
    super(undefined, options)
  }

  override onopentag(name: string, attribs: Record<string, string>) {
    super.onopentag(name, attribs)
    // The stack starts with the document itself.
    if (this.tagStack.length - 1 > this.maxDepth) throw tooDeep
  }
}

/** The tree of `markup`, or undefined when its elements nest deeper than `maxElementDepth`. */
export const parseBounded = (markup: string, options: { readonly xmlMode?: boolean } = {}) => {
  const xmlMode = options.xmlMode ?? false
  const handler = new DepthBoundedHandler(maxElementDepth, { xmlMode })
  try {
    new Parser(handler, { xmlMode }).end(markup)
  } catch (error) {
    if (error === tooDeep) return undefined
    throw error
  }
  return handler.root
}

/** The visible text of `nodes` on one line, whatever blocks they hold. */
const inlineText = (nodes: ReadonlyArray<HtmlNode>): string => {
  const parts: Array<string> = []
  // Nodes to read, and the separators to write after an element's children.
  const pending: Array<HtmlNode | string> = [...nodes].reverse()
  while (pending.length > 0) {
    const next = pending.pop()!
    if (typeof next === "string") parts.push(next)
    else if (next.type === ElementType.Text) parts.push(next.data)
    else if (isElement(next) && isShown(next)) {
      const name = next.name
      const separator = blocks.has(name) || name === "br" || name === "li" || name === "td" || name === "th" ? " " : ""
      parts.push(separator)
      pending.push(separator)
      for (let i = next.children.length - 1; i >= 0; i--) pending.push(next.children[i]!)
    }
  }
  return parts.join("")
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

/** A node to write, or what to write once an element's children are written. */
type Step = { readonly node: HtmlNode; readonly listDepth: number; readonly position: number } | (() => void)

/** Puts `node`'s children on `pending` (a stack: last in, first out), numbering list items. */
const pushChildren = (pending: Array<Step>, node: { readonly children: ReadonlyArray<HtmlNode> }, listDepth: number) => {
  let items = 0
  for (const child of node.children) if (isElement(child) && child.name === "li") items++
  for (let i = node.children.length - 1; i >= 0; i--) {
    const child = node.children[i]!
    const isItem = isElement(child) && child.name === "li"
    pending.push({ node: child, listDepth, position: isItem ? items-- : 0 })
  }
}

/** Writes the document's blocks to `out`, depth first. */
const writeBlocks = (document: HtmlDocument, out: TextWriter) => {
  const pending: Array<Step> = []
  pushChildren(pending, document, 0)
  const descend = (node: HtmlElement, listDepth: number, after: () => void) => {
    pending.push(after)
    pushChildren(pending, node, listDepth)
  }
  while (pending.length > 0) {
    const step = pending.pop()!
    if (typeof step === "function") {
      step()
      continue
    }
    const { node, listDepth, position } = step
    if (node.type === ElementType.Text) {
      out.text(node.data)
      continue
    }
    if (!isElement(node) || !isShown(node)) continue
    const name = node.name
    const level = headingLevel(name)
    if (level !== undefined) {
      out.flush()
      const heading = collapse(inlineText([node]))
      if (heading !== "") out.push(`${"#".repeat(level)} ${heading}`, false)
      continue
    }
    switch (name) {
      case "br":
        out.lineBreak()
        continue
      case "pre": {
        out.flush()
        const preformatted = inlineText(node.children).replace(/^\n/, "").trimEnd()
        if (preformatted.trim() !== "") out.push(preformatted, false)
        continue
      }
      case "li": {
        const parent = node.parent
        const ordered = parent !== null && "name" in parent && parent.name === "ol"
        out.startBlock(`${"  ".repeat(Math.max(0, listDepth - 1))}${ordered ? `${position}.` : "-"} `, true)
        descend(node, listDepth, () => out.flush())
        continue
      }
      case "tr": {
        out.flush()
        const cells = node.children
          .filter((cell): cell is HtmlElement => isElement(cell) && (cell.name === "td" || cell.name === "th") && isShown(cell))
          .map((cell) => collapse(inlineText([cell])))
        if (cells.some((cell) => cell !== "")) out.push(cells.join(" | ").trimEnd(), true)
        continue
      }
      case "ul":
      case "ol":
        // A nested list continues its parent's lines.
        if (listDepth === 0) out.newGroup()
        else out.flush()
        descend(node, listDepth + 1, () => out.flush())
        continue
      case "table":
        out.newGroup()
        descend(node, listDepth, () => out.newGroup())
        continue
    }
    if (blocks.has(name)) {
      out.flush()
      descend(node, listDepth, () => out.flush())
      continue
    }
    pushChildren(pending, node, listDepth)
  }
}

/** The first element passing `test`, in document order; hidden subtrees only when `inHidden`. */
const findFirst = (document: HtmlDocument, test: (element: HtmlElement) => boolean, inHidden = false): HtmlElement | undefined => {
  const pending: Array<HtmlNode> = [...document.children].reverse()
  while (pending.length > 0) {
    const node = pending.pop()!
    if (!isElement(node)) continue
    if (test(node)) return node
    // An SVG's <title> names the drawing, not the page.
    if ((!inHidden && !isShown(node)) || node.name === "svg") continue
    for (let i = node.children.length - 1; i >= 0; i--) pending.push(node.children[i]!)
  }
  return undefined
}

const textOf = (element: HtmlElement | undefined) => {
  if (element === undefined) return null
  // <title> holds raw text only; other elements are read as shown.
  const text = collapse(inlineText(element.name === "title" ? element.children : [element]))
  return text === "" ? null : text
}

/** The text of `html`; a `format` file (HTML, or a DOCX as HTML) that nests too deeply is unreadable. */
export const htmlToText = (html: string, format: DocumentFormat): Effect.Effect<HtmlText, CorruptFile> => {
  const document = parseBounded(html)
  if (document === undefined) {
    return Effect.fail(CorruptFile.of(format, `its content is nested more than ${maxElementDepth} levels deep`))
  }
  const out = new TextWriter()
  writeBlocks(document, out)
  const firstH1 = textOf(findFirst(document, (e) => e.name === "h1" && isShown(e)))
  return Effect.succeed({
    text: out.toString(),
    // <title> lives in <head>, which is otherwise dropped.
    title: textOf(findFirst(document, (e) => e.name === "title", true)) ?? firstH1,
    firstHeading: firstH1 ?? textOf(findFirst(document, (e) => headingLevel(e.name) !== undefined && isShown(e)))
  })
}
