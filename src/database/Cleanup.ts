/**
 * Housekeeping of rows that outlive their use (refilled rate-limit buckets, processed indexing
 * messages, old deletion records): deleted in bounded statements, on a timer in every process.
 */
import { Duration, Effect } from "effect"

/**
 * Runs `deleteBatch` (one statement deleting at most `batch` rows, returning how many) until one
 * deletes fewer: a backlog goes in short statements and short locks, not one long one. Returns
 * the total.
 */
export const deleteInBatches = <E, R>(batch: number, deleteBatch: Effect.Effect<number, E, R>) =>
  Effect.gen(function* () {
    let total = 0
    while (true) {
      const deleted = yield* deleteBatch
      total += deleted
      if (deleted < batch) return total
    }
  })

/**
 * Runs `cleanup` every `interval` for as long as the scope lasts: what it deleted is logged at
 * debug, a failure is a warning and the next round tries again. Several processes may run the same
 * cleanup at once (each statement skips rows another one holds).
 */
export const cleanUpEvery = <E, R>(interval: Duration.Input, what: string, cleanup: Effect.Effect<number, E, R>) =>
  cleanup.pipe(
    Effect.tap((deleted) => (deleted > 0 ? Effect.logDebug(`deleted ${deleted} ${what}`) : Effect.void)),
    Effect.catchCause((cause) => Effect.logWarning(`could not delete ${what}`, cause)),
    Effect.delay(interval),
    Effect.forever,
    Effect.forkScoped
  )

/** `prune` of the rows older than `retention`, the cutoff taken anew each time it runs. */
export const olderThan = <E, R>(retention: Duration.Input, prune: (cutoff: Date) => Effect.Effect<number, E, R>) =>
  Effect.suspend(() => prune(new Date(Date.now() - Duration.toMillis(retention))))
