/**
 * Server-sent events as the API sends them: each event with its id (what a client resumes from
 * with Last-Event-ID), its name and its data as JSON on one line, written by effect/encoding's
 * encoder; a comment line when nothing was sent for a while, so that proxies and clients do not
 * take a quiet stream for a dead one.
 */
import { Clock, Duration, Effect, Stream } from "effect"
import { Sse } from "effect/encoding"
import { HttpServerResponse } from "effect/http"

export interface ServerSentEvent {
  readonly id?: string | undefined
  readonly event: string
  readonly data: unknown
}

/** `id: …\nevent: …\ndata: <JSON>\n\n`. JSON escapes line breaks, so the data is one `data:` line. */
export const frame = ({ data, event, id }: ServerSentEvent): string =>
  Sse.encoder.write({ _tag: "Event", id, event, data: JSON.stringify(data) ?? "null" })

export const heartbeat = ": heartbeat\n\n"

/**
 * `frames`, with a heartbeat comment whenever nothing was sent for `every`. The stream ends when
 * `frames` does.
 */
export const withHeartbeat = <E, R>(frames: Stream.Stream<string, E, R>, every: Duration.Input = Duration.seconds(15)) =>
  Stream.suspend(() => {
    const interval = Duration.toMillis(Duration.fromInputUnsafe(every))
    let lastSent = 0
    const sent = Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.sync(() => {
        lastSent = now
      })
    )
    // Sleeps until `every` after the last frame, then sends a heartbeat unless one was sent since.
    const nextHeartbeat: Effect.Effect<string> = Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const due = lastSent + interval - now
      return due > 0 ? Effect.andThen(Effect.sleep(Duration.millis(due)), nextHeartbeat) : Effect.succeed(heartbeat)
    })
    return Stream.fromEffect(sent).pipe(
      Stream.drain,
      Stream.concat(Stream.merge(frames, Stream.fromEffectRepeat(nextHeartbeat), { haltStrategy: "left" })),
      Stream.tap(() => sent)
    )
  })

/** A text/event-stream response of `frames` (already framed), not cached nor buffered by proxies. */
export const sseResponse = <E>(frames: Stream.Stream<string, E>) =>
  HttpServerResponse.stream(Stream.encodeText(frames), {
    contentType: "text/event-stream",
    headers: { "cache-control": "no-cache", "x-accel-buffering": "no" }
  })
