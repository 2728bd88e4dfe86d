/**
 * The rate limits in force (BASALT_RATE_LIMIT_AUTH, BASALT_RATE_LIMIT_PRINCIPAL), over the
 * buckets in the database. Whoever takes a token decides nothing about the response: a refusal
 * is a RateLimited failure (429, rendered with Retry-After and the RateLimit headers), and a
 * granted request's response, whatever it turns out to be, gets the RateLimit headers on its way
 * out.
 */
import { Context, Duration, Effect, Exit, Layer, Option } from "effect"
import { HttpEffect, type HttpServerRequest, HttpServerResponse } from "effect/http"
import { cleanUpEvery } from "../database/Cleanup.ts"
import { AppConfig } from "../config/AppConfig.ts"
import type { Ip } from "../http/ClientIp.ts"
import { formatIp } from "../http/ClientIp.ts"
import { RateLimited } from "../http/ApiError.ts"
import {
  type BucketState,
  decide,
  type PolicyName,
  policyHeader,
  type RateLimitPolicy,
  rateLimitHeader,
  refillPerSecond
} from "./RateLimitPolicy.ts"
import { RateLimitRepo } from "./RateLimitRepo.ts"

/** How often each process deletes the buckets that have refilled. */
const cleanupInterval = Duration.minutes(1)

/**
 * The bucket of a client address. An IPv6 client is counted by its /64: one host or site is
 * routinely given a whole /64, so counting single addresses would hand it billions of buckets.
 */
export const addressBucket = (ip: Ip | undefined): string => {
  if (ip === undefined) return "ip:unknown"
  if (ip.version === 4) return `ip:${formatIp(ip)}`
  return `ip:${formatIp({ version: 6, value: (ip.value >> 64n) << 64n })}/64`
}

const refusal = (policy: RateLimitPolicy, retryAfterSeconds: number) =>
  policy.name === "auth"
    ? `Too many sign-in requests from this address; try again in ${retryAfterSeconds} s`
    : `Too many requests for this account or API key; try again in ${retryAfterSeconds} s`

export class RateLimiter extends Context.Service<
  RateLimiter,
  {
    /**
     * Takes one token from `bucket` under the `policy` limit: fails with RateLimited when there
     * is none; otherwise the response will carry RateLimit and RateLimit-Policy. Does nothing
     * when the limit is off.
     */
    readonly take: (policy: PolicyName, bucket: string) => Effect.Effect<void, RateLimited, HttpServerRequest.HttpServerRequest>
  }
>()("basalt/RateLimiter") {
  static readonly layer = Layer.effect(
    RateLimiter,
    Effect.gen(function* () {
      const config = yield* AppConfig
      const repo = yield* RateLimitRepo
      const policies: Record<PolicyName, Option.Option<RateLimitPolicy>> = {
        auth: Option.map(config.rateLimits.auth, (limit) => ({ name: "auth", ...limit })),
        principal: Option.map(config.rateLimits.principal, (limit) => ({ name: "principal", ...limit }))
      }

      if (Option.isSome(policies.auth) || Option.isSome(policies.principal)) {
        yield* cleanUpEvery(cleanupInterval, "refilled rate-limit buckets", repo.deleteFull)
      }

      /**
       * One token for each caller, with one statement per bucket at a time: callers arriving while
       * their bucket's statement runs wait and are served together by the next one, which takes
       * as many tokens as they are. A busy principal thus costs a statement per batch, not per
       * request, and the database still grants exactly what it has. The first granted caller of a
       * batch sees the most tokens left.
       */
      const context = yield* Effect.context<never>()
      interface Batch {
        readonly waiting: Array<(state: Exit.Exit<BucketState>) => void>
        running: boolean
      }
      const batches = new Map<string, Batch>()
      const serve = (key: string, batch: Batch, policy: RateLimitPolicy) => {
        const callers = batch.waiting.splice(0)
        batch.running = true
        Effect.runCallbackWith(context)(Effect.orDie(repo.takeMany(key, callers.length, policy.quota, refillPerSecond(policy))), {
          onExit: (exit) => {
            callers.forEach((resume, i) => {
              resume(Exit.map(exit, ({ granted, tokens }) => ({ granted: i < granted, tokens: tokens + Math.max(0, granted - 1 - i) })))
            })
            if (batch.waiting.length > 0) serve(key, batch, policy)
            else batches.delete(key)
          }
        })
      }
      const takeOne = (policy: RateLimitPolicy, key: string) =>
        Effect.callback<BucketState>((resume) => {
          const batch = batches.get(key) ?? { waiting: [], running: false }
          batches.set(key, batch)
          batch.waiting.push(resume)
          if (!batch.running) serve(key, batch, policy)
        })

      const takeUnder = (policy: RateLimitPolicy, bucket: string) =>
        Effect.gen(function* () {
          // A database failure fails the request (503 while it is unavailable): a limit that cannot be checked is not waived.
          const state = yield* takeOne(policy, `${policy.name}:${bucket}`)
          const decision = decide(policy, state)
          const headers = { ratelimit: rateLimitHeader(policy, decision), "ratelimit-policy": policyHeader(policy) }
          if (!decision.granted) {
            return yield* new RateLimited({
              message: refusal(policy, decision.retryAfterSeconds),
              retryAfterSeconds: decision.retryAfterSeconds,
              rateLimit: headers.ratelimit,
              rateLimitPolicy: headers["ratelimit-policy"]
            })
          }
          yield* HttpEffect.appendPreResponseHandler((_request, response) =>
            // A response refused by another limit (a chat budget) names that limit, not this one.
            Effect.succeed(response.headers.ratelimit === undefined ? HttpServerResponse.setHeaders(response, headers) : response)
          )
        })

      return RateLimiter.of({
        take: (name, bucket) => Option.match(policies[name], { onNone: () => Effect.void, onSome: (policy) => takeUnder(policy, bucket) })
      })
    })
  ).pipe(Layer.provide(RateLimitRepo.layer))
}
