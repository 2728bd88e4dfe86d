/** What the rest of the server needs to know about the database it was given. */
import { Context } from "effect"
import type { DatabaseBackend } from "../health/Health.ts"

export interface DatabaseInfoShape {
  readonly backend: DatabaseBackend
  /** Whether pgvector is installed; without it search runs in lexical-only mode. */
  readonly pgvector: boolean
}

export class DatabaseInfo extends Context.Service<DatabaseInfo, DatabaseInfoShape>()("basalt/DatabaseInfo") {}

/** The table the Migrator records applied migrations in. */
export const migrationsTable = "basalt_migrations"

/** Key of the advisory lock that serialises migrations between processes starting together. */
export const migrationLockKey = 7_212_881_001
