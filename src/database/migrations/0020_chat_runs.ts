/**
 * Chat runs: an answer being generated is a resource of its own. Its events are kept here, in
 * order, so that a client can replay them from any process and follow the rest live; they are
 * deleted a configured time after the run finished (`finished_at`, set with its last event).
 * `stop_requested_at` is how a stop asked for on one process reaches the runner on another.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE TABLE chat_run_events (
      message_id uuid NOT NULL REFERENCES chat_messages (id) ON DELETE CASCADE,
      seq integer NOT NULL,
      type text NOT NULL CHECK (type IN ('message_start', 'token', 'citation', 'message_end', 'error')),
      data jsonb NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (message_id, seq)
    )`
  yield* sql`ALTER TABLE chat_messages ADD COLUMN stop_requested_at timestamptz, ADD COLUMN finished_at timestamptz`
})
