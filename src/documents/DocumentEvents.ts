/**
 * GET /api/v1/documents/events: status changes as server-sent events.
 *
 * Several server processes share one database, so changes are read from it rather than from an
 * in-process bus: each open stream polls `documents.status_changed_at` (indexed) every 500 ms
 * from its position, through the visibility rule. A transaction may commit a change a moment
 * after a later one is already visible, so each poll looks back `lookback` before its position
 * and skips what it already sent (delivery is at least once across reconnections, exactly once
 * within one stream). A full page is followed at once by the next, so a burst is never
 * skipped. The stream ends when the server starts draining, so that a graceful shutdown does
 * not wait out its grace period on open streams; the client reconnects with Last-Event-ID.
 */
import { HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Chunk, Effect, Option, Stream } from "effect"
import type { Caller } from "../accounts/SessionsRepo.ts"
import { ServerLifecycle } from "../http/ServerLifecycle.ts"
import { DocumentsRepo, type StatusChangeRow } from "./DocumentsRepo.ts"
import { decodeCursor, encodeCursor, type PagePosition } from "../http/PageCursor.ts"

const pollInterval = "500 millis"
/** Polls without anything to send before a keep-alive comment (15 s). */
const pollsPerHeartbeat = 30
const lookbackMillis = 2000
const pageSize = 500

interface State {
  readonly started: boolean
  /** The newest change sent. */
  readonly position: PagePosition
  /** The changes sent within the look-back window: document id → change time. */
  readonly sent: ReadonlyMap<string, string>
  readonly quietPolls: number
}

const eventOf = (row: StatusChangeRow) =>
  `id: ${encodeCursor({ at: row.changed_at_exact, id: row.document_id })}\nevent: status\ndata: ${
    JSON.stringify({
      document_id: row.document_id,
      status: row.status,
      error: row.error,
      chunk_count: row.chunk_count,
      revision: row.revision,
      changed_at: row.changed_at.toISOString()
    })
  }\n\n`

const isAfter = (row: StatusChangeRow, position: PagePosition) =>
  row.changed_at_exact > position.at || (row.changed_at_exact === position.at && row.document_id > position.id)

const shifted = (exact: string, millis: number) => new Date(new Date(exact).getTime() + millis).toISOString()

export const streamDocumentEvents = (caller: Caller) =>
  Effect.gen(function*() {
    const documents = yield* DocumentsRepo
    const lifecycle = yield* ServerLifecycle
    const request = yield* HttpServerRequest.HttpServerRequest
    // A Last-Event-ID this server did not issue is ignored: the stream starts from now.
    const resumed = yield* decodeCursor(request.headers["last-event-id"]).pipe(Effect.option, Effect.map(Option.getOrUndefined))
    const start: PagePosition = resumed ?? { at: yield* Effect.orDie(documents.now), id: "00000000-0000-0000-0000-000000000000" }

    const poll = (state: State) =>
      Effect.gen(function*() {
        const since = shifted(state.position.at, -lookbackMillis)
        const rows: Array<StatusChangeRow> = []
        let page = yield* documents.statusChangesSince(caller, since, pageSize)
        rows.push(...page)
        while (page.length === pageSize) {
          const last = page[page.length - 1]!
          page = yield* documents.statusChangesSince(caller, last.changed_at_exact, pageSize)
          page = page.filter((row) => isAfter(row, { at: last.changed_at_exact, id: last.document_id }))
          rows.push(...page)
        }
        // Changes before the stream's start are not its business (a resumed client has had them).
        const fresh = rows.filter((row) => isAfter(row, start) && state.sent.get(row.document_id) !== row.changed_at_exact)
        const newest = rows.reduce<PagePosition>(
          (position, row) => (isAfter(row, position) ? { at: row.changed_at_exact, id: row.document_id } : position),
          state.position
        )
        const horizon = shifted(newest.at, -lookbackMillis)
        const sent = new Map([...state.sent].filter(([, at]) => new Date(at).toISOString() >= horizon))
        for (const row of fresh) sent.set(row.document_id, row.changed_at_exact)
        return { fresh, next: { started: true, position: newest, sent, quietPolls: fresh.length === 0 ? state.quietPolls + 1 : 0 } }
      }).pipe(Effect.orDie)

    const events = Stream.paginateChunkEffect(
      { started: false, position: start, sent: new Map(), quietPolls: 0 } as State,
      (state) =>
        Effect.gen(function*() {
          if (!state.started) {
            const { fresh, next } = yield* poll(state)
            return [Chunk.fromIterable(["retry: 2000\n: connected\n\n", ...fresh.map(eventOf)]), Option.some(next)] as const
          }
          yield* Effect.sleep(pollInterval)
          if (lifecycle.isDraining()) return [Chunk.empty<string>(), Option.none<State>()] as const
          const { fresh, next } = yield* poll(state)
          if (fresh.length > 0) return [Chunk.fromIterable(fresh.map(eventOf)), Option.some(next)] as const
          if (next.quietPolls >= pollsPerHeartbeat) {
            return [Chunk.of(": keep-alive\n\n"), Option.some({ ...next, quietPolls: 0 })] as const
          }
          return [Chunk.empty<string>(), Option.some(next)] as const
        })
    )

    return HttpServerResponse.stream(Stream.encodeText(events), {
      contentType: "text/event-stream",
      headers: { "cache-control": "no-cache", "x-accel-buffering": "no" }
    })
  })
