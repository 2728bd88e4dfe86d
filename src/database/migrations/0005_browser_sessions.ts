/**
 * Browser sessions: a session may also be reachable by an HttpOnly cookie, whose secret is kept
 * only as a hash (like refresh tokens). Unlike the refresh token it is not rotated: it lives as
 * long as the session, which logout or a password change ends.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE sessions ADD COLUMN cookie_token_hash text UNIQUE`
})
