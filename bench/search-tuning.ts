/**
 * Tunes and checks the ranking without the HTTP API: loads each test collection straight into
 * `documents` / `chunks` (cut by the real chunker; embedded by the local embedder where pgvector
 * is), then runs every judged query through SearchRepo's SQL and prints nDCG@10 and Recall@100
 * beside the plain BM25 reference. `npm run eval:retrieval` measures the same through the API.
 * A search's ranking does not depend on the page, so nDCG@10 here (of a page of 100) is also
 * what a first page of ten gets.
 *
 *   node --import tsx bench/search-tuning.ts [collection ...]             (PGlite in a temp dir)
 *   DATABASE_URL=postgres://… node --import tsx bench/search-tuning.ts     (an empty database)
 *   TUNE_K1=0.6,0.9,1.2 TUNE_B=0.3,0.5,0.75 node --import tsx bench/search-tuning.ts cranfield
 *   TUNE_EXACT=1 …     every candidate scored in full (no pruning): the parameters' own effect
 *   TUNE_DEPTH=50,100 TUNE_POOL=200 TUNE_RESCORED=20,50 …   keyword's pruning (SearchRepo's constants)
 *   TUNE_FLOOR=0,0.15,0.2 …   semantic's floor (the embedder's by default), semantic and hybrid
 *
 * With more than one (k1, b) and more than one collection it ends with leave-one-collection-out:
 * for each collection, the (k1, b) with the best mean nDCG@10 on the others, and how it does on
 * the one left out, beside the standard defaults (k1 1.2, b 0.75 and 0.9, 0.4).
 *
 * Each collection replaces the previous one (its statistics are the corpus's own).
 */
import { Array as Arr, ConfigProvider, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { AppConfigLive } from "../layers/AppConfigLive.ts"
import { DatabaseLive } from "../layers/DatabaseLive.ts"
import type { Caller } from "../src/accounts/SessionsRepo.ts"
import { DatabaseInfo } from "../src/database/Database.ts"
import { makeHashEmbedding } from "../src/embedding/HashEmbedding.ts"
import { chunkDocument } from "../src/indexing/Chunker.ts"
import { fuseRankings } from "../src/search/Fusion.ts"
import { hashEmbeddingMinimumSimilarity } from "../src/embedding/HashEmbedding.ts"
import { type Bm25Parameters, defaultBm25 } from "../src/search/KeywordRanking.ts"
import { foldSearchStatistics } from "../src/search/SearchStatistics.ts"
import { SearchRepo } from "../src/search/SearchRepo.ts"
import { bm25Reference, evaluate, loadCollection, ndcgAt10, type RetrievalCollection } from "./RetrievalCollection.ts"

const numbers = (name: string) =>
  process.env[name]
    ?.split(",")
    .map((text) => Number(text.trim()))
    .filter((n) => Number.isFinite(n))

const names = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ["cranfield", "cisi", "cacm", "med"]
const k1s = numbers("TUNE_K1") ?? [defaultBm25.k1]
const bs = numbers("TUNE_B") ?? [defaultBm25.b]
const exact = process.env.TUNE_EXACT === "1"
const candidateDepths: ReadonlyArray<number | undefined> = numbers("TUNE_DEPTH") ?? [exact ? 100_000 : undefined]
const candidatePools: ReadonlyArray<number | undefined> = numbers("TUNE_POOL") ?? [undefined]
const rescoredCounts: ReadonlyArray<number | undefined> = numbers("TUNE_RESCORED") ?? [exact ? 100_000 : undefined]
const floors = numbers("TUNE_FLOOR") ?? [hashEmbeddingMinimumSimilarity]
const depth = 100
const standardDefaults: ReadonlyArray<Bm25Parameters> = [
  { k1: 1.2, b: 0.75 },
  { k1: 0.9, b: 0.4 }
]
/** 200 queries of 1 to 4 words of 4 to 9 random letters (fixed seed): related to nothing. */
const randomLetterQueries = (() => {
  let seed = 12_345
  const random = () => {
    seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0
    return seed / 2 ** 32
  }
  const word = () =>
    Array.from({ length: 4 + Math.floor(random() * 6) }, () => String.fromCharCode(97 + Math.floor(random() * 26))).join("")
  return Array.from({ length: 200 }, () => Array.from({ length: 1 + Math.floor(random() * 4) }, word).join(" "))
})()

/** collection → `k1/b` → each judged query's nDCG@10 (of the first pruning setting), for leave-one-collection-out. */
const ndcgByParameters = new Map<string, Map<string, ReadonlyArray<number>>>()
const key = ({ b, k1 }: Bm25Parameters) => `${k1}/${b}`

const load = (collection: RetrievalCollection, pgvector: boolean) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`TRUNCATE documents, search_postings, search_lexeme_stats, search_lexeme_deltas, search_corpus_deltas CASCADE`
    yield* sql`UPDATE search_corpus_stats SET chunk_count = 0, term_count = 0`
    yield* sql`DELETE FROM users WHERE email = 'tuning@basalt.invalid'`
    const [owner] = yield* sql<{ id: string }>`
      INSERT INTO users (email, display_name, role) VALUES ('tuning@basalt.invalid', 'tuning', 'basic') RETURNING id`
    const embedding = makeHashEmbedding()
    const externalIdOf = new Map<string, string>()
    for (let start = 0; start < collection.corpus.length; start += 200) {
      const batch = collection.corpus.slice(start, start + 200)
      if (!Arr.isArrayNonEmpty(batch)) continue
      const documents = yield* sql<{ id: string; external_id: string }>`
        INSERT INTO documents ${sql.insert(
          Arr.map(batch, (document) => ({
            owner_id: owner!.id,
            source: "api",
            external_id: document._id,
            title: document.title,
            content: document.text,
            content_hash: "-",
            status: "indexed"
          }))
        )} RETURNING id, external_id`
      const idOf = new Map(documents.map((row) => [row.external_id, row.id]))
      for (const row of documents) externalIdOf.set(row.id, row.external_id)
      const chunks = batch.flatMap((document) =>
        chunkDocument({ title: document.title, text: document.text }).map((chunk) => ({
          document_id: idOf.get(document._id)!,
          ordinal: chunk.ordinal,
          content: chunk.text,
          contextual_content: chunk.contextualText,
          heading_path: `{${chunk.headingPath.map((part) => JSON.stringify(part)).join(",")}}`,
          start_offset: chunk.start,
          end_offset: chunk.end,
          token_count: chunk.tokenCount
        }))
      )
      if (!Arr.isArrayNonEmpty(chunks)) continue
      const inserted = yield* sql<{ id: string; contextual_content: string }>`
        INSERT INTO chunks ${sql.insert(chunks)} RETURNING id, contextual_content`
      if (pgvector && Arr.isReadonlyArrayNonEmpty(inserted)) {
        yield* sql`INSERT INTO chunk_embeddings ${sql.insert(
          Arr.map(inserted, (chunk) => ({
            chunk_id: chunk.id,
            model: embedding.model,
            embedding: `[${Array.from(embedding.embed(chunk.contextual_content)).join(",")}]`
          }))
        )}`
      }
    }
    if (pgvector) {
      yield* sql.unsafe(`CREATE INDEX IF NOT EXISTS chunk_embeddings_hnsw_tuning ON chunk_embeddings
        USING hnsw ((embedding::vector(${embedding.dimensions})) vector_cosine_ops) WHERE model = '${embedding.model}'`)
    }
    yield* foldSearchStatistics
    yield* sql`ANALYZE chunks`
    return {
      caller: {
        id: owner!.id,
        email: "tuning@basalt.invalid",
        display_name: "tuning",
        role: "basic",
        active: true,
        created_at: new Date(),
        session_id: null
      } satisfies Caller,
      embedding,
      externalIdOf
    }
  })

const program = Effect.gen(function* () {
  const repo = yield* SearchRepo
  const { pgvector, backend } = yield* DatabaseInfo
  process.stdout.write(`backend ${backend}, pgvector ${pgvector}\n`)
  for (const name of names) {
    const collection = loadCollection(name)
    const started = Date.now()
    const { caller, embedding, externalIdOf } = yield* load(collection, pgvector)
    process.stdout.write(`\n${collection.name}: ${collection.corpus.length} documents loaded in ${Date.now() - started} ms\n`)
    const reference = bm25Reference[collection.name]
    if (reference)
      process.stdout.write(`  BM25 reference            nDCG@10 ${reference.ndcg10.toFixed(4)}  R@100 ${reference.recall100.toFixed(4)}\n`)
    const keywordRuns = new Map<string, Map<string, ReadonlyArray<string>>>()
    const byParameters = new Map<string, ReadonlyArray<number>>()
    ndcgByParameters.set(collection.name, byParameters)
    for (const k1 of k1s) {
      for (const b of bs) {
        for (const candidateDepth of candidateDepths) {
          for (const pool of candidatePools) {
            for (const rescored of rescoredCounts) {
              const bm25: Bm25Parameters = { k1, b }
              const rankings = new Map<string, ReadonlyArray<string>>()
              const t0 = Date.now()
              for (const query of collection.queries) {
                const { hits } = yield* repo.keyword({
                  caller,
                  query: query.text,
                  filters: {},
                  limit: depth,
                  offset: 0,
                  bm25,
                  ...(candidateDepth === undefined ? {} : { depth: candidateDepth }),
                  ...(pool === undefined ? {} : { pool }),
                  ...(rescored === undefined ? {} : { rescored })
                })
                rankings.set(
                  query._id,
                  hits.map((hit) => externalIdOf.get(hit.document_id)!)
                )
              }
              if (!keywordRuns.has(key(bm25))) keywordRuns.set(key(bm25), rankings)
              const { ndcg10, recall100 } = evaluate(collection, rankings)
              if (!byParameters.has(key(bm25))) {
                byParameters.set(
                  key(bm25),
                  collection.queries.map((query) => ndcgAt10(rankings.get(query._id) ?? [], collection.qrels.get(query._id)!))
                )
              }
              process.stdout.write(
                `  keyword k1=${k1.toFixed(2)} b=${b.toFixed(2)}${candidateDepth === undefined ? "" : ` depth=${candidateDepth}`}` +
                  `${pool === undefined ? "" : ` pool=${pool}`}${rescored === undefined ? "" : ` rescored=${rescored}`}` +
                  `  nDCG@10 ${ndcg10.toFixed(4)}  R@100 ${recall100.toFixed(4)}` +
                  `  (${((Date.now() - t0) / collection.queries.length).toFixed(1)} ms/query)\n`
              )
            }
          }
        }
      }
    }
    if (!pgvector) continue
    const keyword = keywordRuns.get(key({ k1: k1s[0]!, b: bs[0]! }))!
    for (const minimumSimilarity of floors) {
      const semanticSearch = (text: string, limit: number) =>
        repo.semantic({
          caller,
          vector: embedding.embed(text),
          model: embedding.model,
          dimensions: embedding.dimensions,
          minimumSimilarity,
          filters: {},
          limit,
          offset: 0
        })
      const semantic = new Map<string, ReadonlyArray<string>>()
      for (const query of collection.queries) {
        const { hits } = yield* semanticSearch(query.text, depth)
        semantic.set(
          query._id,
          hits.map((hit) => externalIdOf.get(hit.document_id)!)
        )
      }
      let answered = 0
      for (const text of randomLetterQueries) if ((yield* semanticSearch(text, 1)).hits.length > 0) answered++
      const s = evaluate(collection, semantic)
      process.stdout.write(
        `  semantic floor=${minimumSimilarity}      nDCG@10 ${s.ndcg10.toFixed(4)}  R@100 ${s.recall100.toFixed(4)}` +
          `  (${answered} of ${randomLetterQueries.length} random-letter queries found something)\n`
      )
      for (const weights of [
        { keyword: 1, semantic: 1 },
        { keyword: 1, semantic: 0.5 },
        { keyword: 1, semantic: 0.25 }
      ]) {
        const hybrid = new Map<string, ReadonlyArray<string>>()
        for (const query of collection.queries) {
          hybrid.set(
            query._id,
            fuseRankings([
              { ids: keyword.get(query._id)!, weight: weights.keyword },
              { ids: semantic.get(query._id)!, weight: weights.semantic }
            ]).map((fused) => fused.id)
          )
        }
        const h = evaluate(collection, hybrid)
        process.stdout.write(
          `  hybrid ${weights.keyword}/${weights.semantic} floor=${minimumSimilarity}  nDCG@10 ${h.ndcg10.toFixed(4)}  R@100 ${h.recall100.toFixed(4)}\n`
        )
      }
    }
  }
  if (ndcgByParameters.size > 1 && k1s.length * bs.length > 1) printLeaveOneCollectionOut()
})

const mean = (values: ReadonlyArray<number>) => values.reduce((sum, value) => sum + value, 0) / values.length

const perQuery = (name: string, parameters: string) => ndcgByParameters.get(name)!.get(parameters)!

/** The mean of the collections' nDCG@10 (each collection counts once) of `parameters` over `collections`. */
const meanNdcg = (collections: ReadonlyArray<string>, parameters: string) =>
  mean(collections.map((name) => mean(perQuery(name, parameters))))

/** The grid point with the best mean nDCG@10 over `collections`; ties go to the first in the grid. */
const bestOn = (collections: ReadonlyArray<string>) => {
  let best = ""
  for (const parameters of ndcgByParameters.get(collections[0]!)!.keys()) {
    if (best === "" || meanNdcg(collections, parameters) > meanNdcg(collections, best)) best = parameters
  }
  return best
}

/**
 * Two-sided paired sign-flip randomisation test of the mean of `differences` (per query): how
 * often flipping the signs at random gives a mean at least as far from 0. Fixed seed.
 */
const pairedPValue = (differences: ReadonlyArray<number>, rounds = 20_000) => {
  const observed = Math.abs(mean(differences))
  let seed = 1
  let extreme = 0
  for (let round = 0; round < rounds; round++) {
    let sum = 0
    for (const difference of differences) {
      seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0
      sum += seed & 0x10000 ? difference : -difference
    }
    if (Math.abs(sum / differences.length) >= observed - 1e-12) extreme++
  }
  return (extreme + 1) / (rounds + 1)
}

const printLeaveOneCollectionOut = () => {
  const names = [...ndcgByParameters.keys()]
  const defaults = standardDefaults.map(key).filter((parameters) => ndcgByParameters.get(names[0]!)!.has(parameters))
  const cell = (name: string, parameters: string) => mean(perQuery(name, parameters)).toFixed(4)
  process.stdout.write(
    `\nLeave one collection out (nDCG@10; k1/b picked by the mean over the other collections):\n\n` +
      `| held out | picked on the others | its mean there | held-out nDCG@10 | ${defaults.map((d) => `k1/b ${d}`).join(" | ")} |\n` +
      `|---|---|---|---|${defaults.map(() => "---|").join("")}\n`
  )
  const picks = new Map(names.map((heldOut) => [heldOut, bestOn(names.filter((name) => name !== heldOut))]))
  for (const heldOut of names) {
    const others = names.filter((name) => name !== heldOut)
    const picked = picks.get(heldOut)!
    process.stdout.write(
      `| ${heldOut} | ${picked} | ${meanNdcg(others, picked).toFixed(4)} | ${cell(heldOut, picked)} | ` +
        `${defaults.map((d) => cell(heldOut, d)).join(" | ")} |\n`
    )
  }
  process.stdout.write(
    `| mean of the held-out | | | ${mean(names.map((name) => mean(perQuery(name, picks.get(name)!)))).toFixed(4)} | ` +
      `${defaults.map((d) => meanNdcg(names, d).toFixed(4)).join(" | ")} |\n\n`
  )
  // The held-out queries of every fold together: the fold's pick against each default, query by query.
  for (const standard of defaults) {
    const differences = names.flatMap((name) => {
      const picked = perQuery(name, picks.get(name)!)
      return perQuery(name, standard).map((value, index) => picked[index]! - value)
    })
    process.stdout.write(
      `Held-out picks against ${standard} over all ${differences.length} held-out queries: mean difference ` +
        `${mean(differences) >= 0 ? "+" : ""}${mean(differences).toFixed(4)}, better on ${differences.filter((d) => d > 0).length}, ` +
        `worse on ${differences.filter((d) => d < 0).length}, paired randomisation p = ${pairedPValue(differences).toFixed(4)}\n`
    )
  }
  const all = bestOn(names)
  process.stdout.write(`Picked on all ${names.length}: ${all} (mean ${meanNdcg(names, all).toFixed(4)})\n`)
}

const dataDir = mkdtempSync(join(tmpdir(), "basalt-tuning-"))
const config = ConfigProvider.fromEnv({
  env: {
    BASALT_DATA_DIR: dataDir,
    LOG_LEVEL: "Warning",
    ...(process.env.DATABASE_URL ? { DATABASE_URL: process.env.DATABASE_URL } : {})
  }
})
const layer = SearchRepo.layer.pipe(
  Layer.provideMerge(DatabaseLive),
  Layer.provide(AppConfigLive),
  Layer.provide(ConfigProvider.layer(config))
)

Effect.runPromise(Effect.provide(program, layer)).then(
  () => rmSync(dataDir, { recursive: true, force: true }),
  (error) => {
    rmSync(dataDir, { recursive: true, force: true })
    process.stderr.write(`${error}\n`)
    process.exit(1)
  }
)
