/**
 * Starts the real server in-process (the same Layers as `npm start`) on a free port, with its
 * configuration given as environment variables, and a `request` that validates every response
 * against openapi.yaml. With DATABASE_URL set (CI's Postgres run) the server uses that database;
 * otherwise each server gets a fresh embedded PGlite in a temporary directory.
 */
import { PgClient } from "@effect/sql-pg"
import { ConfigProvider, Effect, Layer, ManagedRuntime, Redacted } from "effect"
import { HttpServer } from "effect/http"
import { SqlClient } from "effect/sql"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { AppLive } from "../../src/App.ts"
import { type ReceivedResponse, validateResponse } from "./contract.ts"

export interface TestResponse extends ReceivedResponse {
  readonly json: () => any
}

export interface TestServer {
  readonly url: string
  /** The Postgres database of this server, when it has one of its own (`emptyDatabase`). */
  readonly databaseUrl: string | undefined
  readonly dataDir: string
  /** fetch, then validate the response against openapi.yaml (throws on a violation). */
  readonly request: (path: string, init?: RequestInit) => Promise<TestResponse>
  /** Runs an effect in the server's runtime (its database): for what the API cannot reach. */
  readonly run: <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) => Promise<A>
  /** One statement on the server's own database, through its SqlClient. */
  readonly query: <A extends object = Record<string, unknown>>(text: string, params?: ReadonlyArray<unknown>) => Promise<ReadonlyArray<A>>
  readonly stop: () => Promise<void>
}

export const receive = async (method: string, url: string, response: Response): Promise<TestResponse> => {
  const text = await response.text()
  const received = { status: response.status, headers: response.headers, text }
  validateResponse(method, url, received)
  return { ...received, json: () => JSON.parse(text) }
}

export const testEnv = (env: Record<string, string> = {}) => {
  const dataDir = mkdtempSync(join(tmpdir(), "basalt-test-"))
  const values: Record<string, string> = {
    PORT: "0",
    HOST: "127.0.0.1",
    BASALT_DATA_DIR: dataDir,
    LOG_LEVEL: process.env.LOG_LEVEL ?? "Warning",
    // Every test signs in from 127.0.0.1, and on CI's Postgres pass all test files share one
    // database: the limits stay on (their headers are checked too) but out of reach. The
    // rate-limit tests set their own.
    BASALT_RATE_LIMIT_AUTH: "1000000/1s",
    BASALT_RATE_LIMIT_PRINCIPAL: "1000000/1s",
    ...(process.env.DATABASE_URL ? { DATABASE_URL: process.env.DATABASE_URL } : {}),
    ...env
  }
  return { dataDir, values }
}

/** The configuration `values` as the server reads it from its environment (empty values are unset). */
export const configFrom = (values: Record<string, string>) => ConfigProvider.layer(ConfigProvider.fromEnv({ env: values }))

/** Runs `f` with a client of its own (one connection) on the Postgres database at `url`, then closes it. */
export const withPostgres = <A, E>(url: string, f: (sql: PgClient.PgClient) => Effect.Effect<A, E>): Promise<A> =>
  Effect.runPromise(
    Effect.flatMap(PgClient.PgClient, f).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(url), maxConnections: 1 })))
  )

/** One statement on the Postgres database at `url`, outside any server. */
export const postgresQuery = <A extends object = Record<string, any>>(url: string, text: string, params: ReadonlyArray<unknown> = []) =>
  withPostgres(url, (sql) => sql.unsafe<A>(text, params))

let databases = 0

/** Runs one statement on the Postgres of this test run (DATABASE_URL), as its owner. */
export const postgresAdminQuery = async (text: string) => {
  await postgresQuery(process.env.DATABASE_URL!, text)
}

/** On a Postgres run, a database of its own for a test that needs an empty one; dropped on stop. */
export const freshPostgresDatabase = async () => {
  const name = `basalt_test_${process.pid}_${++databases}_${Date.now()}`
  await postgresAdminQuery(`CREATE DATABASE ${name}`)
  const url = new URL(process.env.DATABASE_URL!)
  url.pathname = `/${name}`
  return { url: url.toString(), drop: () => postgresAdminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) }
}

/** Where the HttpServer in context listens, as a loopback URL. */
export const serverUrl = Effect.gen(function* () {
  const { address } = yield* HttpServer.HttpServer
  if (address._tag === "UnixPathAddress") return yield* Effect.die(new Error("expected a TCP address"))
  return `http://127.0.0.1:${address.port}`
})

export const startServer = async (
  env: Record<string, string> = {},
  options: { readonly emptyDatabase?: boolean } = {}
): Promise<TestServer> => {
  // PGlite is fresh for every server already; on Postgres the run's database is shared.
  const database = options.emptyDatabase && process.env.DATABASE_URL ? await freshPostgresDatabase() : undefined
  const { dataDir, values } = testEnv(database ? { ...env, DATABASE_URL: database.url } : env)
  const runtime = ManagedRuntime.make(AppLive.pipe(Layer.provide(configFrom(values))))
  const url = await runtime.runPromise(serverUrl)
  const sql = await runtime.runPromise(SqlClient.SqlClient)
  return {
    url,
    databaseUrl: database?.url,
    dataDir,
    request: async (path, init) => {
      const method = init?.method ?? "GET"
      return receive(method, path, await fetch(`${url}${path}`, init))
    },
    run: (effect) => runtime.runPromise(effect),
    query: (text, params = []) => runtime.runPromise(sql.unsafe(text, params)) as Promise<ReadonlyArray<any>>,
    stop: async () => {
      await runtime.dispose()
      await database?.drop()
      rmSync(dataDir, { recursive: true, force: true })
    }
  }
}
