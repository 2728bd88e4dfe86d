/**
 * Pages of a document whose text came from a paged file: `pageStarts[n - 1]` is where page n's
 * text begins in the document's text (non-decreasing; a page without text begins where the next
 * one does). A chunk keeps the page it begins on and the offsets, in its own text, where later
 * pages begin, so that any offset in it names its page without the document.
 */

export interface ChunkPages {
  /** The page the chunk's first character is on. */
  readonly firstPage: number
  /** Where pages firstPage + 1, firstPage + 2, … begin, as offsets into the chunk's text. */
  readonly pageBreaks: ReadonlyArray<number>
}

/** How many of the sorted `starts` are at most `offset`. */
const countAtMost = (starts: ReadonlyArray<number>, offset: number) => {
  let low = 0
  let high = starts.length
  while (low < high) {
    const middle = (low + high) >>> 1
    if (starts[middle]! <= offset) low = middle + 1
    else high = middle
  }
  return low
}

/** The pages of the span [start, end) of the text; null when the text has no pages. */
export const chunkPages = (pageStarts: ReadonlyArray<number> | null, start: number, end: number): ChunkPages | null => {
  if (pageStarts === null || pageStarts.length === 0) return null
  const firstPage = Math.max(1, countAtMost(pageStarts, start))
  const pageBreaks = pageStarts.slice(firstPage, Math.max(firstPage, countAtMost(pageStarts, end - 1))).map((at) => at - start)
  return { firstPage, pageBreaks }
}

/** The page of `offset` in a chunk's text. */
export const pageInChunk = (pages: ChunkPages, offset: number): number => pages.firstPage + countAtMost(pages.pageBreaks, offset)
