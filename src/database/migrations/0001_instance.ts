/**
 * The database's identity: one row, written once, so that operators can tell which database a
 * server is attached to (it is logged at start).
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE TABLE basalt_instance (
      singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
      instance_id uuid NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now()
    )`
  yield* sql`INSERT INTO basalt_instance (instance_id) VALUES (gen_random_uuid())`
})
