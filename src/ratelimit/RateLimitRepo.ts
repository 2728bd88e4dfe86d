/**
 * SQL for the token buckets. Taking a token is one statement, so that processes sharing the
 * database cannot both spend the same token; the refill is measured on the database's clock, so
 * that processes whose clocks disagree still agree on it.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import type { BucketState } from "./RateLimitPolicy.ts"

// Rows deleted per statement: a backlog is cleared in short statements, not one long one.
const cleanupBatch = 5_000

export class RateLimitRepo extends Effect.Service<RateLimitRepo>()("basalt/RateLimitRepo", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    /**
     * Takes one token from bucket `key` (`quota` tokens, refilled at `perSecond`), if it has one.
     * A new bucket starts full. Concurrent first requests on a new key are serialised by the
     * primary key: one inserts, the others update the row it inserted. A statement that waited
     * for the row lock read the clock before waiting, so the elapsed time is never taken below
     * zero and the bucket's time never goes back. `granted` is stored because RETURNING sees only
     * the new row.
     */
    const take = (key: string, quota: number, perSecond: number) =>
      Effect.map(
        sql<BucketState>`
          INSERT INTO rate_limit_buckets AS b (key, tokens, granted, updated_at, full_at)
          SELECT ${key}, ${quota}::float8 - 1, true, clock.at, clock.at + interval '1 second' / ${perSecond}::float8
          FROM (SELECT clock_timestamp() AS at) clock
          ON CONFLICT (key) DO UPDATE SET (tokens, granted, updated_at, full_at) = (
            SELECT decision.remaining, decision.granted, decision.at,
                   decision.at + interval '1 second' * ((${quota}::float8 - decision.remaining) / ${perSecond}::float8)
            FROM (
              SELECT refill.at, refill.tokens >= 1 AS granted,
                     refill.tokens - CASE WHEN refill.tokens >= 1 THEN 1 ELSE 0 END AS remaining
              FROM (
                SELECT greatest(b.updated_at, excluded.updated_at) AS at,
                       least(
                         ${quota}::float8,
                         b.tokens + greatest(0, extract(epoch FROM excluded.updated_at - b.updated_at)::float8) * ${perSecond}::float8
                       ) AS tokens
              ) refill
            ) decision
          )
          RETURNING granted, tokens`,
        (rows) => rows[0]!
      )

    /**
     * Deletes the buckets that have refilled completely (no row is the same as a full bucket);
     * returns how many. Rows another statement holds are skipped, and a row updated since this
     * statement's snapshot is judged on its new state, so no live bucket is lost.
     */
    const deleteFull = Effect.gen(function*() {
      let deleted = 0
      while (true) {
        const rows = yield* sql`
          DELETE FROM rate_limit_buckets
          WHERE key IN (
            SELECT key FROM rate_limit_buckets
            WHERE full_at < clock_timestamp()
            LIMIT ${cleanupBatch}
            FOR UPDATE SKIP LOCKED
          )
          RETURNING 1`
        deleted += rows.length
        if (rows.length < cleanupBatch) return deleted
      }
    })

    return { take, deleteFull } as const
  })
}) {}
