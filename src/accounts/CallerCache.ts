/**
 * Who a credential stands for, remembered for two seconds, so that a busy client does not cost a
 * database round trip per request. Changes made by this process (logout, revocation, role and
 * activation changes, password changes) clear it at once; other processes see them within the
 * two seconds ("within seconds, not at expiry").
 */
import { Context, Effect, Layer } from "effect"
import type { Caller } from "./SessionsRepo.ts"

const timeToLiveMs = 2_000
// Bounded: past this many live entries the cache starts over rather than grow.
const capacity = 10_000

export class CallerCache extends Context.Service<
  CallerCache,
  {
    /**
     * The cached caller for `key`, or `lookup`'s answer, remembered (when there is a caller) for
     * two seconds, or until its `notAfterMs` if that is sooner.
     */
    readonly get: <E>(
      key: string,
      lookup: Effect.Effect<{ readonly caller: Caller; readonly notAfterMs?: number } | undefined, E>
    ) => Effect.Effect<Caller | undefined, E>
    readonly invalidateAll: Effect.Effect<void>
  }
>()("basalt/CallerCache") {
  static readonly layer = Layer.sync(CallerCache, () => {
    const entries = new Map<string, { readonly caller: Caller; readonly until: number }>()
    return CallerCache.of({
      get: (key, lookup) =>
        Effect.suspend(() => {
          const hit = entries.get(key)
          if (hit !== undefined && hit.until > Date.now()) return Effect.succeed(hit.caller)
          return Effect.map(lookup, (found) => {
            if (found === undefined) return undefined
            if (entries.size >= capacity) entries.clear()
            entries.set(key, { caller: found.caller, until: Math.min(Date.now() + timeToLiveMs, found.notAfterMs ?? Infinity) })
            return found.caller
          })
        }),
      invalidateAll: Effect.sync(() => entries.clear())
    })
  })
}
