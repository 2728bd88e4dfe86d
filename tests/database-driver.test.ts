/**
 * The database driver (@effect/sql-pg, which speaks the Postgres protocol itself) as Basalt
 * configures it, on the embedded PGlite and, with DATABASE_URL set, on Postgres: the values
 * columns come back as (what the pg driver gave: int8 and numeric as strings, timestamptz as a
 * Date, jsonb parsed, float4 as its shortest decimal, pgvector's vectors as their text), TLS
 * verified with a CA file, PGlite reached over its socket by several clients at once, and the
 * migrations applied once when two servers start together on one PGlite.
 */
import { ConfigProvider, Effect, Exit, Layer, ManagedRuntime, Scope } from "effect"
import { SqlClient } from "effect/sql"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { TLSSocket } from "node:tls"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { AppConfigLive } from "../layers/AppConfigLive.ts"
import { DatabaseLive } from "../layers/DatabaseLive.ts"
import { servePglite } from "../layers/PgliteLive.ts"
import { DatabaseInfo } from "../src/database/Database.ts"
import { migrationCount } from "../src/database/migrations/index.ts"
import { float4Text } from "../src/database/PgTypeCodecs.ts"

/** An error's message and those of its causes, one a line. */
const causes = (error: unknown): string => {
  const messages: Array<string> = []
  for (let at: unknown = error; at instanceof Error && messages.length < 10; at = at.cause) messages.push(at.message)
  return messages.join("\n")
}

const tlsDir = new URL("./fixtures/tls/", import.meta.url).pathname

const baseEnv = (dataDir: string, env: Record<string, string>) => ({
  PORT: "0",
  HOST: "127.0.0.1",
  BASALT_DATA_DIR: dataDir,
  LOG_LEVEL: process.env.LOG_LEVEL ?? "Warning",
  ...env
})

/** DatabaseLive (what the server runs on) with the configuration `env`. */
const database = (env: Record<string, string>) => {
  const dataDir = mkdtempSync(join(tmpdir(), "basalt-driver-"))
  const runtime = ManagedRuntime.make(
    DatabaseLive.pipe(
      Layer.provide(AppConfigLive),
      Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: baseEnv(dataDir, env) })))
    )
  )
  return {
    run: <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient | DatabaseInfo>) => runtime.runPromise(effect),
    query: <A extends object>(text: string, params: ReadonlyArray<unknown> = []) =>
      runtime.runPromise(Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe<A>(text, params))),
    dispose: async () => {
      await runtime.dispose()
      rmSync(dataDir, { recursive: true, force: true })
    }
  }
}

const backends: ReadonlyArray<readonly [string, Record<string, string>]> = [
  ["embedded PGlite", {}],
  ...(process.env.DATABASE_URL ? [["Postgres", { DATABASE_URL: process.env.DATABASE_URL }] as const] : [])
]

describe.each(backends)("values read through the driver on %s", (backend, env) => {
  const db = database(env)
  afterAll(() => db.dispose())

  it("reads int8 and numeric as decimal strings, timestamptz as a Date, jsonb parsed, float4 at its shortest", async () => {
    const [row] = await db.query<Record<string, unknown>>(`
      SELECT 9007199254740993::int8 AS big, (-42)::int8 AS negative, count(*) AS counted,
             ARRAY[1, 9007199254740993]::int8[] AS bigs,
             12345678901234567890.123456789::numeric AS numeric, 1.50::numeric(6, 2) AS scaled,
             'NaN'::numeric AS nan,
             '2024-02-29 12:34:56.789+00'::timestamptz AS at,
             '{"a": [1, "x", null], "b": {"c": true}, "n": 1.5}'::jsonb AS doc,
             '[1, 2]'::json AS plain_json,
             0.1::float4 AS f4, 1e-05::float4 AS f4_small, 0.1::float8 AS f8,
             7::int4 AS i4, 3::int2 AS i2, true AS yes,
             ARRAY['a', 'b']::text[] AS texts, '01a23868-5b70-760d-aaa3-8f3f384399d0'::uuid AS id,
             NULL::int8 AS nothing
      FROM (VALUES (1), (2)) AS v(x)`)
    expect(row).toEqual({
      big: "9007199254740993",
      negative: "-42",
      counted: "2",
      bigs: ["1", "9007199254740993"],
      numeric: "12345678901234567890.123456789",
      scaled: "1.50",
      nan: "NaN",
      at: new Date("2024-02-29T12:34:56.789Z"),
      doc: { a: [1, "x", null], b: { c: true }, n: 1.5 },
      plain_json: [1, 2],
      f4: 0.1,
      f4_small: 0.00001,
      f8: 0.1,
      i4: 7,
      i2: 3,
      yes: true,
      texts: ["a", "b"],
      id: "01a23868-5b70-760d-aaa3-8f3f384399d0",
      nothing: null
    })
  })

  it("binds strings, numbers, bigints, Dates, booleans, arrays and null as parameters", async () => {
    const at = new Date("2025-06-01T08:00:00.123Z")
    const [row] = await db.query<Record<string, unknown>>(
      `SELECT $1::int8 AS from_string, $2::int8 AS from_bigint, $3::int8 AS from_large_number, $4::int AS small,
              $5::timestamptz AS at, $6::jsonb AS doc, $7::boolean AS flag, $8::text[] AS texts, $9::text AS nothing,
              $10::numeric AS numeric, $11::float8 AS fraction`,
      ["9007199254740993", 9007199254740993n, 7_212_881_001, 5, at, JSON.stringify({ k: "v" }), false, ["x", "y"], null, "0.30", 0.25]
    )
    expect(row).toEqual({
      from_string: "9007199254740993",
      from_bigint: "9007199254740993",
      from_large_number: "7212881001",
      small: 5,
      at,
      doc: { k: "v" },
      flag: false,
      texts: ["x", "y"],
      nothing: null,
      numeric: "0.30",
      fraction: 0.25
    })
  })

  it("reads pgvector's vectors as their text, digit for digit", async (context) => {
    const { pgvector } = await db.run(DatabaseInfo)
    if (backend === "embedded PGlite") expect(pgvector).toBe(true)
    if (!pgvector) return context.skip("this Postgres has no pgvector")
    // Float4s of every magnitude the text form switches notation at, and random ones.
    const fixed = [0, -0, 0.1, -2.5, 1e-5, 0.0001, 123456, 1234567, 3.4028235e38, 1.17549435e-38, 1e-45, 2 ** -20, 65504]
    let seed = 7
    const random = Array.from({ length: 2000 }, () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return Math.fround((seed / 2 ** 31 - 0.5) * 10 ** ((seed % 17) - 8))
    })
    const elements = [...fixed, ...random]
    const text = `[${elements.map((x) => float4Text(Math.fround(x))).join(",")}]`
    const [row] = await db.query<{ v: string; t: string; dims: number }>(
      "SELECT v, v::text AS t, vector_dims(v) AS dims FROM (SELECT $1::vector AS v) AS s",
      [text]
    )
    expect(row!.dims).toBe(elements.length)
    expect(row!.v).toBe(row!.t)
    expect(row!.v).toBe(text)
    const [array] = await db.query<{ vs: ReadonlyArray<string> }>("SELECT ARRAY['[1,2]'::vector, '[3.5,-4]'::vector] AS vs")
    expect(array!.vs).toEqual(["[1,2]", "[3.5,-4]"])
  })
})

/**
 * A TLS terminator in front of a Postgres wire-protocol server: it answers the client's
 * SSLRequest with "S", speaks TLS with the test certificate (signed by tests/fixtures/tls/ca.pem,
 * for 127.0.0.1 and localhost), and forwards the decrypted stream. A client that does not ask for
 * TLS is cut off.
 */
const tlsTerminator = async (upstreamPort: number): Promise<{ port: number; close: () => Promise<void> }> => {
  const key = readFileSync(join(tlsDir, "server-key.pem"))
  const cert = readFileSync(join(tlsDir, "server.pem"))
  const sockets = new Set<Socket>()
  const server: Server = createServer((socket) => {
    sockets.add(socket)
    socket.once("close", () => sockets.delete(socket))
    socket.once("data", (first) => {
      const sslRequest = first.length === 8 && first.readInt32BE(0) === 8 && first.readInt32BE(4) === 80877103
      if (!sslRequest) return socket.destroy()
      socket.write("S")
      const secure = new TLSSocket(socket, { isServer: true, key, cert })
      const upstream = createConnection({ host: "127.0.0.1", port: upstreamPort })
      sockets.add(upstream)
      secure.on("error", () => upstream.destroy())
      upstream.on("error", () => secure.destroy())
      secure.pipe(upstream).pipe(secure)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      })
  }
}

/** PGlite served on a loopback port, as another process would serve it to several servers. */
const servedDataDir = mkdtempSync(join(tmpdir(), "basalt-driver-served-"))
const served = ManagedRuntime.make(Layer.empty)
let servedPort = 0
let closeServed: () => Promise<void> = async () => {}

beforeAll(async () => {
  const scope = await served.runPromise(Scope.make())
  servedPort = (await served.runPromise(Scope.provide(servePglite(servedDataDir), scope))).port
  closeServed = () => served.runPromise(Scope.close(scope, Exit.void))
})
afterAll(async () => {
  await closeServed()
  await served.dispose()
  rmSync(servedDataDir, { recursive: true, force: true })
})

/** A URL for the server at 127.0.0.1:`port`: DATABASE_URL's user and database, or PGlite's. */
const urlAt = (port: number, base = "postgres://postgres@127.0.0.1/postgres") => {
  const url = new URL(base)
  url.hostname = "127.0.0.1"
  url.port = String(port)
  return url.toString()
}

describe("PGlite served over its socket to clients of its own (as DATABASE_URL reaches it)", () => {
  it("applies the migrations once when two servers start on it together, and both see the same database", async () => {
    const first = database({ DATABASE_URL: urlAt(servedPort) })
    const second = database({ DATABASE_URL: urlAt(servedPort) })
    try {
      const infos = await Promise.all([first.run(DatabaseInfo), second.run(DatabaseInfo)])
      expect(infos).toEqual([
        { backend: "pglite", pgvector: true },
        { backend: "pglite", pgvector: true }
      ])
      const [counts] = await first.query<{ migrations: number; instances: number }>(
        "SELECT (SELECT count(*)::int FROM basalt_migrations) AS migrations, (SELECT count(*)::int FROM basalt_instance) AS instances"
      )
      expect(counts).toEqual({ migrations: migrationCount, instances: 1 })

      // Both clients' statements interleaved on the one session, prepared ones included.
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          (i % 2 === 0 ? first : second)
            .query<{ v: string; w: string }>("SELECT $1::int8 * 2 AS v, repeat($2::text, 2) AS w", [String(i), `s${i}`])
            .then(([row]) => row!.v === String(i * 2) && row!.w === `s${i}s${i}`)
        )
      )
      expect(results.filter((ok) => !ok)).toEqual([])
    } finally {
      await Promise.all([first.dispose(), second.dispose()])
    }
  })
})

const tlsBackends: ReadonlyArray<readonly [string, () => { port: number; base: string | undefined }]> = [
  ["PGlite", () => ({ port: servedPort, base: undefined })],
  ...(process.env.DATABASE_URL
    ? [["Postgres", () => ({ port: Number(new URL(process.env.DATABASE_URL!).port || 5432), base: process.env.DATABASE_URL })] as const]
    : [])
]

describe.each(tlsBackends)("%s through TLS", (_, upstream) => {
  let terminator: { port: number; close: () => Promise<void> }
  let base: string | undefined
  beforeAll(async () => {
    const target = upstream()
    base = target.base
    terminator = await tlsTerminator(target.port)
  })
  afterAll(() => terminator.close())

  const connect = async (env: Record<string, string>) => {
    const db = database({
      DATABASE_URL: urlAt(terminator.port, base),
      DATABASE_CONNECT_TIMEOUT: "5 seconds",
      // A server that hangs up on a plaintext client looks like one restarting, which a starting
      // server would wait for (BASALT_DATABASE_WAIT).
      BASALT_DATABASE_WAIT: "0 seconds",
      ...env
    })
    try {
      const [row] = await db.query<{ ok: number }>("SELECT 1 AS ok")
      return row!.ok
    } finally {
      await db.dispose()
    }
  }

  it("connects with DATABASE_SSL=verify-full when DATABASE_SSL_CA_FILE holds the issuing CA", async () => {
    expect(await connect({ DATABASE_SSL: "verify-full", DATABASE_SSL_CA_FILE: join(tlsDir, "ca.pem") })).toBe(1)
  })

  it("refuses a certificate no known CA issued with verify-full, and accepts it with require", async () => {
    const refused = await connect({ DATABASE_SSL: "verify-full" }).then(
      () => undefined,
      (error: unknown) => error
    )
    expect(causes(refused)).toMatch(/certificate/i)
    expect(await connect({ DATABASE_SSL: "require" })).toBe(1)
  })

  it("is refused by the terminator without TLS (the client does not fall back to plaintext by itself)", async () => {
    await expect(connect({ DATABASE_SSL: "disable" })).rejects.toThrow()
  })
})
