/**
 * Rows as a repository returns them: decoded by Schema, and a failing statement or an
 * undecodable row a defect at the repository's boundary, so callers see only what the contract
 * can answer.
 */
import { Effect, Schema } from "effect"

/** Every row of `statement`, decoded as `schema`. */
export const rowsOf =
  <S extends Schema.Top & { readonly DecodingServices: never }>(schema: S) =>
  <E, R>(statement: Effect.Effect<ReadonlyArray<unknown>, E, R>) =>
    statement.pipe(Effect.flatMap(Schema.decodeUnknownEffect(Schema.Array(schema))), Effect.orDie)

/** The first row of `statement`, decoded as `schema`; undefined when there is none. */
export const firstOf =
  <S extends Schema.Top & { readonly DecodingServices: never }>(schema: S) =>
  <E, R>(statement: Effect.Effect<ReadonlyArray<unknown>, E, R>) =>
    Effect.map(rowsOf(schema)(statement), (rows) => rows[0])
