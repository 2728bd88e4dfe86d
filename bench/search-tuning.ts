/**
 * Tunes and checks the ranking without the HTTP API: loads each test collection straight into
 * `documents` / `chunks` (cut by the real chunker; embedded by the local embedder where pgvector
 * is), then runs every judged query through SearchRepo's SQL and prints nDCG@10 and Recall@100
 * beside the plain BM25 reference. `npm run eval:retrieval` measures the same through the API.
 *
 *   node --import tsx bench/search-tuning.ts [collection ...]             (PGlite in a temp dir)
 *   DATABASE_URL=postgres://… node --import tsx bench/search-tuning.ts     (an empty database)
 *   TUNE_K1=0.6,0.9,1.2 TUNE_B=0.3,0.5,0.75 node --import tsx bench/search-tuning.ts cranfield
 *   TUNE_DEPTH=50,100,200 node --import tsx bench/search-tuning.ts   (keyword's candidates per query term)
 *   TUNE_DEPTH=50 TUNE_RESCORED=20,50 node --import tsx bench/search-tuning.ts   (candidates completed
 *     by probes; 50 and 50 are what a first page of ten uses)
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
import { type Bm25Parameters, defaultBm25 } from "../src/search/KeywordRanking.ts"
import { foldSearchStatistics } from "../src/search/SearchStatistics.ts"
import { SearchRepo } from "../src/search/SearchRepo.ts"
import { bm25Reference, evaluate, loadCollection, type RetrievalCollection } from "./RetrievalCollection.ts"

const numbers = (name: string) =>
  process.env[name]
    ?.split(",")
    .map((text) => Number(text.trim()))
    .filter((n) => Number.isFinite(n))

const names = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ["cranfield", "cisi", "cacm", "med"]
const k1s = numbers("TUNE_K1") ?? [defaultBm25.k1]
const bs = numbers("TUNE_B") ?? [defaultBm25.b]
const candidateDepths: ReadonlyArray<number | undefined> = numbers("TUNE_DEPTH") ?? [undefined]
const rescoredCounts: ReadonlyArray<number | undefined> = numbers("TUNE_RESCORED") ?? [undefined]
const depth = 100

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
    for (const k1 of k1s) {
      for (const b of bs) {
        for (const candidateDepth of candidateDepths) {
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
                ...(rescored === undefined ? {} : { rescored })
              })
              rankings.set(
                query._id,
                hits.map((hit) => externalIdOf.get(hit.document_id)!)
              )
            }
            keywordRuns.set(`${k1}/${b}`, rankings)
            const { ndcg10, recall100 } = evaluate(collection, rankings)
            process.stdout.write(
              `  keyword k1=${k1.toFixed(2)} b=${b.toFixed(2)}${candidateDepth === undefined ? "" : ` depth=${candidateDepth}`}` +
                `${rescored === undefined ? "" : ` rescored=${rescored}`}` +
                `  nDCG@10 ${ndcg10.toFixed(4)}  R@100 ${recall100.toFixed(4)}` +
                `  (${((Date.now() - t0) / collection.queries.length).toFixed(1)} ms/query)\n`
            )
          }
        }
      }
    }
    if (!pgvector) continue
    const semantic = new Map<string, ReadonlyArray<string>>()
    for (const query of collection.queries) {
      const [vector] = [embedding.embed(query.text)]
      const { hits } = yield* repo.semantic({
        caller,
        vector: vector!,
        model: embedding.model,
        dimensions: embedding.dimensions,
        filters: {},
        limit: depth,
        offset: 0
      })
      semantic.set(
        query._id,
        hits.map((hit) => externalIdOf.get(hit.document_id)!)
      )
    }
    const s = evaluate(collection, semantic)
    process.stdout.write(`  semantic                  nDCG@10 ${s.ndcg10.toFixed(4)}  R@100 ${s.recall100.toFixed(4)}\n`)
    const keyword = keywordRuns.get(`${k1s[0]}/${bs[0]}`)!
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
        `  hybrid ${weights.keyword}/${weights.semantic}              nDCG@10 ${h.ndcg10.toFixed(4)}  R@100 ${h.recall100.toFixed(4)}\n`
      )
    }
  }
})

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
