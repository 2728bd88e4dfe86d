/**
 * Search's page cursors. A search has one ranking whatever the page size, and a page is a slice
 * of it: the cursor carries the next position and a fingerprint of the search and of that
 * position, so that a cursor cannot be replayed against another query or moved.
 */
import { Effect, Option, Schema } from "effect"
import { createHash } from "node:crypto"
import { ValidationFailed } from "../http/ApiError.ts"
import { SearchFilters, type SearchMode, type SearchRequest } from "./Search.ts"

const CursorState = Schema.fromJsonString(Schema.Struct({ o: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)), f: Schema.String }))

const rejectedCursor = (message: string) => new ValidationFailed({ message, details: [{ path: "cursor", message }] })

/**
 * What a cursor is bound to: the search (query, mode, filters, weights), the position, and the
 * ranking's own settings (`ranking`), so that a cursor from before a change of them is refused
 * rather than continuing a different ranking.
 */
export const cursorFingerprint = (request: SearchRequest, mode: SearchMode, offset: number, ranking: string) =>
  createHash("sha256")
    .update(
      JSON.stringify([request.query, mode, Schema.encodeSync(SearchFilters)(request.filters ?? {}), request.weights ?? {}, offset, ranking])
    )
    .digest("base64url")
    .slice(0, 22)

export const encodeCursor = (offset: number, fingerprint: string) =>
  Buffer.from(Schema.encodeSync(CursorState)({ o: offset, f: fingerprint })).toString("base64url")

/** The position a cursor continues from, when `fingerprint` of that position is the one it carries. */
export const decodeCursor = (cursor: string, fingerprint: (offset: number) => string): Effect.Effect<number, ValidationFailed> =>
  Option.match(Schema.decodeUnknownOption(CursorState)(Buffer.from(cursor, "base64url").toString("utf8")), {
    onNone: () => Effect.fail(rejectedCursor("Not a cursor this server issued")),
    onSome: (state) =>
      state.f === fingerprint(state.o)
        ? Effect.succeed(state.o)
        : Effect.fail(
            rejectedCursor(
              "The cursor does not belong to this search: it continues only the search that issued it (same query, mode, filters and weights), unaltered"
            )
          )
  })
