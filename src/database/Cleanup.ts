/**
 * Housekeeping of rows that outlive their use (refilled rate-limit buckets, processed indexing
 * messages, old deletion records): deleted in bounded statements, on a timer in every process.
 */
import { Duration, Effect } from "effect"
import { warnUnlessOutage } from "./DatabaseOutage.ts"

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
 * cleanup at once (each statement skips rows another one holds). Rounds are not traced: an idle
 * server's traces are its requests only, and the log says what a round deleted and how long it took.
 */
export const cleanUpEvery = <E, R>(interval: Duration.Input, what: string, cleanup: Effect.Effect<number, E, R>) =>
  cleanup.pipe(
    Effect.timed,
    Effect.tap(([took, deleted]) =>
      deleted > 0 ? Effect.logDebug(`deleted ${deleted} ${what} in ${Duration.format(took)}`) : Effect.void
    ),
    Effect.withTracerEnabled(false),
    Effect.catchCause(warnUnlessOutage(`could not delete ${what}`)),
    Effect.delay(interval),
    Effect.forever,
    Effect.forkScoped
  )

/** `prune` of the rows older than `retention`, the cutoff taken anew each time it runs. */
export const olderThan = <E, R>(retention: Duration.Input, prune: (cutoff: Date) => Effect.Effect<number, E, R>) =>
  Effect.suspend(() => prune(new Date(Date.now() - Duration.toMillis(retention))))
