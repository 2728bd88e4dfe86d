/**
 * Every setting Basalt reads, from environment variables, validated once at start.
 * `.env.example` and the README's configuration table list the same variables.
 */
import { Config, ConfigError, Context, Duration, Either, LogLevel, Option, Redacted } from "effect"
import { type Cidr, parseTrustedProxies } from "../http/ClientIp.ts"
import { parseRateLimit, type RateLimit } from "../ratelimit/RateLimitPolicy.ts"

export type DatabaseSsl = "disable" | "require" | "verify-full"

export interface AppConfigShape {
  readonly port: number
  readonly host: string
  readonly dataDir: string
  readonly logLevel: LogLevel.LogLevel
  readonly corsOrigins: ReadonlyArray<string>
  readonly bodyLimitBytes: number
  /** Per file of POST /api/v1/documents/upload (multipart bodies are exempt from bodyLimitBytes). */
  readonly uploadLimitBytes: number
  readonly shutdownGrace: Duration.Duration
  /** Proxies whose X-Forwarded-For is believed (see ClientIp). */
  readonly trustedProxies: ReadonlyArray<Cidr>
  /** None: that limit is off. */
  readonly rateLimits: {
    /** Per client address, on the sign-in routes (login, register, token, refresh). */
    readonly auth: Option.Option<RateLimit>
    /** Per user or API key, on every route that needs credentials. */
    readonly principal: Option.Option<RateLimit>
  }
  readonly database: {
    readonly url: Option.Option<Redacted.Redacted>
    readonly poolMax: number
    readonly connectTimeout: Duration.Duration
    readonly idleTimeout: Duration.Duration
    readonly ssl: DatabaseSsl
    readonly sslCaFile: Option.Option<string>
  }
  readonly auth: {
    /** HS256 key for access tokens; None: one generated once and kept in the database. */
    readonly jwtSecret: Option.Option<Redacted.Redacted>
    readonly accessTokenTtl: Duration.Duration
    readonly refreshTokenTtl: Duration.Duration
    readonly allowSignup: boolean
    /** Single sign-on with an OpenID Connect provider; None when BASALT_OIDC_ISSUER is unset. */
    readonly oidc: Option.Option<OidcConfig>
  }
  readonly embeddings: EmbeddingsConfig
  readonly indexing: {
    /** Batches of documents indexed at once. */
    readonly concurrency: number
    /** The most documents one batch holds (one status write per step, one embedding call, one transaction). */
    readonly batchSize: number
    readonly chunkTokens: number
    readonly chunkOverlapTokens: number
  }
  readonly telemetry: {
    readonly otlpEndpoint: Option.Option<string>
    readonly otlpHeaders: Redacted.Redacted<Record<string, string>>
    readonly serviceName: string
  }
}

export interface OidcConfig {
  /** The issuer identifier; discovery is read from `<issuer>/.well-known/openid-configuration`. */
  readonly issuer: string
  readonly clientId: string
  readonly clientSecret: Redacted.Redacted
  /** This server's callback as the provider knows it (behind a proxy it cannot be guessed). */
  readonly redirectUrl: string
  /** Lower-cased email domains allowed to sign in; empty: any domain. */
  readonly allowedDomains: ReadonlyArray<string>
  readonly scopes: string
}

/** None for `provider`: the built-in offline model (basalt-hash-ngram-v1). */
export interface EmbeddingsConfig {
  readonly provider: Option.Option<{
    /** An OpenAI-compatible API root, e.g. https://api.openai.com/v1 or http://localhost:11434/v1. */
    readonly url: string
    readonly model: string
    /** None: the model's own size, learnt from the provider at start. */
    readonly dimensions: Option.Option<number>
    readonly apiKey: Option.Option<Redacted.Redacted>
  }>
  readonly batchSize: number
  readonly concurrency: number
  readonly timeout: Duration.Duration
}

export class AppConfig extends Context.Tag("basalt/AppConfig")<AppConfig, AppConfigShape>() {}

const sizeUnits: Record<string, number> = { "": 1, b: 1, kb: 1024, kib: 1024, mb: 1024 ** 2, mib: 1024 ** 2 }

/** `1048576`, `512kb`, `1mb`, `1MiB` → bytes. */
export const parseByteSize = (text: string): Either.Either<number, string> => {
  const match = /^\s*(\d+)\s*([a-z]*)\s*$/i.exec(text)
  const unit = sizeUnits[match?.[2]?.toLowerCase() ?? "?"]
  if (match === null || unit === undefined) {
    return Either.left(`expected a size such as 1048576, 512kb or 1mb, got "${text}"`)
  }
  const bytes = Number(match[1]) * unit
  return bytes > 0 ? Either.right(bytes) : Either.left("must be greater than 0")
}

/** A variable read by a parser that explains itself: its message is the one line shown. */
const parsed = <A>(name: string, parse: (text: string) => Either.Either<A, string>) =>
  Config.string(name).pipe(
    Config.mapOrFail((text) => Either.mapLeft(parse(text), (message) => ConfigError.InvalidData([], message)))
  )

const byteSize = (name: string) => parsed(name, parseByteSize)

/** A rate limit (`10/1m`), `off` (None), or the default when unset or empty. */
const rateLimit = (name: string, fallback: RateLimit) =>
  parsed(name, (text) =>
    text.trim() === "" ? Either.right(Option.some(fallback)) : Either.map(parseRateLimit(text), Option.fromNullable)
  ).pipe(Config.withDefault(Option.some(fallback)))

const positiveInt = (name: string) =>
  Config.integer(name).pipe(Config.validate({ message: "must be a whole number greater than 0", validation: (n) => n > 0 }))

const oneOf = <const A extends string>(name: string, values: ReadonlyArray<A>) =>
  Config.string(name).pipe(
    Config.validate({
      message: `must be one of ${values.join(", ")}`,
      validation: (value): value is A => (values as ReadonlyArray<string>).includes(value)
    })
  )

const logLevels: Record<string, LogLevel.LogLevel> = {
  trace: LogLevel.Trace,
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warn: LogLevel.Warning,
  warning: LogLevel.Warning,
  error: LogLevel.Error,
  fatal: LogLevel.Fatal,
  none: LogLevel.None
}

const logLevel = (name: string) =>
  Config.string(name).pipe(
    Config.mapOrFail((text) => {
      const level = logLevels[text.trim().toLowerCase()]
      return level === undefined
        ? Either.left(ConfigError.InvalidData([], `must be one of trace, debug, info, warn, error, fatal, none; got "${text}"`))
        : Either.right(level)
    })
  )

/** Unset and empty are the same: `.env` files and orchestrators often write `NAME=`. */
const optional = <A>(config: Config.Config<A>, isEmpty: (a: A) => boolean) =>
  Config.option(config).pipe(Config.map(Option.filter((a) => !isEmpty(a))))

const list = (name: string) =>
  Config.string(name).pipe(
    Config.map((text) => text.split(",").map((item) => item.trim()).filter((item) => item !== ""))
  )

/** `key=value,key2=value2`, the OTLP exporters' header syntax. */
const keyValues = (name: string) =>
  Config.string(name).pipe(
    Config.mapOrFail((text) => {
      const entries = text.split(",").map((item) => item.trim()).filter((item) => item !== "")
      const pairs = entries.map((entry) => [entry.slice(0, entry.indexOf("=")).trim(), entry.slice(entry.indexOf("=") + 1).trim()] as const)
      return pairs.some(([key]) => key === "")
        ? Either.left(ConfigError.InvalidData([], "expected key=value pairs separated by commas"))
        : Either.right(Object.fromEntries(pairs))
    })
  )

const isHttpUrl = (url: string) => URL.canParse(url) && /^https?:$/.test(new URL(url).protocol)

const optionalText = (name: string) => optional(Config.string(name), (text) => text.trim() === "")

/** Nothing is required unless an issuer is set; then the client's settings are. */
const oidcConfig: Config.Config<Option.Option<OidcConfig>> = Config.all({
  issuer: optionalText("BASALT_OIDC_ISSUER"),
  clientId: optionalText("BASALT_OIDC_CLIENT_ID"),
  clientSecret: optionalText("BASALT_OIDC_CLIENT_SECRET"),
  redirectUrl: optionalText("BASALT_OIDC_REDIRECT_URL"),
  allowedDomains: list("BASALT_OIDC_ALLOWED_DOMAINS").pipe(Config.withDefault([])),
  scopes: Config.string("BASALT_OIDC_SCOPES").pipe(Config.withDefault("openid email profile"))
}).pipe(
  Config.mapOrFail(({ allowedDomains, clientId, clientSecret, issuer, redirectUrl, scopes }) => {
    if (Option.isNone(issuer)) return Either.right(Option.none())
    const problems: Array<ConfigError.ConfigError> = []
    const invalid = (name: string, message: string) => problems.push(ConfigError.InvalidData([name], message))
    if (!isHttpUrl(issuer.value)) invalid("BASALT_OIDC_ISSUER", "must be an http(s) URL")
    if (Option.isNone(clientId)) invalid("BASALT_OIDC_CLIENT_ID", "is required when BASALT_OIDC_ISSUER is set")
    if (Option.isNone(clientSecret)) invalid("BASALT_OIDC_CLIENT_SECRET", "is required when BASALT_OIDC_ISSUER is set")
    if (Option.isNone(redirectUrl)) invalid("BASALT_OIDC_REDIRECT_URL", "is required when BASALT_OIDC_ISSUER is set")
    else if (!isHttpUrl(redirectUrl.value)) invalid("BASALT_OIDC_REDIRECT_URL", "must be an http(s) URL")
    if (!scopes.split(/\s+/).includes("openid")) invalid("BASALT_OIDC_SCOPES", "must include openid")
    if (problems.length > 0 || Option.isNone(clientId) || Option.isNone(clientSecret) || Option.isNone(redirectUrl)) {
      return Either.left(problems.reduce((all, problem) => ConfigError.And(all, problem)))
    }
    return Either.right(Option.some({
      issuer: issuer.value,
      clientId: clientId.value,
      clientSecret: Redacted.make(clientSecret.value),
      redirectUrl: redirectUrl.value,
      allowedDomains: allowedDomains.map((domain) => domain.toLowerCase().replace(/^@/, "")),
      scopes
    }))
  })
)

/** The provider's settings are read only when a URL is set; without one they must be empty. */
const embeddingsConfig: Config.Config<EmbeddingsConfig> = Config.all({
  url: optionalText("BASALT_EMBEDDINGS_URL"),
  model: optionalText("BASALT_EMBEDDINGS_MODEL"),
  dimensions: optional(
    Config.string("BASALT_EMBEDDINGS_DIMENSIONS").pipe(
      Config.mapOrFail((text) =>
        text.trim() === "" || /^\s*[1-9]\d*\s*$/.test(text)
          ? Either.right(text.trim() === "" ? 0 : Number(text))
          : Either.left(ConfigError.InvalidData([], "must be a whole number greater than 0"))
      )
    ),
    (dimensions) => dimensions === 0
  ),
  // Validated as text, then wrapped: the message names no value.
  apiKey: optional(Config.string("BASALT_EMBEDDINGS_API_KEY").pipe(Config.map(Redacted.make)), (key) => Redacted.value(key).trim() === ""),
  batchSize: positiveInt("BASALT_EMBEDDINGS_BATCH_SIZE").pipe(Config.withDefault(64)),
  concurrency: positiveInt("BASALT_EMBEDDINGS_CONCURRENCY").pipe(Config.withDefault(4)),
  timeout: Config.duration("BASALT_EMBEDDINGS_TIMEOUT").pipe(Config.withDefault(Duration.seconds(60)))
}).pipe(
  Config.mapOrFail(({ apiKey, batchSize, concurrency, dimensions, model, timeout, url }) => {
    if (Option.isNone(url)) {
      const set = [
        Option.isSome(model) ? "BASALT_EMBEDDINGS_MODEL" : undefined,
        Option.isSome(dimensions) ? "BASALT_EMBEDDINGS_DIMENSIONS" : undefined
      ].filter((name) => name !== undefined)
      return set.length === 0
        ? Either.right({ provider: Option.none(), batchSize, concurrency, timeout })
        : Either.left(
          set.map((name) =>
            ConfigError.InvalidData([name], "applies to a provider: set BASALT_EMBEDDINGS_URL too, or leave it empty for the built-in model")
          ).reduce((all, problem) => ConfigError.And(all, problem))
        )
    }
    if (!isHttpUrl(url.value)) {
      return Either.left(ConfigError.InvalidData(["BASALT_EMBEDDINGS_URL"], "must be an http(s) URL such as https://api.openai.com/v1"))
    }
    if (Option.isNone(model)) {
      return Either.left(ConfigError.InvalidData(["BASALT_EMBEDDINGS_MODEL"], "is required when BASALT_EMBEDDINGS_URL is set"))
    }
    return Either.right({
      provider: Option.some({ url: url.value.trim(), model: model.value.trim(), dimensions, apiKey }),
      batchSize,
      concurrency,
      timeout
    })
  })
)

const indexingConfig = Config.all({
  concurrency: positiveInt("BASALT_INDEXING_CONCURRENCY").pipe(Config.withDefault(4)),
  batchSize: positiveInt("BASALT_INDEXING_BATCH_SIZE").pipe(Config.withDefault(64)),
  chunkTokens: positiveInt("BASALT_CHUNK_TOKENS").pipe(
    Config.validate({ message: "must be at least 32 (smaller chunks carry too little text)", validation: (n) => n >= 32 }),
    Config.withDefault(512)
  ),
  chunkOverlapTokens: Config.integer("BASALT_CHUNK_OVERLAP_TOKENS").pipe(
    Config.validate({ message: "must be a whole number, 0 or more", validation: (n) => n >= 0 }),
    Config.withDefault(64)
  )
}).pipe(
  Config.mapOrFail((indexing) =>
    indexing.chunkOverlapTokens * 2 > indexing.chunkTokens
      ? Either.left(ConfigError.InvalidData(["BASALT_CHUNK_OVERLAP_TOKENS"], "must be at most half of BASALT_CHUNK_TOKENS"))
      : Either.right(indexing)
  )
)

export const appConfig: Config.Config<AppConfigShape> = Config.all({
  port: Config.integer("PORT").pipe(
    Config.validate({ message: "must be a port number from 0 to 65535 (0 picks a free port)", validation: (n) => n >= 0 && n <= 65535 }),
    Config.withDefault(8080)
  ),
  host: Config.string("HOST").pipe(Config.withDefault("0.0.0.0")),
  dataDir: Config.string("BASALT_DATA_DIR").pipe(Config.withDefault("./data")),
  logLevel: logLevel("LOG_LEVEL").pipe(Config.withDefault(LogLevel.Info)),
  corsOrigins: list("BASALT_CORS_ORIGINS").pipe(Config.withDefault([])),
  bodyLimitBytes: byteSize("BASALT_BODY_LIMIT").pipe(Config.withDefault(1024 * 1024)),
  uploadLimitBytes: byteSize("BASALT_UPLOAD_LIMIT").pipe(Config.withDefault(25 * 1024 * 1024)),
  shutdownGrace: Config.duration("BASALT_SHUTDOWN_GRACE").pipe(Config.withDefault(Duration.seconds(10))),
  trustedProxies: parsed("BASALT_TRUSTED_PROXIES", parseTrustedProxies).pipe(Config.withDefault([])),
  rateLimits: Config.all({
    auth: rateLimit("BASALT_RATE_LIMIT_AUTH", { quota: 10, windowSeconds: 60 }),
    principal: rateLimit("BASALT_RATE_LIMIT_PRINCIPAL", { quota: 600, windowSeconds: 60 })
  }),
  database: Config.all({
    url: optional(Config.redacted("DATABASE_URL"), (url) => Redacted.value(url).trim() === ""),
    poolMax: positiveInt("DATABASE_POOL_MAX").pipe(Config.withDefault(10)),
    connectTimeout: Config.duration("DATABASE_CONNECT_TIMEOUT").pipe(Config.withDefault(Duration.seconds(10))),
    idleTimeout: Config.duration("DATABASE_IDLE_TIMEOUT").pipe(Config.withDefault(Duration.seconds(30))),
    ssl: oneOf("DATABASE_SSL", ["disable", "require", "verify-full"] as const).pipe(Config.withDefault("disable" as const)),
    sslCaFile: optional(Config.string("DATABASE_SSL_CA_FILE"), (file) => file.trim() === "")
  }),
  auth: Config.all({
    // Validated as text, then wrapped: the message names no value.
    jwtSecret: optional(
      Config.string("BASALT_JWT_SECRET").pipe(
        Config.validate({
          message: "must be at least 32 characters (a shorter HS256 key can be guessed)",
          validation: (secret) => secret.trim() === "" || secret.length >= 32
        }),
        Config.map(Redacted.make)
      ),
      (secret) => Redacted.value(secret).trim() === ""
    ),
    accessTokenTtl: Config.duration("BASALT_ACCESS_TOKEN_TTL").pipe(Config.withDefault(Duration.minutes(15))),
    refreshTokenTtl: Config.duration("BASALT_REFRESH_TOKEN_TTL").pipe(Config.withDefault(Duration.days(30))),
    allowSignup: Config.boolean("BASALT_ALLOW_SIGNUP").pipe(Config.withDefault(false)),
    oidc: oidcConfig
  }),
  embeddings: embeddingsConfig,
  indexing: indexingConfig,
  telemetry: Config.all({
    otlpEndpoint: optional(
      Config.string("OTEL_EXPORTER_OTLP_ENDPOINT").pipe(
        Config.validate({
          message: "must be an http(s) URL such as http://localhost:4318",
          validation: (url) => url.trim() === "" || /^https?:\/\/\S+$/.test(url)
        })
      ),
      (url) => url.trim() === ""
    ),
    // Wrapped after parsing: the parse error names no value, and Config.redacted would hide the error too.
    otlpHeaders: keyValues("OTEL_EXPORTER_OTLP_HEADERS").pipe(
      Config.map(Redacted.make),
      Config.withDefault(Redacted.make<Record<string, string>>({}))
    ),
    serviceName: Config.string("OTEL_SERVICE_NAME").pipe(Config.withDefault("basalt"))
  })
})

/** One line per bad variable: `PORT: Expected an integer value but received abc`. */
export const describeConfigError = (error: ConfigError.ConfigError): string =>
  ConfigError.reduceWithContext(error, undefined, {
    andCase: (_, left: string, right: string) => `${left}; ${right}`,
    orCase: (_, left: string, right: string) => `${left}; ${right}`,
    invalidDataCase: (_, path, message) => `${path.join(".")}: ${message}`,
    missingDataCase: (_, path, message) => `${path.join(".")}: ${message}`,
    sourceUnavailableCase: (_, path, message) => `${path.join(".")}: ${message}`,
    unsupportedCase: (_, path, message) => `${path.join(".")}: ${message}`
  })
