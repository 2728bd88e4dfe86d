/**
 * SQL for the token buckets. Taking a token is one statement, so that processes sharing the
 * database cannot both spend the same token; the refill is measured on the database's clock, so
 * that processes whose clocks disagree still agree on it.
 */
import { Context, Effect, Layer } from "effect"
import { SqlClient, type SqlError } from "effect/sql"
import { deleteInBatches } from "../database/Cleanup.ts"
import type { BucketState } from "./RateLimitPolicy.ts"

// Rows deleted per statement: a backlog is cleared in short statements, not one long one.
const cleanupBatch = 5_000

export class RateLimitRepo extends Context.Service<RateLimitRepo>()("basalt/RateLimitRepo", {
  make: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient

    /**
     * Takes up to `count` tokens from bucket `key` (`quota` tokens, refilled at `perSecond`): as
     * many as it has whole, so that a batch of requests is granted exactly what one-by-one
     * requests would be. A new bucket starts full. Concurrent first requests on a new key are
     * serialised by the primary key: one inserts, the others update the row it inserted. A
     * statement that waited for the row lock read the clock before waiting, so the elapsed time
     * is never taken below zero and the bucket's time never goes back. `granted` is stored
     * because RETURNING sees only the new row.
     */
    const takeMany = (key: string, count: number, quota: number, perSecond: number) =>
      Effect.map(
        sql<{ readonly granted: number; readonly tokens: number }>`
          INSERT INTO rate_limit_buckets AS b (key, tokens, granted, updated_at, full_at)
          SELECT ${key}, ${quota}::float8 - first.granted, first.granted, clock.at,
                 clock.at + interval '1 second' * (first.granted / ${perSecond}::float8)
          FROM (SELECT clock_timestamp() AS at) clock,
               (SELECT least(${count}::int, floor(${quota}::float8)::int) AS granted) first
          ON CONFLICT (key) DO UPDATE SET (tokens, granted, updated_at, full_at) = (
            SELECT decision.remaining, decision.granted, decision.at,
                   decision.at + interval '1 second' * ((${quota}::float8 - decision.remaining) / ${perSecond}::float8)
            FROM (
              SELECT granting.at, granting.granted, granting.tokens - granting.granted AS remaining
              FROM (
                SELECT refill.at, refill.tokens, least(${count}::int, floor(refill.tokens)::int) AS granted
                FROM (
                  SELECT greatest(b.updated_at, excluded.updated_at) AS at,
                         least(
                           ${quota}::float8,
                           b.tokens + greatest(0, extract(epoch FROM excluded.updated_at - b.updated_at)::float8) * ${perSecond}::float8
                         ) AS tokens
                ) refill
              ) granting
            ) decision
          )
          RETURNING granted, tokens`,
        (rows) => rows[0]!
      )

    /** Takes one token, if the bucket has one. */
    const take = (key: string, quota: number, perSecond: number): Effect.Effect<BucketState, SqlError.SqlError> =>
      Effect.map(takeMany(key, 1, quota, perSecond), ({ granted, tokens }) => ({ granted: granted > 0, tokens }))

    /**
     * Deletes the buckets that have refilled completely (no row is the same as a full bucket);
     * returns how many. Rows another statement holds are skipped, and a row updated since this
     * statement's snapshot is judged on its new state, so no live bucket is lost.
     */
    const deleteFull = deleteInBatches(
      cleanupBatch,
      Effect.map(
        sql`
          DELETE FROM rate_limit_buckets
          WHERE key IN (
            SELECT key FROM rate_limit_buckets
            WHERE full_at < clock_timestamp()
            LIMIT ${cleanupBatch}
            FOR UPDATE SKIP LOCKED
          )
          RETURNING 1`,
        (rows) => rows.length
      )
    )

    return { take, takeMany, deleteFull } as const
  })
}) {
  static readonly layer = Layer.effect(this, this.make)
}
