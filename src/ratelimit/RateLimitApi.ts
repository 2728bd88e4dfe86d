/**
 * Where the per-address limit applies, declared on the endpoints: the sign-in routes, which
 * answer before anyone is identified (brute-force protection). The per-user and per-API-key
 * limit needs no declaration of its own: the authentication middleware applies it.
 */
import { HttpApiMiddleware } from "effect/http-api"
import { RateLimited } from "../http/ApiError.ts"

/** One token from the client address's `auth` bucket per request (BASALT_RATE_LIMIT_AUTH). */
export class AuthRateLimit extends HttpApiMiddleware.Service<AuthRateLimit>()("basalt/AuthRateLimit", {
  error: RateLimited
}) {}
