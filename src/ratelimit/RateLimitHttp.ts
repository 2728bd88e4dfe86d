/**
 * The rate limits on requests: per client address for AuthRateLimit routes, and per principal
 * for whatever the authentication middleware identifies.
 */
import { HttpServerRequest } from "@effect/platform"
import { Effect, type Exit, Layer } from "effect"
import { AppConfig } from "../config/AppConfig.ts"
import type { RateLimited } from "../http/ApiError.ts"
import { clientIpOf } from "../http/ClientIp.ts"
import { AuthRateLimit } from "./RateLimitApi.ts"
import { addressBucket, RateLimiter } from "./RateLimiter.ts"

export const AuthRateLimitLive = Layer.effect(
  AuthRateLimit,
  Effect.gen(function*() {
    const limiter = yield* RateLimiter
    const { trustedProxies } = yield* AppConfig
    return Effect.flatMap(
      HttpServerRequest.HttpServerRequest,
      (request) => limiter.take("auth", addressBucket(clientIpOf(request, trustedProxies)))
    )
  })
)

/**
 * Puts a principal's rate limit behind an authenticator: `identify` finds the caller (failing
 * when there is none, which costs no one a token), then one token is taken from the bucket
 * `bucketOf` names. The framework runs a middleware's security schemes one after another until
 * one succeeds, so an authenticator may run twice for one request: the outcome of the first
 * identified caller is kept for the request, and its token is taken once.
 */
export const principalRateLimit = Effect.map(RateLimiter, (limiter) => {
  const decided = new WeakMap<HttpServerRequest.HttpServerRequest, { readonly caller: unknown; readonly taken: Exit.Exit<void, RateLimited> }>()
  return <A, E, R>(identify: Effect.Effect<A, E, R>, bucketOf: (caller: A) => string) =>
    Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const earlier = decided.get(request)
      if (earlier !== undefined) return yield* Effect.as(earlier.taken, earlier.caller as A)
      const caller = yield* identify
      const taken = yield* Effect.exit(limiter.take("principal", bucketOf(caller)))
      decided.set(request, { caller, taken })
      return yield* Effect.as(taken, caller)
    })
})
