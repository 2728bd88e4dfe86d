/**
 * Every migration, imported statically (no filesystem glob) so that Deno and bundlers see them.
 * Keys are `<id>_<name>`; ids only ever grow.
 */
import * as Migrator from "@effect/sql/Migrator"
import instance from "./0001_instance.ts"

export const migrations = Migrator.fromRecord({
  "0001_instance": instance
})
