/**
 * The real server for the search tests, plus its database handle (the same pool: Layers are
 * shared within one build), so that a test can write documents and chunks straight into the
 * tables (cut by the real chunker, embedded by the built-in model where pgvector is) and search
 * them through the API. On a Postgres run each server gets a database of its own.
 */
import { Effect, Layer, ManagedRuntime } from "effect"
import { SqlClient } from "effect/sql"
import { rmSync } from "node:fs"
import { AppConfigLive } from "../../layers/AppConfigLive.ts"
import { DatabaseLive } from "../../layers/DatabaseLive.ts"
import { AppLive } from "../../src/App.ts"
import { DatabaseInfo } from "../../src/database/Database.ts"
import { configFrom, freshPostgresDatabase, receive, serverUrl, type TestResponse, testEnv } from "./server.ts"

export interface SearchServer {
  readonly request: (path: string, init?: RequestInit) => Promise<TestResponse>
  readonly sql: <A>(f: (sql: SqlClient.SqlClient) => Effect.Effect<A, unknown>) => Promise<A>
  readonly pgvector: boolean
  readonly stop: () => Promise<void>
}

export const startSearchServer = async (env: Record<string, string> = {}): Promise<SearchServer> => {
  const database = process.env.DATABASE_URL ? await freshPostgresDatabase() : undefined
  const { dataDir, values } = testEnv({ BASALT_ALLOW_SIGNUP: "true", ...env, ...(database ? { DATABASE_URL: database.url } : {}) })
  const runtime = ManagedRuntime.make(
    Layer.merge(AppLive, DatabaseLive.pipe(Layer.provide(AppConfigLive))).pipe(Layer.provide(configFrom(values)))
  )
  const url = await runtime.runPromise(serverUrl)
  const { pgvector } = await runtime.runPromise(DatabaseInfo)
  return {
    request: async (path, init) => receive(init?.method ?? "GET", path, await fetch(`${url}${path}`, init)),
    sql: (f) => runtime.runPromise(Effect.flatMap(SqlClient.SqlClient, f)),
    pgvector,
    stop: async () => {
      await runtime.dispose()
      await database?.drop()
      rmSync(dataDir, { recursive: true, force: true })
    }
  }
}

/** Registers `name` (the first account of a server is its admin) and signs in: its token and id. */
export const signUp = async (server: SearchServer, name: string) => {
  const credentials = { email: `${name}@example.com`, password: `${name} password long` }
  const json = { "content-type": "application/json" }
  await server.request("/api/v1/auth/register", {
    method: "POST",
    headers: json,
    body: JSON.stringify({ ...credentials, display_name: name })
  })
  const login = await server.request("/api/v1/auth/login", { method: "POST", headers: json, body: JSON.stringify(credentials) })
  return { token: login.json().access_token as string, id: login.json().user.id as string }
}
