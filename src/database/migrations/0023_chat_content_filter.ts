/** An answer the provider cut short with its content filter is recorded as such (`content_filter`). */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE chat_messages DROP CONSTRAINT chat_messages_finish_reason_check`
  yield* sql`
    ALTER TABLE chat_messages ADD CONSTRAINT chat_messages_finish_reason_check
      CHECK (finish_reason IN ('stop', 'length', 'content_filter', 'stopped', 'error'))`
})
