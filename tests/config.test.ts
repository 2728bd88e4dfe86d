/** Configuration: defaults, validation with one clear line per bad variable, secrets kept secret. */
import { ConfigProvider, Duration, Effect, Option, Redacted, Result } from "effect"
import { readFileSync } from "node:fs"
import { parseEnv } from "node:util"
import { describe, expect, it } from "vitest"
import { describeConfigError, parseAppConfig, parseByteSize } from "../src/config/AppConfig.ts"

/** Every variable AppConfig.ts reads, from its source: one added there is checked here too. */
const variables = [
  ...new Set(
    Array.from(
      readFileSync(new URL("../src/config/AppConfig.ts", import.meta.url), "utf8").matchAll(
        /"((?:BASALT|DATABASE|OTEL)_[A-Z0-9_]+|PORT|HOST|LOG_LEVEL)"/g
      ),
      (match) => match[1]!
    )
  )
]

// Read as the server reads its environment.
const load = (env: Record<string, string>) => Effect.runSync(Effect.result(parseAppConfig(ConfigProvider.fromEnv({ env }))))

const errorOf = (env: Record<string, string>) => {
  const result = load(env)
  if (Result.isSuccess(result)) throw new Error("expected the configuration to be refused")
  return describeConfigError(result.failure)
}

describe("configuration", () => {
  it("has working defaults with nothing set", () => {
    const config = Result.getOrThrow(load({}))
    expect(config.port).toBe(8080)
    expect(config.host).toBe("0.0.0.0")
    expect(config.dataDir).toBe("./data")
    expect(config.logLevel).toBe("Info")
    expect(config.corsOrigins).toEqual([])
    expect(config.bodyLimitBytes).toBe(1024 * 1024)
    expect(Duration.toMillis(config.shutdownGrace)).toBe(10_000)
    expect(Option.isNone(config.database.url)).toBe(true)
    expect(config.database.poolMax).toBe(10)
    expect(config.database.ssl).toBe("disable")
    expect(Option.isNone(config.telemetry.otlpEndpoint)).toBe(true)
    expect(config.telemetry.serviceName).toBe("basalt")
  })

  it("reads every variable", () => {
    const config = Result.getOrThrow(
      load({
        PORT: "9090",
        HOST: "127.0.0.1",
        LOG_LEVEL: "WARN",
        BASALT_CORS_ORIGINS: "https://a.example, https://b.example ,",
        BASALT_BODY_LIMIT: "512kb",
        BASALT_SHUTDOWN_GRACE: "3 seconds",
        DATABASE_URL: "postgres://u:p@db:5432/basalt",
        DATABASE_POOL_MAX: "25",
        DATABASE_SSL: "verify-full",
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318",
        OTEL_EXPORTER_OTLP_HEADERS: "authorization=Bearer xyz, x-tenant=7"
      })
    )
    expect(config.port).toBe(9090)
    expect(config.logLevel).toBe("Warn")
    expect(config.corsOrigins).toEqual(["https://a.example", "https://b.example"])
    expect(config.bodyLimitBytes).toBe(512 * 1024)
    expect(Duration.toMillis(config.shutdownGrace)).toBe(3000)
    expect(config.database.poolMax).toBe(25)
    expect(config.database.ssl).toBe("verify-full")
    expect(Option.getOrThrow(config.telemetry.otlpEndpoint)).toBe("http://collector:4318")
    expect(Redacted.value(config.telemetry.otlpHeaders)).toEqual({ authorization: "Bearer xyz", "x-tenant": "7" })
  })

  it("treats an empty optional variable as unset", () => {
    const config = Result.getOrThrow(load({ DATABASE_URL: "", OTEL_EXPORTER_OTLP_ENDPOINT: " ", DATABASE_SSL_CA_FILE: "" }))
    expect(Option.isNone(config.database.url)).toBe(true)
    expect(Option.isNone(config.telemetry.otlpEndpoint)).toBe(true)
    expect(Option.isNone(config.database.sslCaFile)).toBe(true)
  })

  it.each(variables)("%s= counts as unset, empty or blank", (name) => {
    const defaults = Result.getOrThrow(load({}))
    expect(Result.getOrThrow(load({ [name]: "" }))).toEqual(defaults)
    expect(Result.getOrThrow(load({ [name]: "  " }))).toEqual(defaults)
  })

  it("reads .env.example, as `node --env-file` (npm run start:env) reads it, as the defaults", () => {
    const example = parseEnv(readFileSync(new URL("../.env.example", import.meta.url), "utf8")) as Record<string, string>
    expect(Object.keys(example).sort()).toEqual([...variables].sort())
    expect(Result.getOrThrow(load(example))).toEqual(Result.getOrThrow(load({})))
  })

  it("documents every variable in the README's configuration table", () => {
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8")
    for (const name of variables) expect(readme).toContain(`| \`${name}\` |`)
  })

  it.each([
    [{ PORT: "abc" }, /^PORT: /],
    [{ PORT: "70000" }, /^PORT: must be a port number/],
    [{ LOG_LEVEL: "loud" }, /^LOG_LEVEL: must be one of/],
    [{ BASALT_BODY_LIMIT: "lots" }, /^BASALT_BODY_LIMIT: expected a size/],
    [{ BASALT_SHUTDOWN_GRACE: "soon" }, /^BASALT_SHUTDOWN_GRACE: /],
    [{ DATABASE_POOL_MAX: "0" }, /^DATABASE_POOL_MAX: must be a whole number greater than 0/],
    [{ DATABASE_SSL: "maybe" }, /^DATABASE_SSL: must be one of disable, require, verify-full/],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" }, /^OTEL_EXPORTER_OTLP_ENDPOINT: must be an http\(s\) URL/],
    [{ OTEL_EXPORTER_OTLP_HEADERS: "=x" }, /^OTEL_EXPORTER_OTLP_HEADERS: expected key=value pairs/],
    [{ BASALT_RATE_LIMIT_AUTH: "lots" }, /^BASALT_RATE_LIMIT_AUTH: expected requests per window such as 10\/1m/],
    [{ BASALT_RATE_LIMIT_AUTH: "10/1w" }, /^BASALT_RATE_LIMIT_AUTH: expected requests per window/],
    [{ BASALT_RATE_LIMIT_PRINCIPAL: "0/1m" }, /^BASALT_RATE_LIMIT_PRINCIPAL: the number of requests must be from 1/],
    [{ BASALT_RATE_LIMIT_PRINCIPAL: "10/0s" }, /^BASALT_RATE_LIMIT_PRINCIPAL: the window must be from 1 second to 7 days/],
    [{ BASALT_TRUSTED_PROXIES: "10.0.0.0/8, 10.0.0.0/33" }, /^BASALT_TRUSTED_PROXIES: "10.0.0.0\/33" is not an IP address or range/]
  ])("refuses %o with one line naming the variable", (env, message) => {
    const line = errorOf(env)
    expect(line).toMatch(message)
    expect(line).not.toContain("\n")
  })

  it("names every bad variable when several are wrong", () => {
    const line = errorOf({ PORT: "abc", DATABASE_SSL: "maybe" })
    expect(line).toMatch(/PORT: .*; DATABASE_SSL: /)
  })

  it("never shows secrets when the configuration is printed or logged", () => {
    const config = Result.getOrThrow(
      load({ DATABASE_URL: "postgres://u:hunter2@db/basalt", OTEL_EXPORTER_OTLP_HEADERS: "authorization=Bearer tok3n" })
    )
    const printed = `${JSON.stringify(config)} ${String(config.database.url)} ${String(config.telemetry.otlpHeaders)}`
    expect(printed).not.toMatch(/hunter2|tok3n/)
  })

  it.each([
    ["1048576", 1048576],
    ["512kb", 524288],
    ["1MiB", 1048576],
    ["2 mb", 2097152]
  ])("parses the size %s", (text, bytes) => {
    expect(parseByteSize(text)).toEqual(Result.succeed(bytes))
  })
})

describe("configuration of rate limits", () => {
  it("limits by default, with no trusted proxy", () => {
    const config = Result.getOrThrow(load({}))
    expect(config.rateLimits.auth).toEqual(Option.some({ quota: 10, windowSeconds: 60 }))
    expect(config.rateLimits.principal).toEqual(Option.some({ quota: 600, windowSeconds: 60 }))
    expect(config.trustedProxies).toEqual([])
    // Empty is unset, as for every variable.
    const empty = Result.getOrThrow(load({ BASALT_RATE_LIMIT_AUTH: "", BASALT_TRUSTED_PROXIES: "" }))
    expect(empty.rateLimits.auth).toEqual(Option.some({ quota: 10, windowSeconds: 60 }))
  })

  it("reads the limits, off, and the trusted proxies", () => {
    const config = Result.getOrThrow(
      load({ BASALT_RATE_LIMIT_AUTH: "5/30s", BASALT_RATE_LIMIT_PRINCIPAL: "off", BASALT_TRUSTED_PROXIES: "10.0.0.0/8, ::1" })
    )
    expect(config.rateLimits.auth).toEqual(Option.some({ quota: 5, windowSeconds: 30 }))
    expect(Option.isNone(config.rateLimits.principal)).toBe(true)
    expect(config.trustedProxies.map((cidr) => [cidr.version, cidr.prefix])).toEqual([
      [4, 8],
      [6, 128]
    ])
  })
})

describe("configuration of accounts", () => {
  it("refuses a short BASALT_JWT_SECRET without showing it", () => {
    const line = errorOf({ BASALT_JWT_SECRET: "tooshort" })
    expect(line).toMatch(/^BASALT_JWT_SECRET: must be at least 32 characters/)
    expect(line).not.toContain("tooshort")
  })

  it("reads the accounts settings, with sign-up closed by default", () => {
    const defaults = Result.getOrThrow(load({}))
    expect(defaults.auth.allowSignup).toBe(false)
    expect(Duration.toMinutes(defaults.auth.accessTokenTtl)).toBe(15)
    const set = Result.getOrThrow(
      load({ BASALT_ALLOW_SIGNUP: "true", BASALT_ACCESS_TOKEN_TTL: "5 minutes", BASALT_JWT_SECRET: "k".repeat(32) })
    )
    expect(set.auth.allowSignup).toBe(true)
    expect(Duration.toMinutes(set.auth.accessTokenTtl)).toBe(5)
    expect(Option.map(set.auth.jwtSecret, Redacted.value)).toEqual(Option.some("k".repeat(32)))
  })
})

describe("configuration of single sign-on", () => {
  const complete = {
    BASALT_OIDC_ISSUER: "https://login.example.com/",
    BASALT_OIDC_CLIENT_ID: "basalt",
    BASALT_OIDC_CLIENT_SECRET: "the-client-secret",
    BASALT_OIDC_REDIRECT_URL: "https://basalt.example.com/api/v1/auth/oidc/callback"
  }

  it("is off without an issuer, even if other OIDC variables are set", () => {
    const config = Result.getOrThrow(load({ BASALT_OIDC_CLIENT_ID: "x" }))
    expect(Option.isNone(config.auth.oidc)).toBe(true)
  })

  it("reads the provider, keeping the issuer exactly as given and the secret redacted", () => {
    const config = Result.getOrThrow(load({ ...complete, BASALT_OIDC_ALLOWED_DOMAINS: "Corp.example, @lab.example" }))
    const oidc = Option.getOrThrow(config.auth.oidc)
    expect(oidc.issuer).toBe("https://login.example.com/")
    expect(oidc.allowedDomains).toEqual(["corp.example", "lab.example"])
    expect(oidc.scopes).toBe("openid email profile")
    expect(String(oidc.clientSecret)).not.toContain("the-client-secret")
  })

  it("names every missing or bad setting once an issuer is set", () => {
    const line = errorOf({ BASALT_OIDC_ISSUER: "ftp://login.example.com", BASALT_OIDC_SCOPES: "email" })
    for (const name of [
      "BASALT_OIDC_ISSUER",
      "BASALT_OIDC_CLIENT_ID",
      "BASALT_OIDC_CLIENT_SECRET",
      "BASALT_OIDC_REDIRECT_URL",
      "BASALT_OIDC_SCOPES"
    ]) {
      expect(line).toContain(name)
    }
  })
})

describe("configuration of embeddings and indexing", () => {
  it("uses the built-in model by default, indexing two batches of up to 64 documents at once in 512-token chunks", () => {
    const config = Result.getOrThrow(load({}))
    expect(Option.isNone(config.embeddings.provider)).toBe(true)
    expect(config.embeddings.batchSize).toBe(64)
    expect(config.embeddings.concurrency).toBe(4)
    expect(Duration.toSeconds(config.embeddings.timeout)).toBe(60)
    expect(config.indexing).toEqual({ concurrency: 4, batchSize: 64, chunkTokens: 512, chunkOverlapTokens: 64 })
  })

  it("reads a provider, its key redacted, and the indexing settings", () => {
    const config = Result.getOrThrow(
      load({
        BASALT_EMBEDDINGS_URL: "http://localhost:11434/v1",
        BASALT_EMBEDDINGS_MODEL: "nomic-embed-text",
        BASALT_EMBEDDINGS_DIMENSIONS: "768",
        BASALT_EMBEDDINGS_API_KEY: "sk-very-secret",
        BASALT_EMBEDDINGS_BATCH_SIZE: "32",
        BASALT_EMBEDDINGS_CONCURRENCY: "2",
        BASALT_EMBEDDINGS_TIMEOUT: "15 seconds",
        BASALT_INDEXING_CONCURRENCY: "6",
        BASALT_INDEXING_BATCH_SIZE: "8",
        BASALT_CHUNK_TOKENS: "256",
        BASALT_CHUNK_OVERLAP_TOKENS: "32"
      })
    )
    const provider = Option.getOrThrow(config.embeddings.provider)
    expect(provider).toMatchObject({ url: "http://localhost:11434/v1", model: "nomic-embed-text", dimensions: Option.some(768) })
    expect(Redacted.value(Option.getOrThrow(provider.apiKey))).toBe("sk-very-secret")
    expect(String(provider.apiKey)).not.toContain("sk-very-secret")
    expect(config.embeddings).toMatchObject({ batchSize: 32, concurrency: 2 })
    expect(Duration.toSeconds(config.embeddings.timeout)).toBe(15)
    expect(config.indexing).toEqual({ concurrency: 6, batchSize: 8, chunkTokens: 256, chunkOverlapTokens: 32 })
  })

  it("reads a provider's floor for semantic search, and refuses one that is no cosine similarity or has no provider", () => {
    const provider = { BASALT_EMBEDDINGS_URL: "http://localhost:11434/v1", BASALT_EMBEDDINGS_MODEL: "nomic-embed-text" }
    const floorOf = (env: Record<string, string>) => Option.getOrThrow(Result.getOrThrow(load(env)).embeddings.provider).minimumSimilarity
    expect(floorOf({ ...provider, BASALT_EMBEDDINGS_MIN_SIMILARITY: "0.45" })).toEqual(Option.some(0.45))
    expect(floorOf({ ...provider, BASALT_EMBEDDINGS_MIN_SIMILARITY: "-0.1" })).toEqual(Option.some(-0.1))
    expect(floorOf({ ...provider, BASALT_EMBEDDINGS_MIN_SIMILARITY: "" })).toEqual(Option.none())
    for (const value of ["1.5", "-2", "high", "0x1", "1e-1"]) {
      expect(errorOf({ ...provider, BASALT_EMBEDDINGS_MIN_SIMILARITY: value })).toContain(
        "BASALT_EMBEDDINGS_MIN_SIMILARITY: must be a cosine similarity, a number from -1 to 1"
      )
    }
    expect(errorOf({ BASALT_EMBEDDINGS_MIN_SIMILARITY: "0.3" })).toContain(
      "BASALT_EMBEDDINGS_MIN_SIMILARITY: applies to a provider: set BASALT_EMBEDDINGS_URL too"
    )
  })

  it("treats empty provider settings as unset", () => {
    const config = Result.getOrThrow(
      load({
        BASALT_EMBEDDINGS_URL: "",
        BASALT_EMBEDDINGS_MODEL: "",
        BASALT_EMBEDDINGS_DIMENSIONS: "",
        BASALT_EMBEDDINGS_API_KEY: ""
      })
    )
    expect(Option.isNone(config.embeddings.provider)).toBe(true)
  })

  it("names each bad setting", () => {
    expect(errorOf({ BASALT_EMBEDDINGS_URL: "http://localhost:11434/v1" })).toContain(
      "BASALT_EMBEDDINGS_MODEL: is required when BASALT_EMBEDDINGS_URL is set"
    )
    expect(errorOf({ BASALT_EMBEDDINGS_URL: "localhost:11434", BASALT_EMBEDDINGS_MODEL: "m" })).toContain(
      "BASALT_EMBEDDINGS_URL: must be an http(s) URL"
    )
    expect(errorOf({ BASALT_EMBEDDINGS_MODEL: "text-embedding-3-small" })).toContain(
      "BASALT_EMBEDDINGS_MODEL: applies to a provider: set BASALT_EMBEDDINGS_URL too"
    )
    expect(errorOf({ BASALT_EMBEDDINGS_URL: "http://x/v1", BASALT_EMBEDDINGS_MODEL: "m", BASALT_EMBEDDINGS_DIMENSIONS: "-3" })).toContain(
      "BASALT_EMBEDDINGS_DIMENSIONS: must be a whole number greater than 0"
    )
    expect(errorOf({ BASALT_INDEXING_CONCURRENCY: "0" })).toContain("BASALT_INDEXING_CONCURRENCY")
    expect(errorOf({ BASALT_CHUNK_TOKENS: "256", BASALT_CHUNK_OVERLAP_TOKENS: "200" })).toContain(
      "BASALT_CHUNK_OVERLAP_TOKENS: must be at most half of BASALT_CHUNK_TOKENS"
    )
    const key = errorOf({ BASALT_EMBEDDINGS_URL: "nope", BASALT_EMBEDDINGS_MODEL: "m", BASALT_EMBEDDINGS_API_KEY: "sk-hidden" })
    expect(key).not.toContain("sk-hidden")
  })
})
