/**
 * Folds the BM25 statistics' deltas (appended by the chunks triggers, migration 0011) into
 * their totals, so that a query sums few delta rows. Queries are exact without it: folding only
 * keeps them fast. A lexeme whose count falls to 0 keeps its row (df 0
 * is what no row means too). One process folds at a time (a transaction-scoped advisory lock); the others
 * skip that round.
 */
import { Duration, Effect, Layer, Schedule } from "effect"
import { SqlClient } from "effect/sql"
import { warnUnlessOutage } from "../database/DatabaseOutage.ts"

const foldLockKey = 7_212_881_011
const foldEvery = Duration.seconds(2)

// Every two seconds in every process: a round that finds no deltas leaves no span, so that an
// idle server's traces are its requests only.
const deltasPending = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<{ pending: boolean }>`
    SELECT EXISTS (SELECT 1 FROM search_lexeme_deltas) OR EXISTS (SELECT 1 FROM search_corpus_deltas) AS pending`
  return row?.pending === true
}).pipe(Effect.withTracerEnabled(false))

export const foldSearchStatistics = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql.withTransaction(
    Effect.gen(function* () {
      const [lock] = yield* sql<{ locked: boolean }>`SELECT pg_try_advisory_xact_lock(${foldLockKey}) AS locked`
      if (lock?.locked !== true) return
      yield* sql`
      WITH moved AS (DELETE FROM search_lexeme_deltas RETURNING lexeme, chunk_count),
      summed AS (SELECT lexeme, sum(chunk_count) AS chunk_count FROM moved GROUP BY lexeme)
      INSERT INTO search_lexeme_stats AS s (lexeme, chunk_count)
      SELECT lexeme, chunk_count FROM summed ORDER BY lexeme
      ON CONFLICT (lexeme) DO UPDATE SET chunk_count = s.chunk_count + excluded.chunk_count`
      yield* sql`
      WITH moved AS (DELETE FROM search_corpus_deltas RETURNING chunk_count, term_count)
      UPDATE search_corpus_stats SET
        chunk_count = chunk_count + coalesce((SELECT sum(chunk_count) FROM moved), 0),
        term_count = term_count + coalesce((SELECT sum(term_count) FROM moved), 0)`
    })
  )
}).pipe(Effect.withSpan("SearchStatistics.fold"))

/** Folds every two seconds while the server runs; a failed round is logged and retried next time. */
export const SearchStatisticsLive = Layer.effectDiscard(
  Effect.flatMap(deltasPending, (pending) => (pending ? foldSearchStatistics : Effect.void)).pipe(
    Effect.catchCause(warnUnlessOutage("folding the search statistics failed")),
    Effect.schedule(Schedule.spaced(foldEvery)),
    Effect.forkScoped
  )
)
