/**
 * GET /api/v1/documents/events: status changes and deletions as server-sent events.
 *
 * Several server processes share one database, so changes are read from it rather than from an
 * in-process bus: each open stream polls `documents.status_changed_at` and
 * `document_deletions.deleted_at` (both indexed) every 500 ms from its position, through the
 * visibility rule. Before each poll the request's credential is checked again, as the
 * Authentication middleware checks it: the poll reads as the caller is now (a changed role
 * counts at once), and the stream ends once the credential no longer authenticates (logout,
 * revoked session or API key, deactivated account, expired access token), so that a client
 * reconnecting is refused.
 *
 * A transaction may commit a change a moment after a later one is already visible, so each poll
 * looks back `lookback` before its position
 * and skips what it already sent (delivery is at least once across reconnections, exactly once
 * within one stream). A full page is followed at once by the next, so a burst is never
 * skipped. The stream ends when the server starts draining, so that a graceful shutdown does
 * not wait out its grace period on open streams; the client reconnects with Last-Event-ID.
 */
import { Duration, Effect, Layer, Option, Schema, Stream } from "effect"
import { Sse } from "effect/encoding"
import type { HttpServerRequest } from "effect/http"
import { cleanUpEvery, olderThan } from "../database/Cleanup.ts"
import type { Caller } from "../accounts/SessionsRepo.ts"
import { ServerLifecycle } from "../http/ServerLifecycle.ts"
import { sseResponse } from "../http/ServerSentEvents.ts"
import { DocumentDeletedEvent, DocumentStatusEvent } from "./Documents.ts"
import { type DocumentChangeRow, DocumentsRepo } from "./DocumentsRepo.ts"
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

/**
 * How long a deletion is remembered: a stream resumed (Last-Event-ID) from further back may have
 * missed deletions, and its client should list its documents again. A week covers a client
 * offline over a long weekend; the rows are small (one per deleted document).
 */
export const deletionRetention = Duration.days(7)
/** How often each process forgets the deletions past their retention. */
const pruneInterval = Duration.minutes(10)

const encodeStatus = Schema.encodeSync(DocumentStatusEvent)
const encodeDeleted = Schema.encodeSync(DocumentDeletedEvent)

const eventOf = (row: DocumentChangeRow) => {
  const data =
    row.kind === "status"
      ? encodeStatus({
          document_id: row.document_id,
          status: row.status,
          error: row.error,
          chunk_count: row.chunk_count,
          revision: row.revision,
          changed_at: row.changed_at
        })
      : encodeDeleted({ document_id: row.document_id, revision: row.revision, deleted_at: row.changed_at })
  return Sse.encoder.write({
    _tag: "Event",
    id: encodeCursor({ at: row.changed_at_exact, id: row.document_id }),
    event: row.kind,
    data: JSON.stringify(data)
  })
}

const isAfter = (row: DocumentChangeRow, position: PagePosition) =>
  row.changed_at_exact > position.at || (row.changed_at_exact === position.at && row.document_id > position.id)

const shifted = (exact: string, millis: number) => new Date(new Date(exact).getTime() + millis).toISOString()

/**
 * Opens event streams, with the services every stream reads. A stream's arguments: `caller`, who
 * `request` authenticated as; `reauthenticate`, the request's credential checked again (none once
 * it no longer authenticates).
 */
export const makeDocumentEvents = Effect.gen(function* () {
  const documents = yield* DocumentsRepo
  const lifecycle = yield* ServerLifecycle
  return (caller: Caller, request: HttpServerRequest.HttpServerRequest, reauthenticate: Effect.Effect<Option.Option<Caller>>) =>
    Effect.gen(function* () {
      // A Last-Event-ID this server did not issue is ignored: the stream starts from now.
      const resumed = yield* decodeCursor(request.headers["last-event-id"]).pipe(Effect.option, Effect.map(Option.getOrUndefined))
      const start: PagePosition = resumed ?? { at: yield* Effect.orDie(documents.now), id: "00000000-0000-0000-0000-000000000000" }

      const poll = (caller: Caller, state: State) =>
        Effect.gen(function* () {
          const since = shifted(state.position.at, -lookbackMillis)
          const rows: Array<DocumentChangeRow> = []
          let page = yield* documents.changesSince(caller, since, pageSize)
          rows.push(...page)
          while (page.length === pageSize) {
            const last = page[page.length - 1]!
            page = yield* documents.changesSince(caller, last.changed_at_exact, pageSize)
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
          const quietPolls = fresh.length === 0 ? state.quietPolls + 1 : 0
          return { fresh, next: { started: true, position: newest, sent, quietPolls } }
        }).pipe(Effect.orDie)

      const events = Stream.paginate({ started: false, position: start, sent: new Map(), quietPolls: 0 } as State, (state) =>
        Effect.gen(function* () {
          if (!state.started) {
            const { fresh, next } = yield* poll(caller, state)
            return [["retry: 2000\n: connected\n\n", ...fresh.map(eventOf)], Option.some(next)] as const
          }
          yield* Effect.sleep(pollInterval)
          if (lifecycle.isDraining()) return [[], Option.none<State>()] as const
          const current = yield* reauthenticate
          if (Option.isNone(current)) return [[], Option.none<State>()] as const
          const { fresh, next } = yield* poll(current.value, state)
          if (fresh.length > 0) return [fresh.map(eventOf), Option.some(next)] as const
          if (next.quietPolls >= pollsPerHeartbeat) {
            return [[": keep-alive\n\n"], Option.some({ ...next, quietPolls: 0 })] as const
          }
          return [[], Option.some(next)] as const
        })
      )

      return sseResponse(events)
    })
})

/** Forgets, every few minutes in each process, the deletions past `deletionRetention`. */
export const DocumentDeletionsPruningLive = Layer.effectDiscard(
  Effect.gen(function* () {
    const documents = yield* DocumentsRepo
    yield* cleanUpEvery(pruneInterval, "expired document deletion records", olderThan(deletionRetention, documents.pruneDeletions))
  })
).pipe(Layer.provide(DocumentsRepo.layer))
