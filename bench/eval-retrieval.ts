/**
 * Retrieval quality through the public API: starts a fresh Basalt (child process; PGlite in a
 * temporary directory, or a new database on the Postgres that DATABASE_URL names), ingests a
 * test collection with POST /api/v1/documents/batch (100 a call, external_id = the corpus _id),
 * waits until every document is `indexed`, runs every judged query in each mode through
 * POST /api/v1/search, and prints nDCG@10 and Recall@100 beside the plain BM25 reference.
 *
 * Paging, for keyword and hybrid: each query is also asked at the default page size and walked
 * with its cursor for 10 pages, and the walk is compared with the one page of 100: documents
 * shown twice (repeated), documents of the page of 100 the walk never showed (missing), and
 * positions holding another document (order differs). nDCG@10 of the first default page is
 * what a person sees.
 *
 *   npm run eval:retrieval -- cranfield                  (a name under ../shared/datasets, or a folder)
 *   npm run eval:retrieval -- ../shared/datasets/med
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm run eval:retrieval -- cisi
 *
 * Queries longer than the API's 1,000 characters (a few of CISI's) are cut at the last space
 * before it. Exits 1 when a step fails, 2 when keyword mode's first page falls below the
 * reference or a walk differs from the page of 100.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { postgresStatements } from "./Postgres.ts"
import { bm25Reference, evaluate, loadCollection } from "./RetrievalCollection.ts"
import { freePort, logTail, startServerProcess, stopServerProcess, waitUntilAnswering } from "./ServerProcess.ts"

const repoRoot = fileURLToPath(new URL("..", import.meta.url))
const argument = process.argv.slice(2).find((arg) => arg !== "--")
if (argument === undefined) {
  process.stderr.write("usage: npm run eval:retrieval -- <collection name or folder>\n")
  process.exit(1)
}
const collection = loadCollection(argument)
const modes = ["keyword", "semantic", "hybrid"] as const
const indexingTimeoutMs = Number(process.env["EVAL_INDEXING_TIMEOUT_MS"] ?? 30 * 60_000)

const adminQuery = async (url: string, text: string) => {
  await postgresStatements(url, text)
}

const cut = (text: string, max: number) => {
  if (text.length <= max) return text
  const space = text.lastIndexOf(" ", max)
  return text.slice(0, space > 0 ? space : max)
}

const main = async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "basalt-eval-"))
  let databaseUrl: string | undefined
  let dropDatabase = async () => {}
  if (process.env["DATABASE_URL"]) {
    const name = `basalt_eval_${process.pid}_${Date.now()}`
    await adminQuery(process.env["DATABASE_URL"], `CREATE DATABASE ${name}`)
    const url = new URL(process.env["DATABASE_URL"])
    url.pathname = `/${name}`
    databaseUrl = url.toString()
    dropDatabase = () => adminQuery(process.env["DATABASE_URL"]!, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  }
  const port = await freePort()
  const server = startServerProcess({
    name: "Basalt",
    script: "src/main.ts",
    cwd: repoRoot,
    port,
    env: {
      PATH: process.env["PATH"] ?? "",
      HOST: "127.0.0.1",
      PORT: String(port),
      BASALT_DATA_DIR: join(dataDir, "data"),
      LOG_LEVEL: "warn",
      BASALT_ALLOW_SIGNUP: "true",
      BASALT_RATE_LIMIT_PRINCIPAL: "1000000000/1s",
      BASALT_RATE_LIMIT_AUTH: "1000000000/1s",
      ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {})
    },
    logFile: join(dataDir, "basalt.log")
  })
  try {
    await waitUntilAnswering(server, "/ready", 120_000)
    const call = async (path: string, init: RequestInit & { token?: string } = {}) => {
      const response = await fetch(`${server.baseUrl}${path}`, {
        ...init,
        headers: {
          ...(init.body ? { "content-type": "application/json" } : {}),
          ...(init.token ? { authorization: `Bearer ${init.token}` } : {})
        }
      })
      const text = await response.text()
      if (response.status >= 300 && response.status !== 207) {
        throw new Error(`${init.method ?? "GET"} ${path}: ${response.status} ${text.slice(0, 500)}`)
      }
      return JSON.parse(text)
    }
    const credentials = { email: "eval@example.com", password: "evaluation password" }
    await call("/api/v1/auth/register", { method: "POST", body: JSON.stringify({ ...credentials, display_name: "eval" }) })
    const login = await call("/api/v1/auth/login", { method: "POST", body: JSON.stringify(credentials) })
    // An API key: the run may outlast an access token.
    const key = await call("/api/v1/api-keys", { method: "POST", token: login.access_token, body: JSON.stringify({ name: "eval" }) })
    const token: string = key.secret

    const started = performance.now()
    const externalIdOf = new Map<string, string>()
    for (let start = 0; start < collection.corpus.length; start += 100) {
      const batch = collection.corpus.slice(start, start + 100)
      const answer = await call("/api/v1/documents/batch", {
        method: "POST",
        token,
        body: JSON.stringify({
          documents: batch.map((document) => ({
            // The API requires a title; MED's documents have none, so they are titled by their id.
            title: document.title.trim() === "" ? document._id : document.title,
            // A few documents have no text (Cranfield's 471 has neither text nor title): then the
            // title, else the id, so that every judged document exists.
            content: [document.text, document.title, document._id].find((text) => text.trim() !== ""),
            source: "api",
            external_id: document._id
          }))
        })
      })
      const items: Array<any> = answer.results ?? answer.items ?? []
      items.forEach((item, index) => {
        const document = item.document ?? item
        if (typeof document?.id !== "string") {
          throw new Error(`document ${batch[index]?._id} was refused: ${JSON.stringify(item).slice(0, 300)}`)
        }
        externalIdOf.set(document.id, document.external_id ?? batch[index]!._id)
      })
    }
    process.stdout.write(`${collection.name}: ${externalIdOf.size} documents accepted in ${Math.round(performance.now() - started)} ms\n`)

    const deadline = performance.now() + indexingTimeoutMs
    for (;;) {
      const indexed = await call("/api/v1/documents?status=indexed&limit=1", { token })
      const failed = await call("/api/v1/documents?status=failed&limit=1", { token })
      if (failed.total > 0) throw new Error(`${failed.total} documents failed to index: ${JSON.stringify(failed.items?.[0])}`)
      if (indexed.total >= externalIdOf.size) break
      if (performance.now() > deadline) throw new Error(`only ${indexed.total} of ${externalIdOf.size} indexed in time`)
      await new Promise((resolve) => setTimeout(resolve, 1000))
    }
    process.stdout.write(`all indexed after ${Math.round(performance.now() - started)} ms\n\n`)

    const reference = bm25Reference[collection.name]
    const search = async (body: Record<string, unknown>) => {
      const response = await fetch(`${server.baseUrl}/api/v1/search`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: JSON.stringify(body)
      })
      return { status: response.status, body: (await response.json()) as any }
    }
    const externalIds = (results: ReadonlyArray<{ document_id: string }>) =>
      results.map((result) => externalIdOf.get(result.document_id) ?? result.document_id)
    const rows: Array<string> = []
    let failed = false
    for (const mode of modes) {
      const rankings = new Map<string, ReadonlyArray<string>>()
      const firstPages = new Map<string, ReadonlyArray<string>>()
      const walked = { repeated: 0, missing: 0, orderDiffers: 0, positions: 0 }
      const walks = mode !== "semantic"
      let usedMode: string = mode
      let refused: string | undefined
      const t0 = performance.now()
      for (const query of collection.queries) {
        const text = cut(query.text, 1000)
        const page100 = await search({ query: text, mode, limit: 100 })
        if (page100.status !== 200) {
          refused = page100.body.details?.[0]?.message ?? page100.body.message
          break
        }
        usedMode = page100.body.mode
        const ranking = externalIds(page100.body.results)
        rankings.set(query._id, ranking)
        if (!walks) continue
        // Ten pages at the default page size, by the cursor, against the one page of 100.
        const walk: Array<string> = []
        let cursor: string | undefined
        for (let page = 0; page < 10 && (page === 0 || cursor !== undefined); page++) {
          const answer = await search({ query: text, mode, ...(cursor === undefined ? {} : { cursor }) })
          if (answer.status !== 200) throw new Error(`${mode} page ${page + 1} of "${text.slice(0, 60)}": ${answer.status}`)
          const shown = externalIds(answer.body.results)
          if (page === 0) firstPages.set(query._id, shown)
          walk.push(...shown)
          cursor = answer.body.next_cursor ?? undefined
        }
        const seen = new Set<string>()
        for (const id of walk) {
          if (seen.has(id)) walked.repeated++
          seen.add(id)
        }
        walked.missing += ranking.filter((id) => !seen.has(id)).length
        walked.orderDiffers += Array.from({ length: Math.max(walk.length, ranking.length) }, (_, i) => walk[i] !== ranking[i]).filter(
          Boolean
        ).length
        walked.positions += walk.length
      }
      if (refused !== undefined) {
        rows.push(`| ${mode} | n/a | n/a | n/a | ${refused} | |`)
        continue
      }
      const { ndcg10, recall100 } = evaluate(collection, rankings)
      const firstPage = walks ? evaluate(collection, firstPages).ndcg10 : undefined
      if (mode === "keyword" && reference && (firstPage ?? ndcg10) < reference.ndcg10) failed = true
      if (walked.repeated + walked.missing + walked.orderDiffers > 0) failed = true
      const ms = (performance.now() - t0) / collection.queries.length
      rows.push(
        `| ${mode}${usedMode !== mode ? ` (ran as ${usedMode})` : ""} | ${firstPage === undefined ? "" : firstPage.toFixed(4)} | ` +
          `${ndcg10.toFixed(4)} | ${recall100.toFixed(4)} | ` +
          `${walks ? `${walked.repeated} / ${walked.missing} / ${walked.orderDiffers} of ${walked.positions}` : ""} | ${ms.toFixed(1)} ms/query |`
      )
    }
    process.stdout.write(
      `| ${collection.name} (${collection.queries.length} queries) | nDCG@10, default page | nDCG@10, limit 100 | R@100 | ` +
        `10 pages by cursor vs limit 100: repeated / missing / order differs | |\n|---|---|---|---|---|---|\n`
    )
    if (reference) process.stdout.write(`| BM25 reference | ${reference.ndcg10.toFixed(4)} | | ${reference.recall100.toFixed(4)} | | |\n`)
    process.stdout.write(`${rows.join("\n")}\n`)
    return failed ? 2 : 0
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n--- server log ---\n${logTail(server, 30)}\n`)
    return 1
  } finally {
    await stopServerProcess(server, 20_000)
    await dropDatabase()
    rmSync(dataDir, { recursive: true, force: true })
  }
}

main().then((code) => process.exit(code))
