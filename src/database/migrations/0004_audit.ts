/** The audit log: append-only, newest read first. */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE TABLE audit_events (
      id bigserial PRIMARY KEY,
      at timestamptz NOT NULL DEFAULT now(),
      action text NOT NULL,
      actor_id uuid,
      subject_id uuid,
      client_ip text,
      details jsonb NOT NULL DEFAULT '{}'
    )`
  yield* sql`CREATE INDEX audit_events_action ON audit_events (action, id)`
  yield* sql`CREATE INDEX audit_events_actor ON audit_events (actor_id, id)`
})
