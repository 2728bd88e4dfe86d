/**
 * Keyset page cursors for every cursor-paged listing: the sort key of the last item of a page (a
 * timestamp as exact text, or a position, and an id), opaque to clients.
 */
import { Effect, Schema } from "effect"
import { ValidationFailed } from "./ApiError.ts"
import { Uuid } from "../contract/Uuid.ts"

const Position = Schema.fromJsonString(Schema.Struct({ at: Schema.String.check(Schema.isMaxLength(64)), id: Uuid }))
export type PagePosition = typeof Position.Type

export const encodeCursor = (position: PagePosition) => Buffer.from(Schema.encodeSync(Position)(position)).toString("base64url")

export const invalidCursor = () =>
  new ValidationFailed({
    message: "The request is invalid: cursor: Not a cursor this server issued",
    details: [{ path: "cursor", message: "Not a cursor this server issued" }]
  })

export const decodeCursor = (cursor: string | undefined): Effect.Effect<PagePosition | undefined, ValidationFailed> =>
  cursor === undefined
    ? Effect.succeed(undefined)
    : Schema.decodeUnknownEffect(Position)(Buffer.from(cursor, "base64url").toString("utf8")).pipe(Effect.mapError(invalidCursor))

/**
 * A page from `limit + 1` rows: the extra row only says there is more, and the cursor points
 * after the page's last item (`cursorAfter`, usually `encodeCursor` of its sort key).
 */
export const pageOf = <Row, Item>(
  rows: ReadonlyArray<Row>,
  limit: number,
  item: (row: Row) => Item,
  cursorAfter: (last: Row) => string
) => {
  const page = rows.slice(0, limit)
  const last = page[page.length - 1]
  return {
    items: page.map(item),
    next_cursor: rows.length > limit && last !== undefined ? cursorAfter(last) : null
  }
}

/** A timestamp column as text that casts back to exactly the same `timestamptz` (microseconds). */
export const exactTime = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`
