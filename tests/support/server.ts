/**
 * Starts the real server in-process (the same Layers as `npm start`) on a free port, with its
 * configuration given as environment variables, and a `request` that validates every response
 * against openapi.yaml. With DATABASE_URL set (CI's Postgres run) the server uses that database;
 * otherwise each server gets a fresh embedded PGlite in a temporary directory.
 */
import { HttpServer } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { ConfigProvider, Effect, Layer, ManagedRuntime } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import pg from "pg"
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

let databases = 0

/** Runs one statement on the Postgres of this test run (DATABASE_URL), as its owner. */
export const postgresAdminQuery = async (text: string) => {
  const client = new pg.Client({ connectionString: process.env.DATABASE_URL })
  await client.connect()
  try {
    await client.query(text)
  } finally {
    await client.end()
  }
}

/** On a Postgres run, a database of its own for a test that needs an empty one; dropped on stop. */
export const freshPostgresDatabase = async () => {
  const name = `basalt_test_${process.pid}_${++databases}_${Date.now()}`
  await postgresAdminQuery(`CREATE DATABASE ${name}`)
  const url = new URL(process.env.DATABASE_URL!)
  url.pathname = `/${name}`
  return { url: url.toString(), drop: () => postgresAdminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) }
}

export const startServer = async (
  env: Record<string, string> = {},
  options: { readonly emptyDatabase?: boolean } = {}
): Promise<TestServer> => {
  // PGlite is fresh for every server already; on Postgres the run's database is shared.
  const database = options.emptyDatabase && process.env.DATABASE_URL ? await freshPostgresDatabase() : undefined
  const { dataDir, values } = testEnv(database ? { ...env, DATABASE_URL: database.url } : env)
  const provider = Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(values))))
  const runtime = ManagedRuntime.make(AppLive.pipe(Layer.provide(provider)))
  const address = await runtime.runPromise(Effect.map(HttpServer.HttpServer, (server) => server.address))
  if (address._tag !== "TcpAddress") throw new Error("expected a TCP address")
  const url = `http://127.0.0.1:${address.port}`
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
