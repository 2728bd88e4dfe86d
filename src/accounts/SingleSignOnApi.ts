/** Single sign-on with OpenID Connect: the two redirects of the authorization code flow. */
import { HttpApiGroup, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { contractEmpty, contractQuery, operation } from "../contract/Contract.ts"
import { BadGateway, Forbidden, NotFound, Unauthorized, ValidationFailed } from "../http/ApiError.ts"
import { AuthRateLimit } from "../ratelimit/RateLimitApi.ts"

/** A path on this site: never `//host` or `/\host`, which browsers read as another site. */
export const ReturnTo = Schema.String.pipe(
  Schema.maxLength(2048),
  Schema.pattern(/^\/(?![/\\])/, { message: () => "Expected a path on this site, such as /search" })
)

export class SingleSignOnApi extends HttpApiGroup.make("oidc")
  .add(
    operation("startOidcSignIn").get("/api/v1/auth/oidc/authorize")
      .setUrlParams(contractQuery("startOidcSignIn", Schema.Struct({ return_to: Schema.optional(ReturnTo) })))
      .addSuccess(contractEmpty("startOidcSignIn", 302))
      .addError(NotFound)
      .addError(ValidationFailed)
      .addError(BadGateway)
  )
  .add(
    operation("completeOidcSignIn").get("/api/v1/auth/oidc/callback")
      .setUrlParams(contractQuery(
        "completeOidcSignIn",
        Schema.Struct({
          code: Schema.optional(Schema.String.pipe(Schema.maxLength(4096))),
          state: Schema.optional(Schema.String.pipe(Schema.maxLength(512))),
          error: Schema.optional(Schema.String.pipe(Schema.maxLength(256))),
          error_description: Schema.optional(Schema.String.pipe(Schema.maxLength(1024)))
        })
      ))
      .addSuccess(contractEmpty("completeOidcSignIn", 303))
      .addError(Unauthorized)
      .addError(Forbidden)
      .addError(NotFound)
      .addError(ValidationFailed)
      .addError(BadGateway)
  )
  // Unauthenticated sign-in routes: limited per client address, like login.
  .middleware(AuthRateLimit)
  .annotate(OpenApi.Title, "auth")
{}
