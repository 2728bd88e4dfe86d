/**
 * Progress and an estimate of when indexing will be done, from what was measured: the pace at
 * which the selection's documents finished lately, not a model of the indexer.
 */
import type { IndexingProgress } from "./Documents.ts"
import type { ProgressRow } from "./DocumentsRepo.ts"

/**
 * How far back the pace is measured: long enough to smooth over one indexing batch, short enough
 * that the estimate follows a change of pace (a provider slowing down, a backlog arriving).
 */
export const progressWindowSeconds = 60

/**
 * The pace counts from the first document finished in the window to now, not from the window's
 * start, so that a backlog picked up ten seconds ago is not diluted over sixty; a second at least,
 * so that a burst finishing at once does not read as an infinite pace.
 */
const minimumSpanSeconds = 1

export const indexingProgress = (row: ProgressRow): IndexingProgress => {
  const byStatus = {
    queued: row.queued,
    parsing: row.parsing,
    chunking: row.chunking,
    embedding: row.embedding,
    indexed: row.indexed,
    failed: row.failed
  }
  const pending = row.queued + row.parsing + row.chunking + row.embedding
  const perSecond =
    row.finished_in_window > 0 && row.finished_over_seconds !== null
      ? row.finished_in_window / Math.max(row.finished_over_seconds, minimumSpanSeconds)
      : undefined
  const remaining = pending === 0 ? 0 : perSecond === undefined ? null : pending / perSecond
  return {
    total: pending + row.indexed + row.failed,
    pending,
    by_status: byStatus,
    window_seconds: progressWindowSeconds,
    finished_in_window: row.finished_in_window,
    per_minute: perSecond === undefined ? null : perSecond * 60,
    estimated_seconds_remaining: remaining,
    estimated_completion_at: remaining === null ? null : new Date(row.as_of.getTime() + Math.round(remaining * 1000)),
    as_of: row.as_of
  }
}
