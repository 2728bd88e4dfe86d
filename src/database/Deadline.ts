/**
 * Answering at a deadline without waiting for the work to stop. `Effect.timeout` interrupts the
 * work and waits for it to end, and an interrupted statement first drains its connection, which
 * a database that answers nothing (frozen, cut off) would hold up as long as it lasts. Here the
 * caller fails at the deadline and the work is interrupted in the background. It holds in an
 * uninterruptible region too (a transaction's COMMIT runs in one).
 */
import { type Context, Duration, Effect, type Exit, type Fiber } from "effect"

/** Moves the deadline of the work it was given to `bound` from now (failing with `onTimeout`), or removes it. */
export type Rearm<E2> = (bound: Duration.Duration | undefined, onTimeout: () => E2) => void

/**
 * Runs `work` on a fiber of its own and answers at the first of its end and its deadline, which
 * `work` may move (from a wait for a connection to the statement's own bound, say). One fiber and
 * one timer: cheap enough for every statement's path.
 */
export const withDeadline = <A, E, R, E2>(
  bound: Duration.Duration,
  onTimeout: () => E2,
  work: (rearm: Rearm<E2>) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | E2, R> =>
  Effect.withFiber((parent) =>
    Effect.callback<A, E | E2, R>((resume) => {
      let settled = false
      let timer: ReturnType<typeof setTimeout> | undefined
      let worker: Fiber.Fiber<A, E> | undefined
      const settle = (outcome: Effect.Effect<A, E | E2, R> | Exit.Exit<A, E>) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        resume(outcome)
      }
      const rearm: Rearm<E2> = (next, nextOnTimeout) => {
        clearTimeout(timer)
        if (next === undefined) return
        timer = setTimeout(() => {
          settle(Effect.fail(nextOnTimeout()))
          worker?.interruptUnsafe()
        }, Duration.toMillis(next))
      }
      rearm(bound, onTimeout)
      worker = Effect.runForkWith(parent.context as Context.Context<R>)(Effect.interruptible(work(rearm)))
      worker.addObserver(settle)
      // The caller was interrupted (its client left): stop the work, without waiting for it.
      return Effect.sync(() => {
        settled = true
        clearTimeout(timer)
        worker?.interruptUnsafe()
      })
    })
  )

/** `self` for at most `limit`, then `onTimeout`, without waiting for `self` to stop. */
export const abandonAfter =
  <E2>(limit: Duration.Input, onTimeout: () => E2) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | E2, R> =>
    withDeadline(Duration.fromInputUnsafe(limit), onTimeout, () => self)
