/**
 * The cluster's stored messages (SqlMessageStorage's `cluster_messages` and `cluster_replies`,
 * on the app's database). The cluster never deletes a processed message itself (only
 * `clearAddress`, which nothing calls), so every indexing request would stay a row in each table
 * forever; this deletes them once they are old.
 *
 * A message has no timestamp column, but its id is a Snowflake, whose top bits are the
 * milliseconds of its creation: "older than" is a range of the primary key.
 *
 * Why deleting is safe: a processed message is kept only to coalesce a re-submission of the same
 * revision (its primary key) and to answer callers waiting for its reply. Nobody waits an hour
 * for a reply (submissions are fire-and-forget), and a revision re-submitted after its message is
 * gone is a new message whose run ends "already indexed" (the pipeline compares the document's
 * revision and status), so the document is not indexed twice. Unprocessed messages are never
 * touched, however old (a message waiting for a provider's outage to pass must still run).
 */
import { Context, Effect, Layer } from "effect"
import { MachineId, Snowflake } from "effect/cluster"
import { SqlClient } from "effect/sql"
import { deleteInBatches } from "../database/Cleanup.ts"

// Rows deleted per statement: a backlog is cleared in short statements, not one long one.
const cleanupBatch = 1_000

/** The smallest Snowflake made at or after `at`: every message id below it was made before. */
export const snowflakeAt = (at: Date): bigint => Snowflake.make({ timestamp: at.getTime(), machineId: MachineId.make(0), sequence: 0 })

export class ClusterMessagesRepo extends Context.Service<ClusterMessagesRepo>()("basalt/ClusterMessagesRepo", {
  make: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient

    /**
     * Deletes the processed messages made before `before`, with their replies, in batches; returns
     * how many messages. Rows another process is deleting (or the cluster is updating) are
     * skipped, so several processes on one database can run this at once.
     */
    const deleteProcessed = (before: Date) => {
      const below = snowflakeAt(before).toString()
      return deleteInBatches(
        cleanupBatch,
        Effect.map(
          sql<{ messages: number }>`
            WITH doomed AS (
              SELECT id, request_id FROM cluster_messages
              WHERE id < ${below}::bigint AND processed
              ORDER BY id
              LIMIT ${cleanupBatch}
              FOR UPDATE SKIP LOCKED
            ), replies AS (
              DELETE FROM cluster_replies WHERE request_id IN (SELECT request_id FROM doomed)
            ), messages AS (
              DELETE FROM cluster_messages WHERE id IN (SELECT id FROM doomed) RETURNING 1
            )
            SELECT count(*)::int AS messages FROM messages`,
          ([row]) => row!.messages
        )
      )
    }

    return { deleteProcessed } as const
  })
}) {
  static readonly layer = Layer.effect(this, this.make)
}
