/**
 * Every setting Basalt reads, from environment variables, validated once at start.
 * `.env.example` and the README's configuration table list the same variables.
 */
import { Config, ConfigProvider, Context, Duration, Effect, type LogLevel, Option, Redacted, Result, Schema, SchemaIssue } from "effect"
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
  /** How long the whole multipart body of an upload may take to arrive (408 after). */
  readonly uploadTimeout: Duration.Duration
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
    /** The longest a statement may run; past it, it is cancelled (a 503 for a request). */
    readonly statementTimeout: Duration.Duration
    /** The longest a statement waits for a pooled connection. */
    readonly acquireTimeout: Duration.Duration
    /** How long a starting server waits for an unavailable database before it gives up. */
    readonly startupWait: Duration.Duration
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
  readonly chat: ChatConfig
  /** Tokens (prompt and answer) chat may use a day (UTC); None: no budget. */
  readonly chatBudgets: {
    readonly perUser: Option.Option<number>
    readonly perApiKey: Option.Option<number>
  }
  readonly indexing: {
    /** Batches of documents indexed at once. */
    readonly concurrency: number
    /** The most documents one batch holds (one status write per step, one embedding call, one transaction). */
    readonly batchSize: number
    readonly chunkTokens: number
    readonly chunkOverlapTokens: number
  }
  /** This process as a cluster runner: where the other Basalt processes reach it. */
  readonly cluster: {
    /** None: HOST when it names one address, else this machine's first non-loopback IPv4 address. */
    readonly runnerHost: Option.Option<string>
    /** None: the port the server listens on (the runner transport is on the same server). */
    readonly runnerPort: Option.Option<number>
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

/** None for `provider`: the extractive answerer (basalt-extractive-v1), which needs no model. */
export interface ChatConfig {
  readonly provider: Option.Option<{
    /** An OpenAI-compatible API root, e.g. https://api.openai.com/v1 or http://localhost:11434/v1. */
    readonly url: string
    /** The allowlist of models a chat may ask for; the first is the default. */
    readonly models: readonly [string, ...Array<string>]
    readonly apiKey: Option.Option<Redacted.Redacted>
  }>
  /** The longest wait for the first token, connecting included. */
  readonly timeout: Duration.Duration
  /** The longest silence between two chunks of an answer. */
  readonly idleTimeout: Duration.Duration
  /** The longest a whole answer may take. */
  readonly totalTimeout: Duration.Duration
  /** How long a finished answer's events stay to be replayed (a stream resumed later is told it expired). */
  readonly runRetention: Duration.Duration
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
    /** Semantic search's floor for this model (cosine similarity); None: 0. */
    readonly minimumSimilarity: Option.Option<number>
  }>
  readonly batchSize: number
  readonly concurrency: number
  readonly timeout: Duration.Duration
}

export class AppConfig extends Context.Service<AppConfig, AppConfigShape>()("basalt/AppConfig") {}

const sizeUnits: Record<string, number> = { "": 1, b: 1, kb: 1024, kib: 1024, mb: 1024 ** 2, mib: 1024 ** 2 }

/** `1048576`, `512kb`, `1mb`, `1MiB` → bytes. */
export const parseByteSize = (text: string): Result.Result<number, string> => {
  const match = /^\s*(\d+)\s*([a-z]*)\s*$/i.exec(text)
  const unit = sizeUnits[match?.[2]?.toLowerCase() ?? "?"]
  if (match === null || unit === undefined) {
    return Result.fail(`expected a size such as 1048576, 512kb or 1mb, got "${text}"`)
  }
  const bytes = Number(match[1]) * unit
  return bytes > 0 ? Result.succeed(bytes) : Result.fail("must be greater than 0")
}

/** One bad variable: the message is the whole line shown after its name. */
const invalid = (name: string, message: string): SchemaIssue.Issue =>
  new SchemaIssue.Pointer([name], new SchemaIssue.InvalidValue({ message }))

const refuse = (issues: readonly [SchemaIssue.Issue, ...Array<SchemaIssue.Issue>]): Config.ConfigError =>
  new Config.ConfigError(new Schema.SchemaError(issues.length === 1 ? issues[0] : new SchemaIssue.Composite(Schema.Unknown.ast, issues)))

/** A variable read by a parser that explains itself: its message is the one line shown. */
const parsed = <A>(name: string, parse: (text: string) => Result.Result<A, string>) =>
  Config.String(name).pipe(
    Config.mapEffect((text) =>
      Result.match(parse(text), {
        onSuccess: Effect.succeed,
        onFailure: (message) => Effect.fail(refuse([invalid(name, message)]))
      })
    )
  )

/** A refusal with `message` unless `valid` holds; chained after a parser. */
const must =
  <A>(message: string, valid: (value: A) => boolean) =>
  (value: A): Result.Result<A, string> =>
    valid(value) ? Result.succeed(value) : Result.fail(message)

/** A whole number, or the line `Expected an integer value but received "abc"`. */
const parseInteger = (text: string): Result.Result<number, string> => {
  const value = Number(text)
  return text.trim() !== "" && Number.isInteger(value)
    ? Result.succeed(value)
    : Result.fail(`Expected an integer value but received "${text}"`)
}

/** A whole number that `valid` accepts, else refused with `message`. */
const integer = (name: string, message: string, valid: (value: number) => boolean) =>
  parsed(name, (text) => Result.flatMap(parseInteger(text), must(message, valid)))

/** Text that `valid` accepts, else refused with `message` (which names no value: some are secrets). */
const text = (name: string, message: string, valid: (value: string) => boolean) => parsed(name, must(message, valid))

const byteSize = (name: string) => parsed(name, parseByteSize)

/** `10 seconds`, `500 millis`, `2 minutes`: what `Duration.fromInput` reads. */
const parseDuration = (text: string): Result.Result<Duration.Duration, string> =>
  // Any text may be tried: fromInput answers None for what it cannot read.
  Option.match(Duration.fromInput(text.trim() as Duration.Input), {
    onNone: () => Result.fail(`expected a duration such as 10 seconds, 500 millis or 2 minutes, got "${text}"`),
    onSome: Result.succeed
  })

const duration = (name: string) => parsed(name, parseDuration)

/** A bound on a wait: 0 would refuse everything. */
const positiveDuration = (name: string) =>
  parsed(name, (text) => Result.flatMap(parseDuration(text), must("must be longer than 0", Duration.isPositive)))

/** A rate limit (`10/1m`), `off` (None), or the default when unset or empty. */
const rateLimit = (name: string, fallback: RateLimit) =>
  parsed(name, (text) =>
    text.trim() === "" ? Result.succeed(Option.some(fallback)) : Result.map(parseRateLimit(text), Option.fromNullishOr)
  ).pipe(Config.withDefault(Option.some(fallback)))

const positiveInt = (name: string) => integer(name, "must be a whole number greater than 0", (n) => n > 0)

const oneOf = <const A extends string>(name: string, values: readonly [A, ...Array<A>]) =>
  Config.schema(Schema.Literals(values).annotate({ message: `must be one of ${values.join(", ")}` }), name)

const logLevels: Record<string, LogLevel.LogLevel> = {
  trace: "Trace",
  debug: "Debug",
  info: "Info",
  warn: "Warn",
  warning: "Warn",
  error: "Error",
  fatal: "Fatal",
  none: "None"
}

const logLevel = (name: string) =>
  parsed(name, (text) => {
    const level = logLevels[text.trim().toLowerCase()]
    return level === undefined
      ? Result.fail(`must be one of trace, debug, info, warn, error, fatal, none; got "${text}"`)
      : Result.succeed(level)
  })

/** Unset and empty are the same: `.env` files and orchestrators often write `NAME=`. */
const optional = <A>(config: Config.Config<A>, isEmpty: (a: A) => boolean) =>
  Config.option(config).pipe(Config.map(Option.filter((a) => !isEmpty(a))))

const list = (name: string) =>
  Config.String(name).pipe(
    Config.map((text) =>
      text
        .split(",")
        .map((item) => item.trim())
        .filter((item) => item !== "")
    )
  )

/** `key=value,key2=value2`, the OTLP exporters' header syntax. */
const keyValues = (name: string) =>
  parsed(name, (text) => {
    const entries = text
      .split(",")
      .map((item) => item.trim())
      .filter((item) => item !== "")
    const pairs = entries.map((entry) => [entry.slice(0, entry.indexOf("=")).trim(), entry.slice(entry.indexOf("=") + 1).trim()] as const)
    return pairs.some(([key]) => key === "")
      ? Result.fail("expected key=value pairs separated by commas")
      : Result.succeed<Record<string, string>>(Object.fromEntries(pairs))
  })

/**
 * `Config.all` that reports every refused variable, not only the first one met.
 * Every setting below has a default, so a child is never absent: any failure is a refusal.
 */
const all = <const Configs extends Record<string, Config.Config<unknown>>>(
  configs: Configs
): Config.Config<{ -readonly [K in keyof Configs]: Config.Success<Configs[K]> }> => {
  const attempts: Record<string, Config.Config<Result.Result<unknown, Config.ConfigError>>> = {}
  for (const [key, config] of Object.entries(configs)) {
    attempts[key] = config.pipe(
      Config.map(Result.succeed),
      Config.orElse((error) => Config.succeed(Result.fail(error)))
    )
  }
  return Config.all(attempts).pipe(
    Config.mapEffect((results) => {
      const values: Record<string, unknown> = {}
      const errors: Array<Config.ConfigError> = []
      for (const [key, result] of Object.entries(results)) {
        if (Result.isSuccess(result)) values[key] = result.success
        else errors.push(result.failure)
      }
      if (errors.length === 0) {
        return Effect.succeed(values as { -readonly [K in keyof Configs]: Config.Success<Configs[K]> })
      }
      const sourceError = errors.find((error) => error.cause._tag === "SourceError")
      const issues = errors.flatMap((error) => (error.cause._tag === "SchemaError" ? [error.cause.issue] : []))
      return Effect.fail(sourceError ?? refuse(issues as [SchemaIssue.Issue, ...Array<SchemaIssue.Issue>]))
    })
  )
}

const isHttpUrl = (url: string) => URL.canParse(url) && /^https?:$/.test(new URL(url).protocol)

const optionalText = (name: string) => optional(Config.String(name), (text) => text.trim() === "")

/** Nothing is required unless an issuer is set; then the client's settings are. */
const oidcConfig: Config.Config<Option.Option<OidcConfig>> = all({
  issuer: optionalText("BASALT_OIDC_ISSUER"),
  clientId: optionalText("BASALT_OIDC_CLIENT_ID"),
  clientSecret: optionalText("BASALT_OIDC_CLIENT_SECRET"),
  redirectUrl: optionalText("BASALT_OIDC_REDIRECT_URL"),
  allowedDomains: list("BASALT_OIDC_ALLOWED_DOMAINS").pipe(Config.withDefault([])),
  scopes: Config.String("BASALT_OIDC_SCOPES").pipe(Config.withDefault("openid email profile"))
}).pipe(
  Config.mapEffect(({ allowedDomains, clientId, clientSecret, issuer, redirectUrl, scopes }) => {
    if (Option.isNone(issuer)) return Effect.succeed(Option.none())
    const problems: Array<SchemaIssue.Issue> = []
    const problem = (name: string, message: string) => problems.push(invalid(name, message))
    if (!isHttpUrl(issuer.value)) problem("BASALT_OIDC_ISSUER", "must be an http(s) URL")
    if (Option.isNone(clientId)) problem("BASALT_OIDC_CLIENT_ID", "is required when BASALT_OIDC_ISSUER is set")
    if (Option.isNone(clientSecret)) problem("BASALT_OIDC_CLIENT_SECRET", "is required when BASALT_OIDC_ISSUER is set")
    if (Option.isNone(redirectUrl)) problem("BASALT_OIDC_REDIRECT_URL", "is required when BASALT_OIDC_ISSUER is set")
    else if (!isHttpUrl(redirectUrl.value)) problem("BASALT_OIDC_REDIRECT_URL", "must be an http(s) URL")
    if (!scopes.split(/\s+/).includes("openid")) problem("BASALT_OIDC_SCOPES", "must include openid")
    if (problems.length > 0 || Option.isNone(clientId) || Option.isNone(clientSecret) || Option.isNone(redirectUrl)) {
      return Effect.fail(refuse(problems as [SchemaIssue.Issue, ...Array<SchemaIssue.Issue>]))
    }
    return Effect.succeed(
      Option.some({
        issuer: issuer.value,
        clientId: clientId.value,
        clientSecret: Redacted.make(clientSecret.value),
        redirectUrl: redirectUrl.value,
        allowedDomains: allowedDomains.map((domain) => domain.toLowerCase().replace(/^@/, "")),
        scopes
      })
    )
  })
)

/** The provider's settings are read only when a URL is set; without one they must be empty. */
const embeddingsConfig: Config.Config<EmbeddingsConfig> = all({
  url: optionalText("BASALT_EMBEDDINGS_URL"),
  model: optionalText("BASALT_EMBEDDINGS_MODEL"),
  dimensions: optional(
    parsed("BASALT_EMBEDDINGS_DIMENSIONS", (text) =>
      text.trim() === "" || /^\s*[1-9]\d*\s*$/.test(text)
        ? Result.succeed(text.trim() === "" ? 0 : Number(text))
        : Result.fail("must be a whole number greater than 0")
    ),
    (dimensions) => dimensions === 0
  ),
  minimumSimilarity: optional(
    parsed("BASALT_EMBEDDINGS_MIN_SIMILARITY", (text) =>
      text.trim() === "" || (/^\s*-?(\d+(\.\d*)?|\.\d+)\s*$/.test(text) && Math.abs(Number(text)) <= 1)
        ? Result.succeed(text.trim() === "" ? Number.NaN : Number(text))
        : Result.fail("must be a cosine similarity, a number from -1 to 1")
    ),
    Number.isNaN
  ),
  // Validated as text, then wrapped: the message names no value.
  apiKey: optional(Config.String("BASALT_EMBEDDINGS_API_KEY").pipe(Config.map(Redacted.make)), (key) => Redacted.value(key).trim() === ""),
  batchSize: positiveInt("BASALT_EMBEDDINGS_BATCH_SIZE").pipe(Config.withDefault(64)),
  concurrency: positiveInt("BASALT_EMBEDDINGS_CONCURRENCY").pipe(Config.withDefault(4)),
  timeout: duration("BASALT_EMBEDDINGS_TIMEOUT").pipe(Config.withDefault(Duration.seconds(60)))
}).pipe(
  Config.mapEffect(({ apiKey, batchSize, concurrency, dimensions, minimumSimilarity, model, timeout, url }) => {
    if (Option.isNone(url)) {
      const set = [
        Option.isSome(model) ? "BASALT_EMBEDDINGS_MODEL" : undefined,
        Option.isSome(dimensions) ? "BASALT_EMBEDDINGS_DIMENSIONS" : undefined,
        Option.isSome(minimumSimilarity) ? "BASALT_EMBEDDINGS_MIN_SIMILARITY" : undefined
      ].filter((name) => name !== undefined)
      const problems = set.map((name) =>
        invalid(name, "applies to a provider: set BASALT_EMBEDDINGS_URL too, or leave it empty for the built-in model")
      )
      return problems.length === 0
        ? Effect.succeed<EmbeddingsConfig>({ provider: Option.none(), batchSize, concurrency, timeout })
        : Effect.fail(refuse(problems as [SchemaIssue.Issue, ...Array<SchemaIssue.Issue>]))
    }
    if (!isHttpUrl(url.value)) {
      return Effect.fail(refuse([invalid("BASALT_EMBEDDINGS_URL", "must be an http(s) URL such as https://api.openai.com/v1")]))
    }
    if (Option.isNone(model)) {
      return Effect.fail(refuse([invalid("BASALT_EMBEDDINGS_MODEL", "is required when BASALT_EMBEDDINGS_URL is set")]))
    }
    return Effect.succeed<EmbeddingsConfig>({
      provider: Option.some({ url: url.value.trim(), model: model.value.trim(), dimensions, apiKey, minimumSimilarity }),
      batchSize,
      concurrency,
      timeout
    })
  })
)

/** The provider's settings are read only when a URL is set; without one they must be empty. */
const chatConfig: Config.Config<ChatConfig> = all({
  url: optionalText("BASALT_CHAT_URL"),
  models: list("BASALT_CHAT_MODELS").pipe(Config.withDefault([])),
  // Validated as text, then wrapped: the message names no value.
  apiKey: optional(Config.String("BASALT_CHAT_API_KEY").pipe(Config.map(Redacted.make)), (key) => Redacted.value(key).trim() === ""),
  timeout: positiveDuration("BASALT_CHAT_TIMEOUT").pipe(Config.withDefault(Duration.seconds(30))),
  idleTimeout: positiveDuration("BASALT_CHAT_IDLE_TIMEOUT").pipe(Config.withDefault(Duration.seconds(30))),
  totalTimeout: positiveDuration("BASALT_CHAT_TOTAL_TIMEOUT").pipe(Config.withDefault(Duration.minutes(5))),
  runRetention: duration("BASALT_CHAT_RUN_RETENTION").pipe(Config.withDefault(Duration.hours(1)))
}).pipe(
  Config.mapEffect(({ apiKey, idleTimeout, models, runRetention, timeout, totalTimeout, url }) => {
    if (Option.isNone(url)) {
      return models.length === 0
        ? Effect.succeed<ChatConfig>({ provider: Option.none(), timeout, idleTimeout, totalTimeout, runRetention })
        : Effect.fail(
            refuse([
              invalid("BASALT_CHAT_MODELS", "applies to a provider: set BASALT_CHAT_URL too, or leave it empty for the extractive answerer")
            ])
          )
    }
    if (!isHttpUrl(url.value)) {
      return Effect.fail(refuse([invalid("BASALT_CHAT_URL", "must be an http(s) URL such as https://api.openai.com/v1")]))
    }
    const [first, ...rest] = [...new Set(models)]
    if (first === undefined) {
      return Effect.fail(refuse([invalid("BASALT_CHAT_MODELS", "is required when BASALT_CHAT_URL is set")]))
    }
    return Effect.succeed<ChatConfig>({
      provider: Option.some({ url: url.value.trim(), models: [first, ...rest], apiKey }),
      timeout,
      idleTimeout,
      totalTimeout,
      runRetention
    })
  })
)

const indexingConfig = all({
  concurrency: positiveInt("BASALT_INDEXING_CONCURRENCY").pipe(Config.withDefault(4)),
  batchSize: positiveInt("BASALT_INDEXING_BATCH_SIZE").pipe(Config.withDefault(64)),
  chunkTokens: integer("BASALT_CHUNK_TOKENS", "must be at least 32 (smaller chunks carry too little text)", (n) => n >= 32).pipe(
    Config.withDefault(512)
  ),
  chunkOverlapTokens: integer("BASALT_CHUNK_OVERLAP_TOKENS", "must be a whole number, 0 or more", (n) => n >= 0).pipe(
    Config.withDefault(64)
  )
}).pipe(
  Config.mapEffect((indexing) =>
    indexing.chunkOverlapTokens * 2 > indexing.chunkTokens
      ? Effect.fail(refuse([invalid("BASALT_CHUNK_OVERLAP_TOKENS", "must be at most half of BASALT_CHUNK_TOKENS")]))
      : Effect.succeed(indexing)
  )
)

const variables: Config.Config<AppConfigShape> = all({
  port: integer("PORT", "must be a port number from 0 to 65535 (0 picks a free port)", (n) => n >= 0 && n <= 65535).pipe(
    Config.withDefault(8080)
  ),
  host: Config.String("HOST").pipe(Config.withDefault("0.0.0.0")),
  dataDir: Config.String("BASALT_DATA_DIR").pipe(Config.withDefault("./data")),
  logLevel: logLevel("LOG_LEVEL").pipe(Config.withDefault<LogLevel.LogLevel>("Info")),
  corsOrigins: list("BASALT_CORS_ORIGINS").pipe(Config.withDefault([])),
  bodyLimitBytes: byteSize("BASALT_BODY_LIMIT").pipe(Config.withDefault(1024 * 1024)),
  uploadLimitBytes: byteSize("BASALT_UPLOAD_LIMIT").pipe(Config.withDefault(25 * 1024 * 1024)),
  uploadTimeout: positiveDuration("BASALT_UPLOAD_TIMEOUT").pipe(Config.withDefault(Duration.seconds(60))),
  shutdownGrace: duration("BASALT_SHUTDOWN_GRACE").pipe(Config.withDefault(Duration.seconds(10))),
  trustedProxies: parsed("BASALT_TRUSTED_PROXIES", parseTrustedProxies).pipe(Config.withDefault([])),
  rateLimits: all({
    auth: rateLimit("BASALT_RATE_LIMIT_AUTH", { quota: 10, windowSeconds: 60 }),
    principal: rateLimit("BASALT_RATE_LIMIT_PRINCIPAL", { quota: 600, windowSeconds: 60 })
  }),
  database: all({
    url: optional(Config.Redacted("DATABASE_URL"), (url) => Redacted.value(url).trim() === ""),
    poolMax: positiveInt("DATABASE_POOL_MAX").pipe(Config.withDefault(10)),
    connectTimeout: duration("DATABASE_CONNECT_TIMEOUT").pipe(Config.withDefault(Duration.seconds(10))),
    idleTimeout: duration("DATABASE_IDLE_TIMEOUT").pipe(Config.withDefault(Duration.seconds(30))),
    statementTimeout: positiveDuration("DATABASE_STATEMENT_TIMEOUT").pipe(Config.withDefault(Duration.seconds(30))),
    acquireTimeout: positiveDuration("DATABASE_ACQUIRE_TIMEOUT").pipe(Config.withDefault(Duration.seconds(5))),
    startupWait: duration("BASALT_DATABASE_WAIT").pipe(Config.withDefault(Duration.seconds(60))),
    ssl: oneOf("DATABASE_SSL", ["disable", "require", "verify-full"]).pipe(Config.withDefault("disable" as const)),
    sslCaFile: optional(Config.String("DATABASE_SSL_CA_FILE"), (file) => file.trim() === "")
  }),
  auth: all({
    // Validated as text, then wrapped: the message names no value.
    jwtSecret: optional(
      text(
        "BASALT_JWT_SECRET",
        "must be at least 32 characters (a shorter HS256 key can be guessed)",
        (secret) => secret.trim() === "" || secret.length >= 32
      ).pipe(Config.map(Redacted.make)),
      (secret) => Redacted.value(secret).trim() === ""
    ),
    accessTokenTtl: duration("BASALT_ACCESS_TOKEN_TTL").pipe(Config.withDefault(Duration.minutes(15))),
    refreshTokenTtl: duration("BASALT_REFRESH_TOKEN_TTL").pipe(Config.withDefault(Duration.days(30))),
    allowSignup: Config.Boolean("BASALT_ALLOW_SIGNUP").pipe(Config.withDefault(false)),
    oidc: oidcConfig
  }),
  embeddings: embeddingsConfig,
  chat: chatConfig,
  chatBudgets: all({
    perUser: Config.option(positiveInt("BASALT_CHAT_USER_DAILY_TOKENS")),
    perApiKey: Config.option(positiveInt("BASALT_CHAT_API_KEY_DAILY_TOKENS"))
  }),
  indexing: indexingConfig,
  cluster: all({
    runnerHost: optional(
      text("BASALT_RUNNER_HOST", "must be a host name or an IP address, without a scheme or port", (host) =>
        /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:.]+)$/.test(host.trim())
      ).pipe(Config.map((host) => host.trim())),
      (host) => host.trim() === ""
    ),
    runnerPort: optional(
      integer("BASALT_RUNNER_PORT", "must be a port number from 1 to 65535", (n) => n >= 1 && n <= 65535),
      () => false
    )
  }),
  telemetry: all({
    otlpEndpoint: optional(
      text(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "must be an http(s) URL such as http://localhost:4318",
        (url) => url.trim() === "" || /^https?:\/\/\S+$/.test(url)
      ),
      (url) => url.trim() === ""
    ),
    // Wrapped after parsing: the parse error names no value, and Config.Redacted would hide the error too.
    otlpHeaders: keyValues("OTEL_EXPORTER_OTLP_HEADERS").pipe(
      Config.map(Redacted.make),
      Config.withDefault(Redacted.make<Record<string, string>>({}))
    ),
    serviceName: Config.String("OTEL_SERVICE_NAME").pipe(Config.withDefault("basalt"))
  })
})

/**
 * `NAME=` (or blanks) counts as unset, for every variable: `.env` files and orchestrators write an
 * empty value for what they leave at its default.
 */
const emptyAsUnset = (provider: ConfigProvider.ConfigProvider) =>
  ConfigProvider.make((path) =>
    Effect.map(provider.load(path), (node) => (node?._tag === "Value" && node.value.trim() === "" ? undefined : node))
  )

/** The configuration as read from `provider`, or every refused variable. */
export const parseAppConfig = (provider: ConfigProvider.ConfigProvider) => variables.parse(emptyAsUnset(provider))

/** The configuration from the ConfigProvider in force (the environment, unless replaced). */
export const readAppConfig = Effect.flatMap(ConfigProvider.ConfigProvider, parseAppConfig)

const formatIssue = SchemaIssue.makeFormatterStandardSchemaV1()

/** One line per bad variable: `PORT: Expected a string representing a finite number`. */
export const describeConfigError = (error: Config.ConfigError): string => {
  if (error.cause._tag === "SourceError") return error.cause.message.replace(/\s*\n\s*/g, " ")
  return formatIssue(error.cause.issue)
    .issues.map(({ message, path = [] }) => {
      const name = path.map((segment) => String(typeof segment === "object" ? segment.key : segment)).join(".")
      const line = message.replace(/\s*\n\s*/g, " ")
      return name === "" ? line : `${name}: ${line}`
    })
    .join("; ")
}
