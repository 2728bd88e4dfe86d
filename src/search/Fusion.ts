/**
 * Reciprocal-rank fusion (Cormack et al. 2009): an item at rank r (1-based) of a list with
 * weight w earns w / (k + r); an item's score is the sum over the lists it is in. k = 60 damps
 * the difference between the very top ranks, so that neither list's score scale matters.
 */
export const rrfK = 60

export interface RankedList {
  /** Best first; an id appears at most once. */
  readonly ids: ReadonlyArray<string>
  readonly weight: number
}

/** The fused ranking, best first; equal scores in id order, so that every page sees one order. */
export const fuseRankings = (lists: ReadonlyArray<RankedList>): ReadonlyArray<{ readonly id: string; readonly score: number }> => {
  const scores = new Map<string, number>()
  for (const list of lists) {
    list.ids.forEach((id, index) => {
      scores.set(id, (scores.get(id) ?? 0) + list.weight / (rrfK + index + 1))
    })
  }
  return [...scores.entries()]
    .map(([id, score]) => ({ id, score }))
    .sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
}
