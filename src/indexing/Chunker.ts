/**
 * Chunking: a document's text cut into passages of about `targetTokens` tokens, the unit that is
 * embedded, indexed and shown in search results.
 *
 * Structure first: a chunk holds either whole sections (small neighbouring sections share one), or
 * lies inside one section. A section too big for one chunk is cut where the text allows the
 * cleanest break: a paragraph, else a line that starts something (a list item, a table row, a
 * line of code), else a sentence end, else a line break (wrapped prose, csv rows), else a space;
 * inside a word only when one "word" (a data: URL, a base64 blob) is bigger than a whole chunk. A
 * heading is never cut off from the text that follows it, and `#` lines inside code fences are
 * not headings.
 *
 * Sizes: every chunk's `tokenCount` is at most `targetTokens`, overlap included. A chunk that
 * continues a section starts with up to `overlapTokens` tokens of the previous chunk, and at most
 * half of it (snapped to a line or sentence start when one is near), so a passage cut in two is
 * still found whole by one of them; a chunk that starts at a heading needs no overlap: the
 * heading is its context.
 *
 * Offsets are JavaScript string indices (UTF-16 code units) into `text`: `text.slice(start, end)`
 * is the chunk's `text`. Text with no visible characters gives no chunks at all (the title alone is
 * for the document record to carry, not a chunk).
 *
 * Pure and deterministic: the same document and options always give the same chunks.
 */

/** Stored with chunks so that an indexer can tell which ones a newer chunker would cut otherwise. */
export const chunkerVersion = "basalt-chunker-v1"

export interface ChunkerOptions {
  /** The largest chunk, in approximate tokens (see `countTokens`), overlap included. */
  readonly targetTokens?: number
  /** How much of the previous chunk a chunk repeats when it continues a section. */
  readonly overlapTokens?: number
}

export const defaultChunkerOptions = { targetTokens: 512, overlapTokens: 64 } as const

export interface SourceDocument {
  readonly title: string
  /** Markdown, or plain text extracted from html, pdf, docx, csv, json. */
  readonly text: string
}

export interface Chunk {
  /** 0, 1, 2, … in document order. */
  readonly ordinal: number
  /** The original span, as shown to users: `document.text.slice(start, end)`. */
  readonly text: string
  readonly start: number
  readonly end: number
  /** `countTokens(text)`. */
  readonly tokenCount: number
  /** The headings the chunk sits under, outermost first; [] before the first heading. */
  readonly headingPath: ReadonlyArray<string>
  /** What is embedded and indexed: title, heading path, then the text (line endings as \n). */
  readonly contextualText: string
}

// ---------------------------------------------------------------------------------------------
// Token counting
// ---------------------------------------------------------------------------------------------

/*
 * An approximation of BPE token counts (cl100k / o200k style), fast and deterministic, with no
 * vocabulary. The text is pre-tokenised the way those tokenizers do it, and each piece is counted:
 *   - whitespace: 0 (BPE folds a space into the next token);
 *   - one Han, Hiragana, Katakana or Hangul character: 1;
 *   - a run of digits: 1 per 3 digits (BPE splits numbers into groups of 1 to 3);
 *   - a run of letters in the Latin script of at most 24 characters: 1 per 6 characters (the
 *     common English words are one token, rarer longer ones two or three);
 *   - a longer letter run (base64, hashes, long compounds) or one in another script: 1 per 3;
 *   - a run of punctuation or symbols: 1 per 2 characters, or 1 per 8 when it repeats one
 *     character (rules such as ---- and ====, which BPE vocabularies hold as long tokens).
 * On English prose this lands within about 15% of cl100k, slightly over (the safe side for a size
 * limit); on random base64 and hex it runs 10-30% under, on Cyrillic or Greek a little over.
 */
const cjkClass = "\\p{Script=Han}\\p{Script=Hiragana}\\p{Script=Katakana}\\p{Script=Hangul}"
// Groups: 1 whitespace, 2 line break, 3 CJK character, 4 digits, 5 letters, 6 anything else.
const pretokenSource = `([^\\S\\r\\n]+)|(\\r\\n?|\\n)|([${cjkClass}])|(\\p{N}+)|((?:(?![${cjkClass}])[\\p{L}\\p{M}])+)|([^\\s\\p{L}\\p{M}\\p{N}]+)`

const Piece = { Space: 0, CjkCharacter: 1, Digits: 2, Letters: 3, Other: 4 } as const
type Piece = (typeof Piece)[keyof typeof Piece]

const pieceOf = (match: RegExpExecArray): Piece =>
  match[1] !== undefined || match[2] !== undefined
    ? Piece.Space
    : match[3] !== undefined
      ? Piece.CjkCharacter
      : match[4] !== undefined
        ? Piece.Digits
        : match[5] !== undefined
          ? Piece.Letters
          : Piece.Other

const repeatsOneCharacter = (text: string): boolean => {
  const first = text.charCodeAt(0)
  for (let i = 1; i < text.length; i++) if (text.charCodeAt(i) !== first) return false
  return text.length > 1
}

/** How many characters one token stands for, in a piece of this kind and text. */
const charactersPerToken = (piece: Piece, text: string): number => {
  switch (piece) {
    case Piece.Space:
      return Infinity
    case Piece.CjkCharacter:
      return 1
    case Piece.Digits:
      return 3
    case Piece.Letters:
      return text.length <= 24 && text.charCodeAt(0) < 0x250 ? 6 : 3
    case Piece.Other:
      return repeatsOneCharacter(text) ? 8 : 2
  }
}

const tokensOfPiece = (piece: Piece, text: string): number =>
  piece === Piece.Space ? 0 : Math.ceil(text.length / charactersPerToken(piece, text))

/** The approximate number of BPE tokens in `text` (see the comment above for the rules). */
export const countTokens = (text: string): number => {
  const pretokens = new RegExp(pretokenSource, "gu")
  let total = 0
  for (let match = pretokens.exec(text); match !== null; match = pretokens.exec(text)) {
    total += tokensOfPiece(pieceOf(match), match[0])
  }
  return total
}

// ---------------------------------------------------------------------------------------------
// Lines: headings, code fences, blank lines
// ---------------------------------------------------------------------------------------------

const LineKind = { Blank: 0, Text: 1, Heading: 2, SetextUnderline: 3, FenceOpen: 4, FenceClose: 5, Code: 6 } as const
type LineKind = (typeof LineKind)[keyof typeof LineKind]

interface Lines {
  readonly count: number
  readonly start: ReadonlyArray<number>
  readonly end: ReadonlyArray<number>
  readonly kind: ReadonlyArray<LineKind>
  /** The section each line belongs to (an index into `sectionPaths`). */
  readonly section: ReadonlyArray<number>
  /** Section 0 is the text before the first heading. */
  readonly sectionPaths: ReadonlyArray<ReadonlyArray<string>>
}

const atxHeading = /^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$/
// At least three characters: a lone "-" or "=" under a line is more often text than a heading.
const setextUnderline = /^ {0,3}(?:={3,}|-{3,})[ \t]*$/
const fenceOpening = /^ {0,3}(`{3,}|~{3,})(.*)$/
const fenceClosing = /^ {0,3}(`{3,}|~{3,})[ \t]*$/
const blankLine = /^\s*$/

const splitLines = (text: string): { start: Array<number>; end: Array<number> } => {
  const start: Array<number> = []
  const end: Array<number> = []
  const breaks = /\r\n?|\n/g
  let lineStart = 0
  for (let match = breaks.exec(text); match !== null; match = breaks.exec(text)) {
    start.push(lineStart)
    end.push(match.index)
    lineStart = match.index + match[0].length
  }
  start.push(lineStart)
  end.push(text.length)
  return { start, end }
}

const classifyLines = (text: string): Lines => {
  const { end, start } = splitLines(text)
  const count = start.length
  const kind: Array<LineKind> = new Array(count)
  const section: Array<number> = new Array(count)
  const sectionPaths: Array<ReadonlyArray<string>> = [[]]
  const open: Array<{ readonly level: number; readonly title: string }> = []
  let fence: { readonly marker: string; readonly length: number } | undefined

  const lineAt = (i: number) => text.slice(start[i]!, end[i]!)
  const startSection = (level: number, title: string) => {
    while (open.length > 0 && open[open.length - 1]!.level >= level) open.pop()
    open.push({ level, title })
    sectionPaths.push(open.map((heading) => heading.title))
  }

  for (let i = 0; i < count; i++) {
    const line = lineAt(i)
    if (fence !== undefined) {
      const closing = fenceClosing.exec(line)
      if (closing !== null && closing[1]![0] === fence.marker && closing[1]!.length >= fence.length) {
        kind[i] = LineKind.FenceClose
        fence = undefined
      } else {
        // A blank line in code still parts two blocks of it: a better break than any other line.
        kind[i] = blankLine.test(line) ? LineKind.Blank : LineKind.Code
      }
    } else if (blankLine.test(line)) {
      kind[i] = LineKind.Blank
    } else {
      const opening = fenceOpening.exec(line)
      const atx = opening === null ? atxHeading.exec(line) : null
      if (opening !== null && !(opening[1]![0] === "`" && opening[2]!.includes("`"))) {
        kind[i] = LineKind.FenceOpen
        fence = { marker: opening[1]![0]!, length: opening[1]!.length }
      } else if (atx !== null && atx[2]!.trim() !== "") {
        kind[i] = LineKind.Heading
        startSection(atx[1]!.length, atx[2]!.trim())
      } else if (
        // A setext heading: one line of text (a paragraph of its own) underlined with === or ---.
        i + 1 < count &&
        setextUnderline.test(lineAt(i + 1)) &&
        (i === 0 || kind[i - 1] !== LineKind.Text) &&
        line.trim() !== ""
      ) {
        kind[i] = LineKind.Heading
        kind[i + 1] = LineKind.SetextUnderline
        startSection(
          lineAt(i + 1)
            .trim()
            .startsWith("=")
            ? 1
            : 2,
          line.trim()
        )
        section[i] = sectionPaths.length - 1
        section[i + 1] = sectionPaths.length - 1
        i++
        continue
      } else {
        kind[i] = LineKind.Text
      }
    }
    section[i] = sectionPaths.length - 1
  }
  return { count, start, end, kind, section, sectionPaths }
}

// ---------------------------------------------------------------------------------------------
// Atoms: the units a chunk is made of, each with how good a place it is to break before it
// ---------------------------------------------------------------------------------------------

/** How good a break before an atom is; higher is better. */
const Break = {
  /** Inside a word that is bigger than a chunk, or right after a heading: only as a last resort. */
  Glue: -1,
  Word: 0,
  /**
   * A line break in the middle of a sentence: hard-wrapped prose (markdown, pdf text), where it
   * is no more than a space, or rows without punctuation (csv, json), where it is all there is.
   */
  WrappedLine: 1,
  Sentence: 2,
  /** A line that starts a list item, a table row or a quote, a line of code, a line after a sentence. */
  Line: 3,
  Paragraph: 4,
  /** A heading starts a section here. */
  Section: 5
} as const
type Break = (typeof Break)[keyof typeof Break]

interface Atoms {
  count: number
  readonly start: Array<number>
  readonly end: Array<number>
  readonly tokens: Array<number>
  readonly breakBefore: Array<Break>
  readonly section: Array<number>
  readonly isHeading: Array<boolean>
}

const sentenceEnd = /[.!?…。！？．]["'”’)\]」』）]*$/
const ideographicSentenceEnd = /[。！？．]["'”’)\]」』）]*$/
const startsLowercase = /^\p{Ll}/u
// A list item (-, *, +, •, 1., 1)), a table row or a block quote.
const structuredLine = /^\s*(?:[-*+•](?:\s|$)|\d{1,9}[.)](?:\s|$)|\||>)/

/**
 * Cuts the text into atoms: words (runs without whitespace), single CJK characters (those scripts
 * break between characters), and pieces of any word bigger than `maxAtomTokens`.
 */
const collectAtoms = (text: string, lines: Lines, maxAtomTokens: number): Atoms => {
  const atoms: Atoms = { count: 0, start: [], end: [], tokens: [], breakBefore: [], section: [], isHeading: [] }
  const pretokens = new RegExp(pretokenSource, "gu")
  let sawBlank = false
  let previousKind: LineKind = LineKind.Blank
  let lastAtomIsHeading = false
  let previousLineEndedSentence = false

  const push = (start: number, end: number, tokens: number, breakBefore: Break, section: number, isHeading: boolean) => {
    atoms.start.push(start)
    atoms.end.push(end)
    atoms.tokens.push(tokens)
    atoms.breakBefore.push(breakBefore)
    atoms.section.push(section)
    atoms.isHeading.push(isHeading)
    atoms.count++
  }

  for (let line = 0; line < lines.count; line++) {
    const kind = lines.kind[line]!
    if (kind === LineKind.Blank) {
      sawBlank = true
      continue
    }
    const lineStart = lines.start[line]!
    const lineEnd = lines.end[line]!
    const section = lines.section[line]!
    const isHeading = kind === LineKind.Heading || kind === LineKind.SetextUnderline
    const isProse = kind === LineKind.Text || kind === LineKind.Heading
    const inCode = kind === LineKind.Code || kind === LineKind.FenceClose
    const wasCode = previousKind === LineKind.Code || previousKind === LineKind.FenceClose || previousKind === LineKind.FenceOpen

    let lineBreak: Break
    if (lastAtomIsHeading && atoms.count > 0) lineBreak = Break.Glue
    else if (kind === LineKind.Heading) lineBreak = Break.Section
    else if (kind === LineKind.FenceOpen || sawBlank) lineBreak = Break.Paragraph
    else if (inCode) lineBreak = Break.Line
    else if (wasCode) lineBreak = Break.Paragraph
    else if (previousLineEndedSentence || structuredLine.test(text.slice(lineStart, lineEnd))) lineBreak = Break.Line
    else lineBreak = Break.WrappedLine
    sawBlank = false
    previousKind = kind

    let firstInLine = true
    // Whether the last atom may grow (no whitespace since), and how it ends.
    let atomOpen = false
    let lastWasCjk = false
    let endedSentence: "no" | "yes" | "ideographic" = "no"

    pretokens.lastIndex = lineStart
    for (let match = pretokens.exec(text); match !== null && match.index < lineEnd; match = pretokens.exec(text)) {
      const piece = pieceOf(match)
      if (piece === Piece.Space) {
        atomOpen = false
        continue
      }
      const pieceText = match[0]
      const tokens = tokensOfPiece(piece, pieceText)
      const joinsLastAtom =
        atomOpen &&
        (lastWasCjk ? piece === Piece.Other : piece !== Piece.CjkCharacter) &&
        atoms.tokens[atoms.count - 1]! + tokens <= maxAtomTokens

      if (joinsLastAtom) {
        atoms.end[atoms.count - 1] = match.index + pieceText.length
        atoms.tokens[atoms.count - 1] = atoms.tokens[atoms.count - 1]! + tokens
      } else {
        let breakBefore: Break
        if (firstInLine) breakBefore = lineBreak
        else if (isHeading) breakBefore = Break.Glue
        else if (atomOpen && !lastWasCjk && piece !== Piece.CjkCharacter) breakBefore = Break.Glue
        else if (!isProse || endedSentence === "no") breakBefore = Break.Word
        else if (endedSentence === "ideographic" || !startsLowercase.test(pieceText)) breakBefore = Break.Sentence
        else breakBefore = Break.Word
        if (tokens <= maxAtomTokens) {
          push(match.index, match.index + pieceText.length, tokens, breakBefore, section, isHeading)
        } else {
          // One piece bigger than a chunk: cut it into chunk-sized pieces, on code point boundaries.
          const perToken = charactersPerToken(piece, pieceText)
          const pieceLength = Math.max(2, perToken * maxAtomTokens)
          for (let offset = 0; offset < pieceText.length; ) {
            let next = Math.min(pieceText.length, offset + pieceLength)
            const code = pieceText.charCodeAt(next - 1)
            if (next < pieceText.length && code >= 0xd800 && code <= 0xdbff) next--
            push(
              match.index + offset,
              match.index + next,
              Math.ceil((next - offset) / perToken),
              offset === 0 ? breakBefore : Break.Glue,
              section,
              isHeading
            )
            offset = next
          }
        }
      }
      firstInLine = false
      atomOpen = true
      lastWasCjk = piece === Piece.CjkCharacter
      endedSentence =
        piece !== Piece.Other ? "no" : ideographicSentenceEnd.test(pieceText) ? "ideographic" : sentenceEnd.test(pieceText) ? "yes" : "no"
      if (endedSentence === "ideographic") atomOpen = false
    }
    if (!firstInLine) lastAtomIsHeading = isHeading
    previousLineEndedSentence = isProse && endedSentence !== "no"
  }
  return atoms
}

// ---------------------------------------------------------------------------------------------
// Planning: which atoms each chunk holds
// ---------------------------------------------------------------------------------------------

interface ChunkSpan {
  /** First atom, overlap included. */
  readonly from: number
  /** One past the last atom. */
  readonly to: number
}

const planChunks = (atoms: Atoms, targetTokens: number, overlapTokens: number): Array<ChunkSpan> => {
  const spans: Array<ChunkSpan> = []
  const sum = new Float64Array(atoms.count + 1)
  for (let i = 0; i < atoms.count; i++) sum[i + 1] = sum[i]! + atoms.tokens[i]!
  const tokensIn = (from: number, to: number) => sum[to]! - sum[from]!
  // What a chunk continuing a section may hold besides its overlap.
  const contentBudget = targetTokens - overlapTokens

  const sectionStarts: Array<number> = [0]
  for (let i = 1; i < atoms.count; i++) if (atoms.breakBefore[i] === Break.Section) sectionStarts.push(i)
  sectionStarts.push(atoms.count)

  /**
   * Where the chunk that continues a section at `at` starts: up to `overlapTokens` earlier, but
   * no more than half of the previous chunk (which started at `previousFrom`), so that a short
   * chunk is never repeated whole inside the next one.
   */
  const overlapStart = (sectionStart: number, previousFrom: number, at: number): number => {
    const limit = Math.min(overlapTokens, tokensIn(previousFrom, at) / 2)
    let from = at
    while (from > previousFrom + 1 && tokensIn(from - 1, at) <= limit) from--
    if (from === at) return at
    // A line start, else a sentence start, else a row start, if one keeps at least half the
    // overlap; else a word start.
    for (const quality of [Break.Line, Break.Sentence, Break.WrappedLine]) {
      for (let i = from; i < at && tokensIn(i, at) >= limit / 2; i++) {
        if (i === sectionStart || atoms.breakBefore[i]! >= quality) return i
      }
    }
    for (let i = from; i < at; i++) {
      if (i === sectionStart || atoms.breakBefore[i]! >= Break.Word) return i
    }
    return from
  }

  /** A section bigger than one chunk: balanced chunks that end at the best break in reach. */
  const splitSection = (sectionStart: number, sectionEnd: number) => {
    let at = sectionStart
    let previousFrom = sectionStart
    for (;;) {
      const from = at === sectionStart ? at : overlapStart(sectionStart, previousFrom, at)
      const limit = targetTokens - tokensIn(from, at)
      const remaining = tokensIn(at, sectionEnd)
      if (remaining <= limit) {
        spans.push({ from, to: sectionEnd })
        return
      }
      // Aim at an even share of what is left, and never leave a scrap for the last chunk.
      const ideal = remaining / Math.ceil(remaining / contentBudget)
      const minimum = ideal / 2
      let best = -1
      let bestBreak = -Infinity
      let bestDistance = Infinity
      let lastFitting = at + 1
      for (let end = at + 1; end < sectionEnd && tokensIn(at, end) <= limit; end++) {
        lastFitting = end
        const filled = tokensIn(at, end)
        if (filled < minimum || remaining - filled < minimum) continue
        const quality = atoms.breakBefore[end]!
        const distance = Math.abs(filled - ideal)
        if (quality > bestBreak || (quality === bestBreak && distance < bestDistance)) {
          best = end
          bestBreak = quality
          bestDistance = distance
        }
      }
      const end = best >= 0 ? best : lastFitting
      spans.push({ from, to: end })
      previousFrom = from
      at = end
    }
  }

  // Whole sections are packed together while they fit; a bigger one is split on its own.
  for (let s = 0; s + 1 < sectionStarts.length; ) {
    const start = sectionStarts[s]!
    if (tokensIn(start, sectionStarts[s + 1]!) > targetTokens) {
      splitSection(start, sectionStarts[s + 1]!)
      s++
      continue
    }
    let next = s + 1
    while (next + 1 < sectionStarts.length && tokensIn(start, sectionStarts[next + 1]!) <= targetTokens) next++
    spans.push({ from: start, to: sectionStarts[next]! })
    s = next
  }
  return spans
}

/** The longest common prefix of the heading paths of the chunk's text (its headings, if nothing else). */
const headingPathOf = (atoms: Atoms, span: ChunkSpan, sectionPaths: Lines["sectionPaths"]) => {
  let path: ReadonlyArray<string> | undefined
  let fallback: ReadonlyArray<string> | undefined
  let lastSection = -1
  for (let i = span.from; i < span.to; i++) {
    if (atoms.isHeading[i]) {
      fallback ??= sectionPaths[atoms.section[i]!]!
      continue
    }
    if (atoms.section[i] === lastSection) continue
    lastSection = atoms.section[i]!
    const sectionPath = sectionPaths[lastSection]!
    if (path === undefined) {
      path = sectionPath
    } else {
      let common = 0
      while (common < path.length && common < sectionPath.length && path[common] === sectionPath[common]) common++
      if (common < path.length) path = path.slice(0, common)
    }
  }
  return path ?? fallback ?? []
}

const contextualTextOf = (title: string, headingPath: ReadonlyArray<string>, text: string) => {
  const context = [title.trim(), headingPath.join(" > ")].filter((part) => part !== "").join("\n")
  const body = text.replace(/\r\n?/g, "\n")
  return context === "" ? body : `${context}\n\n${body}`
}

/**
 * Cuts a document into chunks (see the module comment). Throws a RangeError when the options
 * make no sense: `targetTokens` an integer of at least 8, `overlapTokens` an integer from 0 to
 * half of `targetTokens`.
 */
export const chunkDocument = (document: SourceDocument, options: ChunkerOptions = {}): ReadonlyArray<Chunk> => {
  const targetTokens = options.targetTokens ?? defaultChunkerOptions.targetTokens
  const overlapTokens = options.overlapTokens ?? defaultChunkerOptions.overlapTokens
  if (!Number.isInteger(targetTokens) || targetTokens < 8) {
    throw new RangeError(`targetTokens must be an integer of at least 8, got ${targetTokens}`)
  }
  if (!Number.isInteger(overlapTokens) || overlapTokens < 0 || overlapTokens > targetTokens / 2) {
    throw new RangeError(`overlapTokens must be an integer from 0 to half of targetTokens, got ${overlapTokens}`)
  }
  const lines = classifyLines(document.text)
  const atoms = collectAtoms(document.text, lines, targetTokens - overlapTokens)
  if (atoms.count === 0) return []
  return planChunks(atoms, targetTokens, overlapTokens).map((span, ordinal) => {
    const start = atoms.start[span.from]!
    const end = atoms.end[span.to - 1]!
    const text = document.text.slice(start, end)
    const headingPath = headingPathOf(atoms, span, lines.sectionPaths)
    return {
      ordinal,
      text,
      start,
      end,
      tokenCount: countTokens(text),
      headingPath,
      contextualText: contextualTextOf(document.title, headingPath, text)
    }
  })
}
