/**
 * The token buckets' arithmetic and how it is told to clients. A policy `q/w` is a bucket of `q`
 * tokens refilled continuously at `q` per `w` seconds; a request takes one. Headers follow
 * draft-ietf-httpapi-ratelimit-headers: `RateLimit-Policy: "auth";q=10;w=60` and
 * `RateLimit: "auth";r=3;t=6` (r: tokens left; t: seconds until the next token, 0 when full).
 */
import { Result } from "effect"

/** `auth`: per client address on the sign-in routes; `principal`: per user or API key elsewhere. */
export type PolicyName = "auth" | "principal"

export interface RateLimit {
  readonly quota: number
  readonly windowSeconds: number
}

export interface RateLimitPolicy extends RateLimit {
  readonly name: PolicyName
}

const maxQuota = 1_000_000_000
const maxWindowSeconds = 7 * 24 * 60 * 60
const unitSeconds: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 }

/** `10/1m`, `600/1h`, `3/2s` (`10/m` is `10/1m`); `off`: undefined. */
export const parseRateLimit = (text: string): Result.Result<RateLimit | undefined, string> => {
  if (text.trim().toLowerCase() === "off") return Result.succeed(undefined)
  const match = /^\s*(\d{1,10})\s*\/\s*(\d{0,6})\s*([smhd])\s*$/i.exec(text)
  if (match === null) {
    return Result.fail(`expected requests per window such as 10/1m, 600/1h or 3/2s (units s, m, h, d), or off; got "${text.slice(0, 40)}"`)
  }
  const quota = Number(match[1])
  const windowSeconds = Number(match[2] === "" ? 1 : match[2]) * unitSeconds[match[3]!.toLowerCase()]!
  if (quota < 1 || quota > maxQuota) return Result.fail(`the number of requests must be from 1 to ${maxQuota}`)
  if (windowSeconds < 1 || windowSeconds > maxWindowSeconds) return Result.fail("the window must be from 1 second to 7 days")
  return Result.succeed({ quota, windowSeconds })
}

export const refillPerSecond = (policy: RateLimit): number => policy.quota / policy.windowSeconds

/** What the bucket said: whether a token was taken, and how many are left (fractions included). */
export interface BucketState {
  readonly granted: boolean
  readonly tokens: number
}

export interface Decision {
  readonly granted: boolean
  /** Whole tokens left. */
  readonly remaining: number
  /** Seconds until the next whole token; 0 when the bucket is full. */
  readonly nextTokenSeconds: number
  /** For a refusal: seconds until one token is there (at least 1). */
  readonly retryAfterSeconds: number
}

/** Whole seconds, rounded up, never below `floor`; anything not a finite number counts as `fallback`. */
const wholeSeconds = (seconds: number, floor: number, fallback: number) =>
  Number.isFinite(seconds) ? Math.max(floor, Math.ceil(seconds)) : fallback

export const decide = (policy: RateLimit, state: BucketState): Decision => {
  const perSecond = refillPerSecond(policy)
  // The database keeps tokens within [0, quota]; clamping keeps a surprise from reaching a header.
  const tokens = Number.isFinite(state.tokens) ? Math.min(policy.quota, Math.max(0, state.tokens)) : 0
  const remaining = Math.floor(tokens)
  const nextTokenSeconds = tokens >= policy.quota ? 0 : wholeSeconds((remaining + 1 - tokens) / perSecond, 1, policy.windowSeconds)
  return {
    granted: state.granted,
    remaining,
    nextTokenSeconds,
    retryAfterSeconds: wholeSeconds((1 - tokens) / perSecond, 1, policy.windowSeconds)
  }
}

export const policyHeader = (policy: RateLimitPolicy): string => `"${policy.name}";q=${policy.quota};w=${policy.windowSeconds}`

export const rateLimitHeader = (policy: RateLimitPolicy, decision: Decision): string =>
  `"${policy.name}";r=${decision.remaining};t=${decision.nextTokenSeconds}`
