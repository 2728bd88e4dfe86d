/**
 * Rate-limit token buckets, one row per bucket (`auth:ip:<address>`, `principal:user:<id>`,
 * `principal:key:<id>`),
 * shared by every process on the database. A row whose `full_at` has passed is a full bucket,
 * the same as no row, and is deleted by any process. UNLOGGED: written on every limited request,
 * and losing it in a crash only refills the buckets.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE UNLOGGED TABLE rate_limit_buckets (
      key text PRIMARY KEY,
      tokens double precision NOT NULL,
      -- How many tokens the last statement granted (it may take several for a batch of requests).
      granted integer NOT NULL,
      updated_at timestamptz NOT NULL,
      full_at timestamptz NOT NULL
    )`
  yield* sql`CREATE INDEX rate_limit_buckets_full_at ON rate_limit_buckets (full_at)`
})
