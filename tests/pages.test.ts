/**
 * Pages of a paged document's text (documents/Pages.ts): the page a chunk begins on and where
 * later pages begin inside it, blank pages included.
 */
import { describe, expect, it } from "vitest"
import { chunkPages, pageInChunk } from "../src/documents/Pages.ts"

// "AAAA\n\nBBBB\n\nDDDD": page 1 at 0, page 2 at 6, page 3 blank (begins where page 4 does), page 4 at 12.
const text = "AAAA\n\nBBBB\n\nDDDD"
const starts = [0, 6, 12, 12]

/** The page of every character of `text`, as a chunk of [start, end) names it. */
const pagesOfSpan = (start: number, end: number) => {
  const pages = chunkPages(starts, start, end)!
  return Array.from(text.slice(start, end), (_, offset) => pageInChunk(pages, offset))
}

/** The page of each character by the definition: the last page whose start is at most its offset. */
const expected = (start: number, end: number) =>
  Array.from(text.slice(start, end), (_, offset) => starts.findLastIndex((at) => at <= start + offset) + 1)

describe("chunkPages", () => {
  it("gives every character of any span the page it is on, by the span alone", () => {
    for (let start = 0; start < text.length; start++) {
      for (let end = start + 1; end <= text.length; end++) expect(pagesOfSpan(start, end)).toEqual(expected(start, end))
    }
    expect(chunkPages(starts, 0, text.length)).toEqual({ firstPage: 1, pageBreaks: [6, 12, 12] })
    expect(chunkPages(starts, 12, 16)).toEqual({ firstPage: 4, pageBreaks: [] })
    expect(chunkPages(starts, 7, 13)).toEqual({ firstPage: 2, pageBreaks: [5, 5] })
  })

  it("skips blank leading pages and has nothing to say without pages", () => {
    expect(chunkPages([0, 0, 5], 0, 3)).toEqual({ firstPage: 2, pageBreaks: [] })
    expect(chunkPages(null, 0, 3)).toBeNull()
    expect(chunkPages([], 0, 3)).toBeNull()
  })
})
