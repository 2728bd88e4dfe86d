/**
 * Scale-out (issue 13): three Basalt processes (real child processes, `npm start`'s command) on
 * one Postgres database, each its own cluster runner. Writes through any process are answered at
 * once and indexed exactly once by whichever process holds the document's shard; a process killed
 * (SIGKILL) mid-indexing leaves its shards to the living, and takes shards back when it returns;
 * a rolling restart under load loses no request and no document.
 *
 * Always on Postgres (CI's DATABASE_URL server, else the local one), on a fresh database of this
 * file's own, also on the PGlite pass: the embedded database is one process only.
 *
 * "Indexed exactly once" is read from a trigger on `documents` that records every committed
 * indexing (`recordIndexCommits`), cross-checked with the processes' "indexing run finished" log
 * lines; "exactly its chunks" from the chunks table against the chunker's own output.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { type Person, signUp } from "./support/people.ts"
import {
  type ClusterNode,
  eventually,
  indexCommits,
  indexingDefects,
  loggedIndexRuns,
  markerWord,
  type ProcessCluster,
  pendingMessages,
  recordIndexCommits,
  runnerStatuses,
  scaleDocument,
  settledOver,
  startBalancer,
  startCluster,
  timedRequestAt
} from "./support/processCluster.ts"

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const env = {
  HOST: "127.0.0.1",
  BASALT_ALLOW_SIGNUP: "true",
  BASALT_JWT_SECRET: "scale-out-secret-of-at-least-32-chars",
  // Out of reach: these tests are about indexing and availability, rate-limits.test.ts about limits.
  BASALT_RATE_LIMIT_AUTH: "1000000/1s",
  BASALT_RATE_LIMIT_PRINCIPAL: "1000000/1s"
}

let cluster: ProcessCluster
let admin: Person

beforeAll(async () => {
  cluster = await startCluster({ size: 3, env, beforeLoad: recordIndexCommits })
  // The first account is an admin: it reads every document, whichever process took it.
  admin = await signUp(cluster.node(0), "scale-admin")
}, 240_000)

afterEach((context) => {
  if (context.task.result?.state === "fail" && cluster !== undefined) console.info(cluster.report())
})

afterAll(async () => {
  await cluster?.close()
}, 90_000)

interface Progress {
  readonly total: number
  readonly pending: number
  readonly by_status: Record<string, number>
}

/** The indexing progress of one source's documents, asked of a process that is up (each in turn). */
let progressTurn = 0
const progressOf = async (source: string, nodes: ReadonlyArray<ClusterNode> = cluster.live()): Promise<Progress> => {
  const node = nodes[progressTurn++ % nodes.length]!
  const response = await node.request(`/api/v1/documents/progress?sources=${source}`, admin.json("GET"))
  expect(response.status).toBe(200)
  const progress = response.json() as Progress
  if ((progress.by_status.failed ?? 0) > 0) throw new Error(`documents of ${source} failed to index: ${response.text}`)
  return progress
}

/** Polls the progress until `count` documents of `source` are indexed; returns how long it took. */
const waitAllIndexed = async (source: string, count: number, boundMs: number, nodes?: () => ReadonlyArray<ClusterNode>) => {
  const started = Date.now()
  await eventually(
    `${count} documents of ${source} indexed`,
    boundMs,
    () => progressOf(source, nodes?.()),
    (progress) => progress.by_status.indexed === count && progress.total === count
  )
  return Date.now() - started
}

/** Every indexing message processed (none left for a replay that could index a document again). */
const waitDrained = () =>
  eventually(
    "every indexing message processed",
    30_000,
    () => pendingMessages(cluster),
    (n) => n === 0
  )

/**
 * Each document indexed exactly once with exactly its chunks, and still so after longer than the
 * cluster's storage poll (a late replay would show as a second commit).
 */
const expectIndexedOnce = async (ids: ReadonlyArray<string>) => {
  await waitDrained()
  expect(await indexingDefects(cluster, ids)).toEqual([])
  await sleep(3_000)
  expect([...(await indexCommits(cluster, ids)).values()].filter((n) => n !== 1)).toEqual([])
  // The processes' own account agrees: no document logged as indexed twice.
  const logged = loggedIndexRuns(cluster.everyProcess())
  expect(ids.filter((id) => (logged.get(id) ?? 0) > 1)).toEqual([])
}

/**
 * POSTs `documents` to `node`, `inFlight` at a time; each answer (checked against the contract once
 * all have come) with how long it took to come.
 */
const postAll = async (node: ClusterNode, documents: ReadonlyArray<object>, inFlight: number) => {
  const timed: Array<Awaited<ReturnType<typeof timedRequestAt>>> = []
  let next = 0
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      for (let i = next++; i < documents.length; i = next++) {
        timed[i] = await timedRequestAt(node.url, "/api/v1/documents", {
          ...admin.json("POST", documents[i]),
          signal: AbortSignal.timeout(30_000)
        })
      }
    })
  )
  const answers: Array<{ status: number; ms: number; id: string; text: string; serverMs: number }> = []
  for (const { ms, received } of timed) {
    const response = await received()
    answers.push({
      status: response.status,
      ms,
      id: response.json().id,
      text: response.text,
      serverMs: Number(response.headers.get("x-process-time"))
    })
  }
  return answers
}

const searchFirst = async (node: ClusterNode, query: string) => {
  const response = await node.request("/api/v1/search", admin.json("POST", { query, mode: "keyword", limit: 5 }))
  expect(response.status).toBe(200)
  return (response.json().results as Array<{ document_id: string }>).map((result) => result.document_id)
}

describe("three processes on one database", () => {
  it("answer 300 concurrent writes within 2 s each, index each document exactly once, and search each other's documents", async () => {
    // Each runs a runner at its own address, and the 300 shards are spread over the three.
    const statuses = await eventually("the shards spread over three runners", 60_000, () => runnerStatuses(cluster.live()), settledOver)
    expect(statuses.map((status) => status!.runner)).toEqual(cluster.live().map((node) => `127.0.0.1:${node.port}`))
    console.info(`shards per process: ${statuses.map((status) => status!.shards).join(", ")}`)

    const perProcess = 100
    const source = "scale_one"
    const documents = Array.from({ length: 3 * perProcess }, (_, n) => scaleDocument("one", source, n))
    const started = Date.now()
    const answers = await Promise.all(
      [0, 1, 2].map((p) => postAll(cluster.node(p), documents.slice(p * perProcess, (p + 1) * perProcess), 5))
    )
    const all = answers.flat()
    expect(all.filter((answer) => answer.status !== 202).map((answer) => `${answer.status} ${answer.text}`)).toEqual([])
    const slowest = Math.max(...all.map((answer) => answer.ms))
    const slowestInServer = Math.max(...all.map((answer) => answer.serverMs))
    console.info(
      `300 writes through 3 processes: slowest answer ${Math.round(slowest)} ms (${slowestInServer} ms in its server), all in ${Date.now() - started} ms`
    )
    // A bound on hanging (a write waiting on the cluster), not a benchmark.
    expect(slowest).toBeLessThan(2_000)

    const ids = all.map((answer) => answer.id)
    expect(new Set(ids).size).toBe(300)
    const indexingMs = await waitAllIndexed(source, 300, 90_000)
    console.info(`300 documents indexed ${indexingMs} ms after the last write was answered`)
    await expectIndexedOnce(ids)
    // Every process indexed some: the shards are spread over the three.
    const logged = loggedIndexRuns(cluster.everyProcess().slice(-3))
    const byProcess = cluster
      .live()
      .map((node) => node.process.stdoutLines().filter((line) => line.includes('"indexing run finished"')).length)
    console.info(`indexing runs logged per process: ${byProcess.join(", ")}`)
    expect(byProcess.every((runs) => runs > 0)).toBe(true)
    expect(ids.every((id) => logged.get(id) === 1)).toBe(true)

    // Each process finds what the two others took in.
    for (const p of [0, 1, 2]) {
      for (const other of [0, 1, 2].filter((q) => q !== p)) {
        for (const n of [other * perProcess, other * perProcess + 37, other * perProcess + 99]) {
          expect(await searchFirst(cluster.node(p), markerWord("one", n))).toEqual([ids[n]])
        }
      }
    }
  }, 150_000)

  it("finish every document within 30 s when one of them is killed mid-indexing, none twice; it rejoins and takes shards back", async () => {
    const count = 500
    const source = "scale_kill"
    // The shards spread over the three first: the one killed holds its share of the work.
    const before = await eventually("the shards spread over three runners", 60_000, () => runnerStatuses(cluster.live()), settledOver)
    // Longer documents than elsewhere (about 6 kB, 100 to a batch well under the body limit): their
    // indexing lasts long enough for the kill to come in the middle of it.
    const documents = Array.from({ length: count }, (_, n) => scaleDocument("kill", source, n, 12))
    // Five batches of 100, spread over the three processes, at once.
    const batches = await Promise.all(
      [0, 1, 2, 3, 4].map((b) =>
        cluster.node(b % 3).request("/api/v1/documents/batch", admin.json("POST", { documents: documents.slice(b * 100, b * 100 + 100) }))
      )
    )
    const ids: Array<string> = []
    for (const batch of batches) {
      expect(batch.status).toBe(207)
      for (const result of batch.json().results) {
        expect(result.status).toBe(202)
        ids.push(result.document.id)
      }
    }
    const indexedCount = async () =>
      (
        await cluster.query<{ n: number }>("SELECT count(*)::int AS n FROM documents WHERE id = ANY($1::uuid[]) AND status = 'indexed'", [
          ids
        ])
      )[0]!.n
    const atKill = await eventually("a first document indexed", 60_000, indexedCount, (n) => n > 0)
    const victim = cluster.node(1)
    const killedAt = Date.now()
    await cluster.kill(1)
    const whenKilled = await indexedCount()
    console.info(
      `killed process 1 (holding ${before[1]!.shards} shards) with ${whenKilled} of ${count} indexed (${atKill} at the decision)`
    )
    // Mid-indexing: some were done, not all.
    expect(whenKilled).toBeLessThan(count)

    const living = () => cluster.live()
    // When the two living hold every shard between them (the takeover), watched meanwhile.
    const takeover = eventually("the shards spread over the two left", 30_000, () => runnerStatuses(living()), settledOver).then(
      (statuses) => ({ statuses, ms: Date.now() - killedAt })
    )
    await waitAllIndexed(source, count, Math.max(1, 30_000 - (Date.now() - killedAt)), living)
    console.info(`every document indexed ${Date.now() - killedAt} ms after the kill`)
    expect(Date.now() - killedAt).toBeLessThan(30_000)
    await expectIndexedOnce(ids)
    const { statuses: afterKill, ms: takeoverMs } = await takeover
    console.info(`the two left held every shard ${takeoverMs} ms after the kill: ${afterKill.map((status) => status!.shards).join(", ")}`)

    // It returns on its port (the same runner address), and takes shards back: documents posted to
    // it are indexed, some of them by it (30 documents over 300 shards: that none land on a third
    // of the shards has odds of (2/3)^30).
    const returned = await cluster.start(1, victim.port)
    expect(returned.port).toBe(victim.port)
    const rejoined = await eventually(
      "the shards spread over three runners again",
      60_000,
      () => runnerStatuses(cluster.live()),
      settledOver
    )
    console.info(`shards per process after the rejoin: ${rejoined.map((status) => status!.shards).join(", ")}`)
    const later = Array.from({ length: 30 }, (_, n) => scaleDocument("back", "scale_back", n))
    const answers = await postAll(returned, later, 5)
    expect(answers.map((answer) => answer.status)).toEqual(later.map(() => 202))
    const laterIds = answers.map((answer) => answer.id)
    await waitAllIndexed("scale_back", later.length, 60_000)
    await expectIndexedOnce(laterIds)
    const indexedByReturned = laterIds.filter((id) =>
      returned.process.stdoutLines().some((line) => line.includes('"indexing run finished"') && line.includes(id))
    )
    console.info(`the returned process indexed ${indexedByReturned.length} of the ${later.length} documents posted to it`)
    expect(indexedByReturned.length).toBeGreaterThan(0)
  }, 180_000)

  it("a rolling restart under ingestion and search loses no request and no document", async () => {
    const source = "scale_roll"
    const balancer = startBalancer(cluster)
    await eventually(
      "the balancer sees three processes ready",
      30_000,
      async () => balancer.healthyCount(),
      (n) => n === 3
    )

    const accepted = new Map<number, string>()
    const failures: Array<string> = []
    const counts = { posts: 0, searches: 0 }
    let loading = true
    let next = 0
    const ingest = async () => {
      while (loading) {
        const n = next++
        const response = await balancer.send("/api/v1/documents", {
          ...admin.json("POST", scaleDocument("roll", source, n)),
          signal: AbortSignal.timeout(30_000)
        })
        counts.posts++
        // 200: a retry of a write whose first attempt was stored before its connection was cut.
        if (response.status === 202 || response.status === 200) accepted.set(n, response.json().id)
        else failures.push(`POST document ${n}: ${response.status} ${response.text}`)
        await sleep(100)
      }
    }
    const search = async () => {
      while (loading) {
        const query = markerWord("roll", Math.floor(Math.random() * Math.max(1, next)))
        const response = await balancer.send("/api/v1/search", {
          ...admin.json("POST", { query, mode: "keyword", limit: 5 }),
          signal: AbortSignal.timeout(30_000)
        })
        counts.searches++
        if (response.status !== 200) failures.push(`search ${query}: ${response.status} ${response.text}`)
        await sleep(100)
      }
    }
    const load = Promise.all([ingest(), ingest(), ingest(), search(), search()])
    try {
      await sleep(2_000)
      for (const index of [0, 1, 2]) {
        const { port } = cluster.node(index)
        const began = Date.now()
        await cluster.stop(index)
        const stoppedMs = Date.now() - began
        await cluster.start(index, port)
        await eventually(
          "the balancer sees the restarted process ready",
          30_000,
          async () => balancer.healthyCount(),
          (n) => n === 3
        )
        console.info(`process ${index}: stopped in ${stoppedMs} ms, ready again ${Date.now() - began} ms after SIGTERM`)
      }
      await sleep(2_000)
    } finally {
      loading = false
      await load
      await balancer.stop()
    }
    console.info(
      `rolling restart: ${counts.posts} writes, ${counts.searches} searches, ${balancer.retries.count} sent again after a refused or cut connection`
    )
    expect(failures).toEqual([])
    expect(accepted.size).toBe(next)

    const ids = [...new Set(accepted.values())]
    expect(ids.length).toBe(accepted.size)
    await waitAllIndexed(source, ids.length, 90_000)
    await expectIndexedOnce(ids)
  }, 240_000)
})
