/**
 * The OpenID Connect provider over HTTP: discovery (read once, retried on failure), the
 * authorization URL, the code exchange (client_secret_basic, PKCE), ID token checks with the
 * provider's published keys (jose), and userinfo when the ID token carries no email.
 */
import { Duration, Effect, Layer, Option, Redacted, Schema } from "effect"
import { FetchHttpClient, HttpClient, HttpClientRequest, HttpClientResponse } from "effect/http"
import { createRemoteJWKSet, errors as joseErrors, jwtVerify } from "jose"
import { type ProviderIdentity, OidcProvider, ProviderUnavailable, SignInRejected } from "../src/accounts/OidcProvider.ts"
import { AppConfig, type OidcConfig } from "../src/config/AppConfig.ts"

const Discovery = Schema.Struct({
  issuer: Schema.String,
  authorization_endpoint: Schema.String,
  token_endpoint: Schema.String,
  jwks_uri: Schema.String,
  userinfo_endpoint: Schema.optional(Schema.String),
  id_token_signing_alg_values_supported: Schema.optional(Schema.Array(Schema.String)),
  code_challenge_methods_supported: Schema.optional(Schema.Array(Schema.String))
})

const TokenResponse = Schema.Struct({
  id_token: Schema.String,
  access_token: Schema.String,
  token_type: Schema.String
})

const ProviderError = Schema.Struct({ error: Schema.String, error_description: Schema.optional(Schema.String) })

const UserInfo = Schema.Struct({
  sub: Schema.String,
  email: Schema.optional(Schema.String),
  email_verified: Schema.optional(Schema.Union([Schema.Boolean, Schema.Literals(["true", "false"])])),
  name: Schema.optional(Schema.String)
})

// Keys fetched from the provider are public keys: HMAC (the client secret) and `none` are refused.
const asymmetric = /^(RS|PS|ES)(256|384|512)$|^EdDSA$/

const requestTimeout = Duration.seconds(10)

const make = (config: OidcConfig) =>
  Effect.gen(function* () {
    const client = (yield* HttpClient.HttpClient).pipe(HttpClient.transformResponse(Effect.timeout(requestTimeout)))
    const unavailable = (what: string) => (cause: unknown) =>
      new ProviderUnavailable({ reason: `${what}: ${cause instanceof Error ? cause.message : String(cause)}` })

    const readDiscovery = Effect.gen(function* () {
      const url = `${config.issuer.replace(/\/$/, "")}/.well-known/openid-configuration`
      const response = yield* client.get(url, { headers: { accept: "application/json" } })
      if (response.status !== 200) return yield* new ProviderUnavailable({ reason: `discovery answered ${response.status}` })
      const discovery = yield* HttpClientResponse.schemaBodyJson(Discovery)(response)
      // OpenID Connect Discovery 4.3: the document must name the issuer it was fetched for.
      if (discovery.issuer !== config.issuer) {
        return yield* new ProviderUnavailable({ reason: `discovery names issuer ${discovery.issuer}, not ${config.issuer}` })
      }
      if (!(discovery.code_challenge_methods_supported ?? ["S256"]).includes("S256")) {
        return yield* new ProviderUnavailable({ reason: "the provider does not support PKCE with S256" })
      }
      return { ...discovery, keys: createRemoteJWKSet(new URL(discovery.jwks_uri)) }
    }).pipe(Effect.mapError((error) => (error instanceof ProviderUnavailable ? error : unavailable("discovery failed")(error))))

    // Read once; a failure is not remembered, so the next sign-in tries again.
    let discovered: Option.Option<Effect.Success<typeof readDiscovery>> = Option.none()
    const discovery = Effect.suspend(() =>
      Option.match(discovered, {
        onSome: Effect.succeed,
        onNone: () => Effect.tap(readDiscovery, (found) => Effect.sync(() => (discovered = Option.some(found))))
      })
    )

    const authorizationUrl: OidcProvider["Service"]["authorizationUrl"] = ({ codeChallenge, nonce, state }) =>
      Effect.map(discovery, ({ authorization_endpoint }) => {
        const url = new URL(authorization_endpoint)
        url.searchParams.set("response_type", "code")
        url.searchParams.set("client_id", config.clientId)
        url.searchParams.set("redirect_uri", config.redirectUrl)
        url.searchParams.set("scope", config.scopes)
        url.searchParams.set("state", state)
        url.searchParams.set("nonce", nonce)
        url.searchParams.set("code_challenge", codeChallenge)
        url.searchParams.set("code_challenge_method", "S256")
        return url.toString()
      })

    // RFC 6749 2.3.1: the client id and secret are form-encoded before they are joined.
    const clientAuthorization = `Basic ${Buffer.from(
      `${encodeURIComponent(config.clientId)}:${encodeURIComponent(Redacted.value(config.clientSecret))}`
    ).toString("base64")}`

    const exchange = (tokenEndpoint: string, code: string, codeVerifier: string) =>
      Effect.gen(function* () {
        const request = HttpClientRequest.post(tokenEndpoint).pipe(
          HttpClientRequest.setHeader("authorization", clientAuthorization),
          HttpClientRequest.acceptJson,
          HttpClientRequest.bodyUrlParams({
            grant_type: "authorization_code",
            code,
            redirect_uri: config.redirectUrl,
            code_verifier: codeVerifier
          })
        )
        const response = yield* Effect.mapError(client.execute(request), unavailable("the token endpoint could not be reached"))
        if (response.status >= 400 && response.status < 500) {
          const refusal = yield* HttpClientResponse.schemaBodyJson(ProviderError)(response).pipe(Effect.option)
          return yield* new SignInRejected({
            reason: Option.match(refusal, {
              onNone: () => `the token endpoint refused the code (${response.status})`,
              onSome: ({ error, error_description }) =>
                `the token endpoint refused the code: ${error}${error_description ? ` (${error_description})` : ""}`
            })
          })
        }
        if (response.status !== 200) return yield* new ProviderUnavailable({ reason: `the token endpoint answered ${response.status}` })
        return yield* HttpClientResponse.schemaBodyJson(TokenResponse)(response).pipe(
          Effect.mapError(unavailable("the token endpoint's answer is not a token response"))
        )
      })

    const userInfo = (endpoint: string, accessToken: string) =>
      Effect.gen(function* () {
        const request = HttpClientRequest.get(endpoint).pipe(HttpClientRequest.bearerToken(accessToken), HttpClientRequest.acceptJson)
        const response = yield* Effect.mapError(client.execute(request), unavailable("the userinfo endpoint could not be reached"))
        if (response.status !== 200) return yield* new ProviderUnavailable({ reason: `the userinfo endpoint answered ${response.status}` })
        return yield* HttpClientResponse.schemaBodyJson(UserInfo)(response).pipe(
          Effect.mapError(unavailable("the userinfo endpoint's answer is not userinfo"))
        )
      })

    const redeem: OidcProvider["Service"]["redeem"] = ({ code, codeVerifier, nonce }) =>
      Effect.gen(function* () {
        const found = yield* discovery
        const tokens = yield* exchange(found.token_endpoint, code, codeVerifier)
        const algorithms = (found.id_token_signing_alg_values_supported ?? ["RS256"]).filter((alg) => asymmetric.test(alg))
        const { payload } = yield* Effect.tryPromise({
          try: () =>
            jwtVerify(tokens.id_token, found.keys, { issuer: found.issuer, audience: config.clientId, algorithms, clockTolerance: 60 }),
          catch: (error) =>
            error instanceof joseErrors.JOSEError && !(error instanceof joseErrors.JWKSTimeout)
              ? new SignInRejected({ reason: `the ID token is not valid (${error.code})` })
              : unavailable("the provider's signing keys could not be read")(error)
        })
        // OpenID Connect Core 3.1.3.7: the nonce ties the token to this sign-in; azp to this client.
        if (payload.nonce !== nonce) return yield* new SignInRejected({ reason: "the ID token's nonce is not this sign-in's" })
        if (Array.isArray(payload.aud) && payload.aud.length > 1 && payload.azp !== config.clientId) {
          return yield* new SignInRejected({ reason: "the ID token was issued to another client" })
        }
        const subject = payload.sub
        if (typeof subject !== "string" || subject === "") return yield* new SignInRejected({ reason: "the ID token has no subject" })
        const claims =
          typeof payload.email === "string" || found.userinfo_endpoint === undefined
            ? payload
            : yield* userInfo(found.userinfo_endpoint, tokens.access_token)
        if (claims.sub !== subject) return yield* new SignInRejected({ reason: "userinfo is about another subject" })
        const identity: ProviderIdentity = {
          issuer: found.issuer,
          subject,
          email: typeof claims.email === "string" ? claims.email.trim().toLowerCase() : undefined,
          emailVerified: claims.email_verified === true || claims.email_verified === "true",
          name: typeof claims.name === "string" ? claims.name : undefined
        }
        return identity
      })

    return OidcProvider.of({ config, authorizationUrl, redeem })
  })

/**
 * The provider of BASALT_OIDC_ISSUER. Without one the service is simply absent: its only user
 * looks it up with Effect.serviceOption and answers 404.
 */
export const OidcProviderLive: Layer.Layer<OidcProvider, never, AppConfig> = Layer.unwrap(
  Effect.map(
    AppConfig,
    (config): Layer.Layer<OidcProvider> =>
      Option.match(config.auth.oidc, {
        onNone: () => Layer.empty as Layer.Layer<OidcProvider>,
        onSome: (oidc) => Layer.effect(OidcProvider, make(oidc)).pipe(Layer.provide(FetchHttpClient.layer))
      })
  )
)
