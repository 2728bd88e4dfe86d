/**
 * In-flight requests and the draining flag: what graceful shutdown waits on, and what /ready
 * reports while the server is going away.
 */
import { Context, Deferred, Effect, Layer } from "effect"

export class ServerLifecycle extends Context.Service<
  ServerLifecycle,
  {
    readonly isDraining: () => boolean
    readonly startDraining: Effect.Effect<void>
    /** Completes once draining starts: what a long wait races against, instead of polling the flag. */
    readonly whenDraining: Effect.Effect<void>
    readonly inFlight: () => number
    /** Runs `effect` as one in-flight request. */
    readonly track: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  }
>()("basalt/ServerLifecycle") {
  // Plain counters, not Refs: this sits on every request's path and only one fiber writes at a time.
  static readonly layer = Layer.sync(ServerLifecycle, () => {
    let draining = false
    const drained = Deferred.makeUnsafe<void>()
    let inFlight = 0
    const done = Effect.sync(() => {
      inFlight--
    })
    return ServerLifecycle.of({
      isDraining: () => draining,
      startDraining: Effect.sync(() => {
        draining = true
        Deferred.doneUnsafe(drained, Effect.void)
      }),
      whenDraining: Deferred.await(drained),
      inFlight: () => inFlight,
      // The request fiber is uninterruptible until its handler runs, so nothing can slip
      // between the increment and the finalizer that undoes it.
      track: (effect) =>
        Effect.suspend(() => {
          inFlight++
          return Effect.ensuring(effect, done)
        })
    })
  })
}
