/**
 * Search latency at 100,000 chunks: p50 / p95 / p99 per mode at 1 and 16 concurrent clients,
 * on PGlite and (when DATABASE_URL is set) on that Postgres, in a database of its own.
 *
 * The chunks are written straight into the tables (20,000 documents of 5 chunks, ~250 words
 * each), their words drawn from the four test collections' vocabulary with its real frequencies
 * (Zipf-like, technical English), so that posting lists have realistic lengths. A tenth of the
 * documents is public, a tenth is the searching user's, a tenth is in a collection they belong
 * to: the visibility condition does real work. Queries: 3 to 6 words cut from the collections'
 * queries. Measured in-process through Retrieval's ranking (SearchRepo's SQL, the query embedding,
 * hybrid's fusion; not the results' details, and HTTP excluded: `npm run bench:http` measures that
 * layer), against a baseline measured in the same run: a primary-key lookup of one chunk.
 *
 *   npm run bench:search
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm run bench:search
 *   BENCH_CHUNKS=20000 BENCH_QUERIES=200 BENCH_BACKENDS=postgres npm run bench:search
 *
 * BENCH_KEEP_DATABASE=1 keeps the Postgres database (its name is printed) for EXPLAIN ANALYZE;
 * BENCH_REUSE_DATABASE=<that name> measures on it again without loading (migrations still run;
 * a database whose load was interrupted is measured at the size it reached).
 */
import { Array as Arr, ConfigProvider, Effect, Layer, ManagedRuntime } from "effect"
import { SqlClient } from "effect/sql"
import { mkdtempSync, rmSync } from "node:fs"
import { cpus, tmpdir } from "node:os"
import { join } from "node:path"
import { AppConfigLive } from "../layers/AppConfigLive.ts"
import { DatabaseLive } from "../layers/DatabaseLive.ts"
import { LocalEmbedderLive } from "../layers/LocalEmbedderLive.ts"
import type { Caller } from "../src/accounts/SessionsRepo.ts"
import { DatabaseInfo } from "../src/database/Database.ts"
import { timeOrderedUuid } from "../src/database/TimeOrderedUuid.ts"
import { Embedder } from "../src/embedding/Embedder.ts"
import { Retrieval } from "../src/search/Retrieval.ts"
import type { SearchMode } from "../src/search/Search.ts"
import { foldSearchStatistics } from "../src/search/SearchStatistics.ts"
import { serverCpu } from "./DatabaseCpu.ts"
import { postgresStatements } from "./Postgres.ts"
import { loadCollection } from "./RetrievalCollection.ts"

const chunkCount = Number(process.env["BENCH_CHUNKS"] ?? 100_000)
const queriesPerRun = Number(process.env["BENCH_QUERIES"] ?? 400)
const backends = (process.env["BENCH_BACKENDS"] ?? "pglite,postgres").split(",").map((name) => name.trim())
const chunksPerDocument = 5
const wordsPerChunk = 250

// A deterministic generator, so that both backends get the same corpus.
let seed = 42
const random = () => {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0
  return seed / 2 ** 32
}

const collections = ["cranfield", "cisi", "cacm", "med"].map(loadCollection)
const vocabulary = (() => {
  const counts = new Map<string, number>()
  for (const collection of collections) {
    for (const document of collection.corpus) {
      for (const word of `${document.title} ${document.text}`.toLowerCase().match(/[a-z][a-z-]+/g) ?? []) {
        counts.set(word, (counts.get(word) ?? 0) + 1)
      }
    }
  }
  const words = [...counts.entries()].sort((a, b) => b[1] - a[1])
  const cumulative: Array<number> = []
  let sum = 0
  for (const [, count] of words) {
    sum += count
    cumulative.push(sum)
  }
  return { words: words.map(([word]) => word), cumulative, sum }
})()
const randomWord = () => {
  const target = random() * vocabulary.sum
  let low = 0
  let high = vocabulary.cumulative.length - 1
  while (low < high) {
    const middle = (low + high) >> 1
    if (vocabulary.cumulative[middle]! < target) low = middle + 1
    else high = middle
  }
  return vocabulary.words[low]!
}
const sentence = (words: number) => Array.from({ length: words }, randomWord).join(" ")

const queries = collections
  .flatMap((collection) => collection.queries.map((query) => query.text))
  .map((text) => {
    const words = text.split(/\s+/).filter((word) => word.length > 2)
    return words.slice(0, 3 + Math.floor(random() * 4)).join(" ")
  })
  .filter((text) => text.length > 0)

const percentile = (sorted: ReadonlyArray<number>, p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!

/** The searching user (`bench0@example.com`, basic role) as search sees a caller. */
const searcherCaller = (id: string): Caller => ({
  id,
  email: "bench0@example.com",
  display_name: "bench 0",
  role: "basic",
  active: true,
  created_at: new Date(),
  session_id: null
})

const populate = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const { pgvector } = yield* DatabaseInfo
  const embedder = yield* Embedder
  const users = yield* sql<{ id: string }>`
    INSERT INTO users (email, display_name, role)
    SELECT 'bench' || i || '@example.com', 'bench ' || i, 'basic' FROM generate_series(0, 9) AS i RETURNING id`
  const searcher = users[0]!.id
  const [collection] = yield* sql<{ id: string }>`INSERT INTO collections (name, owner_id) VALUES ('bench', ${users[1]!.id}) RETURNING id`
  yield* sql`INSERT INTO collection_members (collection_id, user_id, role) VALUES (${collection!.id}, ${users[1]!.id}, 'owner'), (${collection!.id}, ${searcher}, 'viewer')`
  const documentCount = Math.ceil(chunkCount / chunksPerDocument)
  const sources = ["confluence", "slack", "web", "google_drive", "api"]
  const started = performance.now()
  for (let start = 0; start < documentCount; start += 200) {
    const rows = Arr.makeBy(Math.min(200, documentCount - start), (i) => {
      const n = start + i
      return {
        id: timeOrderedUuid(),
        owner_id: users[n % 10]!.id,
        source: sources[n % sources.length]!,
        title: sentence(6),
        content: "-",
        content_hash: "-",
        tags: `{t${n % 20}}`,
        visibility: n % 10 === 3 ? "public" : "private",
        status: "indexed"
      }
    })
    const documents = yield* sql<{ id: string }>`INSERT INTO documents ${sql.insert(rows)} RETURNING id`
    const inCollection = documents
      .filter((_, i) => (start + i) % 10 === 1)
      .map((document) => ({ document_id: document.id, collection_id: collection!.id }))
    if (Arr.isArrayNonEmpty(inCollection)) {
      yield* sql`INSERT INTO document_collections ${sql.insert(inCollection)}`
    }
    if (!Arr.isReadonlyArrayNonEmpty(documents)) throw new Error("INSERT INTO documents returned no rows")
    const chunks = Arr.flatMap(documents, (document) =>
      Arr.makeBy(chunksPerDocument, (ordinal) => {
        const text = sentence(wordsPerChunk)
        return {
          // As indexing writes them (see IndexingRepo).
          id: timeOrderedUuid(),
          document_id: document.id,
          ordinal,
          content: text,
          contextual_content: text,
          start_offset: 0,
          end_offset: text.length,
          token_count: wordsPerChunk
        }
      })
    )
    const inserted = yield* sql<{ id: string; contextual_content: string }>`
      INSERT INTO chunks ${sql.insert(chunks)} RETURNING id, contextual_content`
    if (pgvector && Arr.isReadonlyArrayNonEmpty(inserted)) {
      const vectors = yield* embedder.embed(inserted.map((chunk) => chunk.contextual_content))
      yield* sql`INSERT INTO chunk_embeddings ${sql.insert(
        Arr.map(inserted, (chunk, i) => ({
          chunk_id: chunk.id,
          model: embedder.model,
          embedding: `[${Array.from(vectors[i]!, (x) => x.toFixed(5)).join(",")}]`
        }))
      )}`
    }
    if ((start / 200) % 20 === 0) {
      process.stdout.write(`  ${start * chunksPerDocument} chunks (${Math.round((performance.now() - started) / 1000)} s)\n`)
    }
  }
  if (pgvector) {
    const indexStarted = performance.now()
    yield* sql.unsafe(`CREATE INDEX chunk_embeddings_bench_hnsw ON chunk_embeddings
      USING hnsw ((embedding::vector(${embedder.dimensions})) vector_cosine_ops) WHERE model = '${embedder.model}'`)
    process.stdout.write(`  HNSW index built in ${Math.round((performance.now() - indexStarted) / 1000)} s\n`)
  }
  yield* foldSearchStatistics
  yield* sql`VACUUM ANALYZE`
  const [{ id: anyChunk }] = (yield* sql<{ id: string }>`SELECT id FROM chunks LIMIT 1`) as unknown as [{ id: string }]
  process.stdout.write(`  ${chunkCount} chunks ready in ${Math.round((performance.now() - started) / 1000)} s\n`)
  return { caller: searcherCaller(searcher), anyChunk, pgvector }
})

/** A database kept by an earlier run: its searcher and a chunk, nothing loaded. */
const reuse = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const { pgvector } = yield* DatabaseInfo
  const [user] = yield* sql<{ id: string }>`SELECT id FROM users WHERE email = 'bench0@example.com'`
  const [chunk] = yield* sql<{ id: string }>`SELECT id FROM chunks LIMIT 1`
  const [{ chunks }] = (yield* sql<{ chunks: string }>`SELECT count(*) AS chunks FROM chunks`) as unknown as [{ chunks: string }]
  process.stdout.write(`  reusing ${chunks} chunks\n`)
  // A run stopped while loading left its statistics unfolded.
  yield* foldSearchStatistics
  yield* sql`VACUUM ANALYZE`
  return { caller: searcherCaller(user!.id), anyChunk: chunk!.id, pgvector }
})

const measure = async (run: (query: string) => Promise<unknown>, clients: number, cpu: () => Promise<number | undefined>) => {
  const latencies: Array<number> = []
  let next = 0
  // Warmed up at the measured concurrency: each pooled connection plans the statements it runs
  // once (keyword search's function keeps its plan per connection), which is start-up, not load.
  await Promise.all(
    Array.from({ length: clients }, (_, client) =>
      (async () => {
        for (let i = 0; i < 5; i++) await run(queries[(client * 5 + i) % queries.length]!)
      })()
    )
  )
  const cpuBefore = await cpu()
  const ownBefore = process.cpuUsage()
  const client = async () => {
    while (next < queriesPerRun) {
      const query = queries[next++ % queries.length]!
      const t0 = performance.now()
      await run(query)
      latencies.push(performance.now() - t0)
    }
  }
  await Promise.all(Array.from({ length: clients }, client))
  const own = process.cpuUsage(ownBefore)
  const cpuAfter = await cpu()
  latencies.sort((a, b) => a - b)
  const cpuPerQuery = cpuBefore === undefined || cpuAfter === undefined ? undefined : (cpuAfter - cpuBefore) / latencies.length
  // This process's CPU (SearchRepo, Effect, the driver; PGlite too when it is the backend).
  const benchCpuPerQuery = (own.user + own.system) / 1000 / latencies.length
  return {
    p50: percentile(latencies, 0.5),
    p95: percentile(latencies, 0.95),
    p99: percentile(latencies, 0.99),
    cpuPerQuery,
    benchCpuPerQuery
  }
}

const runBackend = async (backend: string) => {
  const dataDir = mkdtempSync(join(tmpdir(), "basalt-bench-search-"))
  let drop = async () => {}
  // Postgres on this machine: whose server processes' CPU to count.
  let admin: string | undefined
  let databaseName = ""
  const env = new Map([
    ["BASALT_DATA_DIR", dataDir],
    ["LOG_LEVEL", "Warning"],
    ["DATABASE_POOL_MAX", "20"]
  ])
  if (backend === "postgres") {
    admin = process.env["DATABASE_URL"]!
    const reused = process.env["BENCH_REUSE_DATABASE"]
    const name = reused ?? `basalt_bench_search_${process.pid}`
    databaseName = name
    const query = async (text: string) => {
      await postgresStatements(admin!, text)
    }
    if (reused === undefined) await query(`CREATE DATABASE ${name}`)
    drop =
      process.env["BENCH_KEEP_DATABASE"] === "1" || reused !== undefined
        ? async () => {
            process.stdout.write(`  kept database ${name}\n`)
          }
        : () => query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    const url = new URL(admin)
    url.pathname = `/${name}`
    env.set("DATABASE_URL", url.toString())
  }
  const layer = Retrieval.layer.pipe(
    Layer.provideMerge(LocalEmbedderLive),
    Layer.provideMerge(DatabaseLive),
    Layer.provide(AppConfigLive),
    Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: Object.fromEntries(env) })))
  )
  const runtime = ManagedRuntime.make(layer)
  try {
    process.stdout.write(`\n${backend}: populating\n`)
    seed = 42
    const reusing = backend === "postgres" && process.env["BENCH_REUSE_DATABASE"] !== undefined
    const { anyChunk, caller, pgvector } = await runtime.runPromise(reusing ? reuse : populate)
    const retrieval = await runtime.runPromise(Effect.service(Retrieval))
    const sql = await runtime.runPromise(Effect.service(SqlClient.SqlClient))
    const search = (mode: SearchMode) => (query: string) => retrieval.rank(caller, { query, mode, limit: 10 })
    const operations: Array<[string, (query: string) => Effect.Effect<unknown, unknown>]> = [
      ["baseline: chunk by primary key", () => sql`SELECT id, content FROM chunks WHERE id = ${anyChunk}`],
      ["keyword", search("keyword")]
    ]
    if (pgvector) {
      operations.push(["semantic", search("semantic")])
      operations.push(["hybrid", search("hybrid")])
    }
    const lines: Array<string> = []
    let baselineP50 = 1
    for (const [name, operation] of operations) {
      for (const clients of [1, 16]) {
        const figures = await measure(
          (query) => runtime.runPromise(operation(query)),
          clients,
          () => serverCpu(admin, databaseName)
        )
        if (name.startsWith("baseline") && clients === 1) baselineP50 = figures.p50
        lines.push(
          `| ${backend} | ${name} | ${clients} | ${figures.p50.toFixed(2)} | ${figures.p95.toFixed(2)} | ${figures.p99.toFixed(2)} | ${(
            figures.p50 / baselineP50
          ).toFixed(
            1
          )}× | ${figures.cpuPerQuery === undefined ? "–" : figures.cpuPerQuery.toFixed(2)} | ${figures.benchCpuPerQuery.toFixed(2)} |`
        )
        process.stdout.write(`${lines[lines.length - 1]}\n`)
      }
    }
    return lines
  } finally {
    await runtime.dispose()
    await drop()
    rmSync(dataDir, { recursive: true, force: true })
  }
}

const main = async () => {
  process.stdout.write(`${chunkCount} chunks, ${queriesPerRun} queries per run, ${cpus().length} cores (${cpus()[0]?.model})\n`)
  const lines: Array<string> = []
  for (const backend of backends) {
    if (backend === "postgres" && !process.env["DATABASE_URL"]) {
      process.stdout.write("postgres: skipped (DATABASE_URL not set)\n")
      continue
    }
    lines.push(...(await runBackend(backend)))
  }
  process.stdout.write(
    `\n| backend | operation | clients | p50 ms | p95 ms | p99 ms | p50 vs baseline | server CPU ms/query | bench process CPU ms/query |\n|---|---|---|---|---|---|---|---|---|\n`
  )
  process.stdout.write(`${lines.join("\n")}\n`)
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`)
    process.exit(1)
  }
)
