/**
 * Chat: sessions (each its owner's alone), their messages as a tree (`parent_message_id`: a
 * branch or a regenerated answer shares its parent), exactly which chunks of which revision each
 * answer was shown, the citations it was checked to make, and its owner's feedback. Chunk and
 * document ids are kept without foreign keys: an answer's record outlives a re-indexing or a
 * deletion, and reads check the caller's access to each cited document as it is now.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE TABLE chat_sessions (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      owner_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
      title text NOT NULL,
      scope jsonb NOT NULL DEFAULT '{}',
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      current_message_id uuid
    )`
  // The owner's list, newest first.
  yield* sql`CREATE INDEX chat_sessions_owner_created ON chat_sessions (owner_id, created_at DESC, id DESC)`
  yield* sql`
    CREATE TABLE chat_messages (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      session_id uuid NOT NULL REFERENCES chat_sessions (id) ON DELETE CASCADE,
      parent_message_id uuid REFERENCES chat_messages (id) ON DELETE CASCADE,
      role text NOT NULL CHECK (role IN ('user', 'assistant')),
      content text NOT NULL,
      status text NOT NULL CHECK (status IN ('generating', 'complete', 'stopped', 'failed')),
      model text,
      finish_reason text CHECK (finish_reason IN ('stop', 'length', 'stopped', 'error')),
      usage jsonb,
      -- What is not the client's business: invented or unshown citation numbers dropped, timings.
      metadata jsonb NOT NULL DEFAULT '{}',
      created_at timestamptz NOT NULL DEFAULT now()
    )`
  yield* sql`CREATE INDEX chat_messages_session_created ON chat_messages (session_id, created_at)`
  yield* sql`CREATE INDEX chat_messages_parent ON chat_messages (parent_message_id) WHERE parent_message_id IS NOT NULL`
  yield* sql`
    ALTER TABLE chat_sessions ADD CONSTRAINT chat_sessions_current_message
      FOREIGN KEY (current_message_id) REFERENCES chat_messages (id) ON DELETE SET NULL`
  // `position` is the [n] the prompt numbered the chunk with.
  yield* sql`
    CREATE TABLE chat_message_chunks (
      message_id uuid NOT NULL REFERENCES chat_messages (id) ON DELETE CASCADE,
      position integer NOT NULL CHECK (position >= 1),
      document_id uuid NOT NULL,
      chunk_id uuid NOT NULL,
      revision integer NOT NULL CHECK (revision >= 1),
      PRIMARY KEY (message_id, position)
    )`
  yield* sql`
    CREATE TABLE chat_citations (
      message_id uuid NOT NULL REFERENCES chat_messages (id) ON DELETE CASCADE,
      number integer NOT NULL CHECK (number >= 1),
      document_id uuid NOT NULL,
      chunk_id uuid NOT NULL,
      revision integer NOT NULL CHECK (revision >= 1),
      answer_start integer NOT NULL CHECK (answer_start >= 0),
      answer_end integer NOT NULL CHECK (answer_end >= answer_start),
      chunk_start integer NOT NULL CHECK (chunk_start >= 0),
      chunk_end integer NOT NULL CHECK (chunk_end >= chunk_start),
      quote text NOT NULL,
      page integer CHECK (page >= 1),
      PRIMARY KEY (message_id, answer_start, number)
    )`
  yield* sql`
    CREATE TABLE chat_feedback (
      message_id uuid PRIMARY KEY REFERENCES chat_messages (id) ON DELETE CASCADE,
      user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
      rating text NOT NULL CHECK (rating IN ('positive', 'negative')),
      text text,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now()
    )`
})
