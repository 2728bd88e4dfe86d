/**
 * Daily token budgets of chat, per user and per API key: an answer records the API key it was
 * asked with, and the day's answers of a user (through their sessions) or of a key are summed
 * from their usage.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE chat_messages ADD COLUMN api_key_id uuid REFERENCES api_keys (id) ON DELETE SET NULL`
  yield* sql`CREATE INDEX chat_messages_api_key_created ON chat_messages (api_key_id, created_at) WHERE api_key_id IS NOT NULL`
})
