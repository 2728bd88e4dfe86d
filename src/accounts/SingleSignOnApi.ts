/** Single sign-on with OpenID Connect: the two redirects of the authorization code flow. */
import { HttpApiGroup, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { endpoint } from "../contract/Contract.ts"
import { BadGateway, Forbidden, NotFound, Unauthorized } from "../http/ApiError.ts"
import { withQuery } from "../http/RequestParams.ts"
import { AuthRateLimit } from "../ratelimit/RateLimitApi.ts"

/** A path on this site: never `//host` or `/\host`, which browsers read as another site. */
export const ReturnTo = Schema.String.pipe(
  Schema.maxLength(2048),
  Schema.pattern(/^\/(?![/\\])/, { message: () => "Expected a path on this site, such as /search" })
)

export class SingleSignOnApi extends HttpApiGroup.make("oidc")
  .add(endpoint("startOidcSignIn", (op) =>
    op.get("/api/v1/auth/oidc/authorize").pipe(withQuery(op.query(Schema.Struct({ return_to: Schema.optional(ReturnTo) }))))
      .addSuccess(op.empty(302))
      .addError(NotFound)
      .addError(BadGateway)))
  .add(endpoint("completeOidcSignIn", (op) =>
    op.get("/api/v1/auth/oidc/callback").pipe(withQuery(op.query(Schema.Struct({
      code: Schema.optional(Schema.String.pipe(Schema.maxLength(4096))),
      state: Schema.optional(Schema.String.pipe(Schema.maxLength(512))),
      error: Schema.optional(Schema.String.pipe(Schema.maxLength(256))),
      error_description: Schema.optional(Schema.String.pipe(Schema.maxLength(1024)))
    }))))
      .addSuccess(op.empty(303))
      .addError(Unauthorized)
      .addError(Forbidden)
      .addError(NotFound)
      .addError(BadGateway)))
  // Unauthenticated sign-in routes: limited per client address, like login.
  .middleware(AuthRateLimit)
  .annotate(OpenApi.Title, "auth")
{}
