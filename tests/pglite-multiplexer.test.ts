/**
 * The embedded database shares one PGlite session between the pool's connections. These run the
 * real PGlite layer (PGlite, the socket server, pg, SqlClient) and try to make connections step
 * on each other: interleaved extended-protocol queries, a transaction others must not see into,
 * and a connection that dies inside a transaction.
 */
import { Deferred, Effect, Fiber, Layer, ManagedRuntime } from "effect"
import { SqlClient } from "effect/sql"
import { rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { AppConfigLive } from "../layers/AppConfigLive.ts"
import { PgliteClientLive } from "../layers/PgliteLive.ts"
import { configFrom, testEnv } from "./support/server.ts"

describe("PGlite served to a pool", () => {
  const { dataDir, values } = testEnv({ DATABASE_POOL_MAX: "8" })
  const runtime = ManagedRuntime.make(PgliteClientLive.pipe(Layer.provide(AppConfigLive), Layer.provide(configFrom(values))))
  const run = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) => runtime.runPromise(effect)

  beforeAll(() => run(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`CREATE TABLE IF NOT EXISTS counter (n int)`)))
  afterAll(async () => {
    await runtime.dispose()
    rmSync(dataDir, { recursive: true, force: true })
  })

  it("keeps each connection's parse/bind/execute together under concurrency", async () => {
    const results = await run(
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const check = (i: number) =>
          i % 3 === 0
            ? Effect.map(sql<{ v: number }>`SELECT ${i}::int * 2 AS v`, (rows) => rows[0]?.v === i * 2)
            : i % 3 === 1
              ? Effect.map(sql<{ v: string }>`SELECT ${String(i)}::text || '-text' AS v`, (rows) => rows[0]?.v === `${i}-text`)
              : Effect.map(
                  sql<{ v: string }>`SELECT to_char(${i}::int, 'FM0000') AS v, ${i}::int AS w`,
                  (rows) => rows[0]?.v === String(i).padStart(4, "0")
                )
        // Short transactions on other connections meanwhile, as real traffic has.
        const transactions = Effect.forEach(
          Array.from({ length: 40 }, (_, i) => i),
          (i) => sql.withTransaction(Effect.andThen(sql`INSERT INTO counter VALUES (${i})`, check(i))),
          { concurrency: 4 }
        )
        const [plain, transactional] = yield* Effect.all(
          [
            Effect.forEach(
              Array.from({ length: 300 }, (_, i) => i),
              check,
              { concurrency: 32 }
            ),
            transactions
          ],
          { concurrency: 2 }
        )
        return [...plain, ...transactional]
      })
    )
    expect(results.filter((ok) => !ok)).toEqual([])
  })

  it("lets no other connection run inside an open transaction", async () => {
    const seen = await run(
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* sql`DELETE FROM counter`
        // Forked outside the transaction (a fiber forked inside would share its connection), and
        // released once the transaction has written its first row.
        const inTransaction = yield* Deferred.make<void>()
        const reader = yield* Deferred.await(inTransaction).pipe(
          Effect.andThen(sql<{ n: string }>`SELECT count(*)::text AS n FROM counter`),
          Effect.map((rows) => Number(rows[0]!.n)),
          Effect.forkChild
        )
        yield* sql.withTransaction(
          Effect.gen(function* () {
            yield* sql`INSERT INTO counter VALUES (1)`
            yield* Deferred.succeed(inTransaction, undefined)
            yield* Effect.sleep("50 millis")
            yield* sql`INSERT INTO counter VALUES (2)`
          })
        )
        return yield* Fiber.join(reader)
      })
    )
    // The other connection's read waits for the commit and sees both rows, never one.
    expect(seen).toBe(2)
  })

  it("rolls back the transaction of a connection that goes away, and carries on", async () => {
    const count = await run(
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* sql`DELETE FROM counter`
        // A transaction that fails midway is rolled back by the client...
        yield* sql
          .withTransaction(Effect.andThen(sql`INSERT INTO counter VALUES (1)`, Effect.fail("abandoned" as const)))
          .pipe(Effect.ignore)
        const rows = yield* sql<{ n: string }>`SELECT count(*)::text AS n FROM counter`
        return Number(rows[0]!.n)
      })
    )
    expect(count).toBe(0)
  })

  it("runs its statements in a thread of their own: a long statement leaves the server's event loop free", async () => {
    // A timer every 10 ms while a half-second statement runs: in the server's thread, the
    // statement would hold every tick back until it ended.
    const ticks = await run(
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        let count = 0
        const timer = setInterval(() => count++, 10)
        yield* sql`SELECT pg_sleep(0.5)`.pipe(Effect.ensuring(Effect.sync(() => clearInterval(timer))))
        return count
      })
    )
    expect(ticks).toBeGreaterThanOrEqual(10)
  })
})

describe("PGlite that cannot open its data directory", () => {
  it("fails the start with the reason instead of waiting for the thread", async () => {
    const { dataDir, values } = testEnv()
    const blocker = join(dataDir, "not-a-directory")
    writeFileSync(blocker, "")
    const runtime = ManagedRuntime.make(
      PgliteClientLive.pipe(Layer.provide(AppConfigLive), Layer.provide(configFrom({ ...values, BASALT_DATA_DIR: blocker })))
    )
    try {
      await expect(runtime.runPromise(SqlClient.SqlClient)).rejects.toThrow(/ENOTDIR|not a directory|EEXIST/)
    } finally {
      await runtime.dispose()
      rmSync(dataDir, { recursive: true, force: true })
    }
  })
})
