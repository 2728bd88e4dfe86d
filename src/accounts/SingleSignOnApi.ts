/** Single sign-on with OpenID Connect: the two redirects of the authorization code flow. */
import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "effect/http-api"
import { endpoint } from "../contract/Contract.ts"
import { isMaxCharacters, Text } from "../contract/Text.ts"
import { BadGateway, Forbidden, NotFound, Unauthorized, ValidationFailed } from "../http/ApiError.ts"
import { withQuery } from "../http/RequestParams.ts"
import { AuthRateLimit } from "../ratelimit/RateLimitApi.ts"

/** A path on this site: never `//host` or `/\host`, which browsers read as another site. */
export const ReturnTo = Schema.String.check(
  isMaxCharacters(2048),
  Schema.isPattern(/^\/(?![/\\])/, { message: "Expected a path on this site, such as /search" })
)

const text = (maxLength: number) => Schema.optional(Text({ maxLength }))

export class SingleSignOnApi extends HttpApiGroup.make("oidc")
  .add(
    endpoint("startOidcSignIn", (op) =>
      HttpApiEndpoint.get(op.name, "/api/v1/auth/oidc/authorize", {
        query: op.query(Schema.Struct({ return_to: Schema.optional(ReturnTo) })),
        success: op.empty(302),
        error: [NotFound, BadGateway, ValidationFailed]
      }).pipe(withQuery())
    )
  )
  .add(
    endpoint("completeOidcSignIn", (op) =>
      HttpApiEndpoint.get(op.name, "/api/v1/auth/oidc/callback", {
        // The provider's redirect carries parameters of its own (`iss`, `session_state`…), which
        // an OAuth 2.0 client must ignore (RFC 6749, 4.1.2).
        query: op.query(
          Schema.Struct({
            code: text(4096),
            state: text(512),
            error: text(256),
            error_description: text(1024)
          })
        ),
        success: op.empty(303),
        error: [Unauthorized, Forbidden, NotFound, BadGateway, ValidationFailed]
      }).pipe(withQuery({ unknownParams: "ignore" }))
    )
  )
  // Unauthenticated sign-in routes: limited per client address, like login.
  .middleware(AuthRateLimit)
  .annotate(OpenApi.Title, "auth") {}
