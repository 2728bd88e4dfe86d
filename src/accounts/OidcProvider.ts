/**
 * The OpenID Connect provider of single sign-on, as Basalt needs it: where to send the browser,
 * and who came back. `layers/OidcProviderLive.ts` speaks the protocol over HTTP.
 */
import { Context, Data, type Effect } from "effect"
import type { OidcConfig } from "../config/AppConfig.ts"

/** Who the provider says signed in, from a checked ID token (and the userinfo endpoint). */
export interface ProviderIdentity {
  readonly issuer: string
  readonly subject: string
  readonly email: string | undefined
  readonly emailVerified: boolean
  readonly name: string | undefined
}

/** The provider could not be reached or answered something that is not the protocol. */
export class ProviderUnavailable extends Data.TaggedError("ProviderUnavailable")<{ readonly reason: string }> {}

/** The provider's answer does not prove a sign-in (refused code, bad ID token, wrong nonce...). */
export class SignInRejected extends Data.TaggedError("SignInRejected")<{ readonly reason: string }> {}

export class OidcProvider extends Context.Service<
  OidcProvider,
  {
    readonly config: OidcConfig
    /** The provider's authorization URL for one sign-in (code flow, S256 PKCE). */
    readonly authorizationUrl: (request: {
      readonly state: string
      readonly nonce: string
      readonly codeChallenge: string
    }) => Effect.Effect<string, ProviderUnavailable>
    /** Redeems the code with the PKCE verifier and checks the ID token, nonce included. */
    readonly redeem: (grant: {
      readonly code: string
      readonly codeVerifier: string
      readonly nonce: string
    }) => Effect.Effect<ProviderIdentity, ProviderUnavailable | SignInRejected>
  }
>()("basalt/OidcProvider") {}
