/**
 * Documents, their chunks, and collections (shared sets of documents with members).
 *
 * Who may read a document (src/documents/Visibility.ts): its owner, members of a collection it
 * is in, anyone when it is public, and admins. Chunks carry no visibility of their own: every
 * read joins their document. Embeddings live in `chunk_embeddings`, created only where pgvector
 * is (see 0009); keyword search columns and indexes are the search migration's.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE TABLE collections (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      name text NOT NULL,
      description text NOT NULL DEFAULT '',
      owner_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now()
    )`
  // The owner is a member too (role owner), so one join answers "may this user see it".
  yield* sql`
    CREATE TABLE collection_members (
      collection_id uuid NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
      user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
      role text NOT NULL CHECK (role IN ('owner', 'editor', 'viewer')),
      added_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (collection_id, user_id)
    )`
  yield* sql`CREATE INDEX collection_members_user_id ON collection_members (user_id)`
  yield* sql`
    CREATE TABLE documents (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      owner_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
      source text NOT NULL,
      external_id text,
      url text,
      title text NOT NULL,
      content text NOT NULL,
      content_hash text NOT NULL,
      metadata jsonb NOT NULL DEFAULT '{}',
      tags text[] NOT NULL DEFAULT '{}',
      visibility text NOT NULL DEFAULT 'private' CHECK (visibility IN ('private', 'public')),
      status text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'parsing', 'chunking', 'embedding', 'indexed', 'failed')),
      error text,
      chunk_count integer NOT NULL DEFAULT 0,
      -- Bumped by every change that needs re-indexing, so a stale indexing run can tell.
      revision integer NOT NULL DEFAULT 1,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      status_changed_at timestamptz NOT NULL DEFAULT now(),
      indexed_at timestamptz
    )`
  // The same (source, external_id) from the same owner is the same document (an update).
  yield* sql`CREATE UNIQUE INDEX documents_owner_source_external_id ON documents (owner_id, source, external_id) WHERE external_id IS NOT NULL`
  yield* sql`CREATE INDEX documents_owner_updated ON documents (owner_id, updated_at DESC, id DESC)`
  yield* sql`CREATE INDEX documents_public ON documents (updated_at DESC, id DESC) WHERE visibility = 'public'`
  yield* sql`CREATE INDEX documents_status_changed ON documents (status_changed_at)`
  yield* sql`CREATE INDEX documents_tags ON documents USING gin (tags)`
  yield* sql`
    CREATE TABLE document_collections (
      document_id uuid NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
      collection_id uuid NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
      added_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (document_id, collection_id)
    )`
  yield* sql`CREATE INDEX document_collections_collection_id ON document_collections (collection_id)`
  yield* sql`
    CREATE TABLE chunks (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      document_id uuid NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
      ordinal integer NOT NULL,
      content text NOT NULL,
      -- What is indexed and embedded: the title and heading path carried with the text.
      contextual_content text NOT NULL,
      heading_path text[] NOT NULL DEFAULT '{}',
      start_offset integer NOT NULL,
      end_offset integer NOT NULL,
      token_count integer NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      UNIQUE (document_id, ordinal)
    )`
})
