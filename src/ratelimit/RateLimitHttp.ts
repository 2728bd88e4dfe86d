/**
 * The rate limit per client address on the AuthRateLimit routes. (The limit per principal is
 * taken by the authentication middleware, src/accounts/Authentication.ts, once it knows who.)
 */
import { Effect, Layer } from "effect"
import { HttpServerRequest } from "effect/http"
import { AppConfig } from "../config/AppConfig.ts"
import { clientIpOf } from "../http/ClientIp.ts"
import { AuthRateLimit } from "./RateLimitApi.ts"
import { addressBucket, RateLimiter } from "./RateLimiter.ts"

export const AuthRateLimitLive = Layer.effect(
  AuthRateLimit,
  Effect.gen(function* () {
    const limiter = yield* RateLimiter
    const { trustedProxies } = yield* AppConfig
    return AuthRateLimit.of((httpEffect) =>
      Effect.andThen(
        Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
          limiter.take("auth", addressBucket(clientIpOf(request, trustedProxies)))
        ),
        httpEffect
      )
    )
  })
)
