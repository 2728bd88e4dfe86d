/**
 * Several Basalt server processes (`npm start`'s command, real child processes) on one fresh
 * Postgres database, for the scale-out tests: started, killed (SIGKILL), stopped (SIGTERM) and
 * started again on the same port; a database client of the test's own for what the API does not
 * show; and a load balancer that sends only to the processes whose /ready says 200.
 *
 * These tests need Postgres whatever the run: CI's server (DATABASE_URL) when there is one, else
 * the local one. Every HTTP response goes through `receive` (the contract check).
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, ManagedRuntime, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { chunkDocument } from "../../src/indexing/Chunker.ts"
import { sampleDocument } from "./indexing.ts"
import { postgresQuery, receive, type TestResponse } from "./server.ts"
import { exitWithin, type ServerProcess, startProcess, startupDeadlineMs, waitUntilHealthy } from "./serverProcess.ts"

/** CI's Postgres (DATABASE_URL) when the run has one, else the machine's (trust authentication). */
const postgresServerUrl = () => process.env.DATABASE_URL || "postgres://postgres@127.0.0.1:5432/postgres"

let databases = 0

/** A database of its own on the Postgres server of the run; `drop` ends its sessions and drops it. */
export const freshDatabase = async (label: string) => {
  const name = `basalt_${label}_${process.pid}_${++databases}_${Date.now()}`
  await postgresQuery(postgresServerUrl(), `CREATE DATABASE ${name}`)
  const url = new URL(postgresServerUrl())
  url.pathname = `/${name}`
  return {
    name,
    url: url.toString(),
    drop: async () => {
      await postgresQuery(postgresServerUrl(), `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    }
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** fetch, then the contract check; `method` and `path` name the operation for the check. */
export const requestAt = async (baseUrl: string, path: string, init?: RequestInit): Promise<TestResponse> =>
  receive(init?.method ?? "GET", path, await fetch(`${baseUrl}${path}`, init))

/**
 * A request and how long its answer took to arrive (its headers); the contract check runs when
 * `received` is called, so that checking other answers meanwhile does not count in this one's time.
 */
export const timedRequestAt = async (baseUrl: string, path: string, init?: RequestInit) => {
  const started = performance.now()
  const answer = await fetch(`${baseUrl}${path}`, init)
  const ms = performance.now() - started
  const text = await answer.text()
  return {
    ms,
    received: () => receive(init?.method ?? "GET", path, new Response(text, { status: answer.status, headers: answer.headers }))
  }
}

/** Once healthy, polls GET /ready until it is 200 (a starting server answers 503 until its layers are up). */
export const waitUntilReady = async (server: ServerProcess, boundMs = startupDeadlineMs) => {
  await waitUntilHealthy(server)
  const deadline = Date.now() + boundMs
  let last = ""
  while (Date.now() < deadline) {
    if (server.child.exitCode !== null || server.child.signalCode !== null) {
      throw new Error(`the server exited while starting:\n${server.stderr()}\n${server.stdoutLines().slice(-30).join("\n")}`)
    }
    const ready = await requestAt(server.url, "/ready").catch((error: Error) => error)
    if (!(ready instanceof Error) && ready.status === 200) return ready
    last = ready instanceof Error ? ready.message : `${ready.status} ${ready.text}`
    await sleep(200)
  }
  throw new Error(`the server was not ready within ${boundMs} ms (last: ${last}):\n${server.stdoutLines().slice(-30).join("\n")}`)
}

/** A process's place in the cluster, as its /ready reports it. */
export interface RunnerStatus {
  readonly runner: string
  /** Of the 300 shards, how many it holds. */
  readonly shards: number
  /** The runners it knows alive. */
  readonly runners: number
}

/** What /ready says of the cluster, for each process that is up (undefined where /ready is not 200). */
export const runnerStatuses = (nodes: ReadonlyArray<ClusterNode>) =>
  Promise.all(
    nodes.map(async (node) => {
      const ready = await node.request("/ready")
      return ready.status === 200 ? (ready.json().cluster as RunnerStatus) : undefined
    })
  )

/** Whether these statuses are a settled cluster of `nodes.length` runners sharing the 300 shards, each some. */
export const settledOver = (statuses: ReadonlyArray<RunnerStatus | undefined>) =>
  statuses.every((status) => status !== undefined && status.shards > 0 && status.runners === statuses.length) &&
  statuses.reduce((sum, status) => sum + (status?.shards ?? 0), 0) === 300

export interface ClusterNode {
  readonly index: number
  readonly process: ServerProcess
  readonly port: number
  readonly url: string
  readonly request: (path: string, init?: RequestInit) => Promise<TestResponse>
}

export interface ProcessCluster {
  readonly databaseUrl: string
  /** The processes by index; undefined while that one is down. */
  readonly node: (index: number) => ClusterNode
  readonly live: () => ReadonlyArray<ClusterNode>
  readonly size: number
  /** Every process ever started (the stopped and killed included), for their log lines. */
  readonly everyProcess: () => ReadonlyArray<ServerProcess>
  /** Starts process `index` (on `port`, or a port it picks) and waits until it is ready. */
  readonly start: (index: number, port?: number) => Promise<ClusterNode>
  /** SIGKILL; resolves once it has exited. */
  readonly kill: (index: number) => Promise<void>
  /** SIGTERM; resolves once it has exited (rejects if it has not within the bound). */
  readonly stop: (index: number) => Promise<void>
  /** Each process ever started: how it is (running, or how it ended) and the end of its output, for a failing test's message. */
  readonly report: () => string
  /** One statement on the cluster's database, on the test's own connection. */
  readonly query: <A extends object = Record<string, any>>(text: string, params?: ReadonlyArray<unknown>) => Promise<ReadonlyArray<A>>
  readonly close: () => Promise<void>
}

/** A bound on a SIGTERM'd process's exit: the shutdown grace (10 s) plus closing its layers. */
const stopBoundMs = 30_000

/**
 * `size` processes on a fresh database: the first alone (it applies the migrations), then the
 * others together. `beforeLoad` runs once the schema is there, before any other process starts.
 */
export const startCluster = async (options: {
  readonly size: number
  readonly env: Record<string, string>
  readonly beforeLoad?: (cluster: ProcessCluster) => Promise<void>
}): Promise<ProcessCluster> => {
  const database = await freshDatabase("scale_out")
  const client = ManagedRuntime.make(PgClient.layer({ url: Redacted.make(database.url), maxConnections: 2 }))
  const env = { DATABASE_URL: database.url, LOG_LEVEL: "info", ...options.env }
  const nodes: Array<ClusterNode | undefined> = Array.from({ length: options.size }, () => undefined)
  const processes: Array<ServerProcess> = []

  const start = async (index: number, port?: number) => {
    if (nodes[index] !== undefined) throw new Error(`process ${index} is running already`)
    const server = await startProcess({ ...env, PORT: String(port ?? 0) })
    processes.push(server)
    await waitUntilReady(server)
    const url = server.url
    const node: ClusterNode = { index, process: server, port: server.port, url, request: (path, init) => requestAt(url, path, init) }
    nodes[index] = node
    return node
  }
  const running = (index: number) => {
    const node = nodes[index]
    if (node === undefined) throw new Error(`process ${index} is not running`)
    return node
  }
  const cluster: ProcessCluster = {
    databaseUrl: database.url,
    size: options.size,
    node: running,
    live: () => nodes.filter((node): node is ClusterNode => node !== undefined),
    everyProcess: () => processes,
    start,
    kill: async (index) => {
      const node = running(index)
      nodes[index] = undefined
      node.process.child.kill("SIGKILL")
      await exitWithin(node.process, 10_000, "SIGKILL")
    },
    stop: async (index) => {
      const node = running(index)
      nodes[index] = undefined
      node.process.child.kill("SIGTERM")
      await exitWithin(node.process, stopBoundMs, "SIGTERM")
    },
    report: () =>
      processes
        .map((server, i) => {
          const { exitCode, signalCode, pid } = server.child
          const state = exitCode === null && signalCode === null ? "running" : `exited (code ${exitCode}, signal ${signalCode})`
          const problems = server.stdoutLines().filter((line) => /"level":"(WARN|ERROR|FATAL)"/i.test(line))
          return [
            `process ${i} (pid ${pid}, ${
              server
                .stdoutLines()
                .find((line) => line.includes("listening on"))
                ?.match(/:(\d+) \(/)?.[1] ?? "?"
            }): ${state}`,
            ...problems.slice(-15),
            ...server.stdoutLines().slice(-5),
            server.stderr().slice(-3000)
          ].join("\n")
        })
        .join("\n\n"),
    query: (text, params = []) =>
      client.runPromise(Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(text, params))) as Promise<ReadonlyArray<any>>,
    close: async () => {
      await Promise.all(
        cluster.live().map(async (node) => {
          node.process.child.kill("SIGTERM")
          await exitWithin(node.process, stopBoundMs, "SIGTERM").catch(() => node.process.child.kill("SIGKILL"))
        })
      )
      await client.dispose()
      await database.drop()
    }
  }
  try {
    await start(0)
    await options.beforeLoad?.(cluster)
    await Promise.all(Array.from({ length: options.size - 1 }, (_, i) => start(i + 1)))
  } catch (error) {
    await cluster.close().catch(() => undefined)
    throw error
  }
  return cluster
}

/**
 * What says a document was indexed twice: a row per committed indexing of a document, written by
 * a trigger on the documents table (an indexing run's final swap sets `indexed_at`; a run that
 * rolls back, or that finds its revision indexed already, writes nothing). Unlike the processes'
 * "indexing run finished" log lines, it also counts a run whose process was killed right after
 * its commit.
 */
export const recordIndexCommits = async (cluster: Pick<ProcessCluster, "query">) => {
  await cluster.query(`
    CREATE TABLE test_index_commits (
      document_id uuid NOT NULL,
      revision integer NOT NULL,
      committed_at timestamptz NOT NULL DEFAULT clock_timestamp()
    )`)
  await cluster.query(`
    CREATE FUNCTION test_record_index_commit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO test_index_commits (document_id, revision) VALUES (NEW.id, NEW.revision);
      RETURN NULL;
    END $$`)
  await cluster.query(`
    CREATE TRIGGER test_record_index_commit AFTER UPDATE OF indexed_at ON documents
    FOR EACH ROW WHEN (NEW.indexed_at IS DISTINCT FROM OLD.indexed_at)
    EXECUTE FUNCTION test_record_index_commit()`)
}

/** Committed indexings per document (documents never indexed are absent). */
export const indexCommits = async (cluster: Pick<ProcessCluster, "query">, ids: ReadonlyArray<string>) => {
  const rows = await cluster.query<{ id: string; n: number }>(
    "SELECT document_id::text AS id, count(*)::int AS n FROM test_index_commits WHERE document_id = ANY($1::uuid[]) GROUP BY document_id",
    [ids]
  )
  return new Map(rows.map((row) => [row.id, row.n]))
}

/** Document ids of the runs that logged a committed index, one entry per run, over every process's stdout. */
export const loggedIndexRuns = (processes: ReadonlyArray<ServerProcess>) => {
  const runs = new Map<string, number>()
  for (const server of processes) {
    for (const line of server.stdoutLines()) {
      if (!line.includes("indexing run finished")) continue
      const entry = JSON.parse(line)
      if (entry.message === "indexing run finished" && entry.outcome === "indexed") {
        runs.set(entry.document_id, (runs.get(entry.document_id) ?? 0) + 1)
      }
    }
  }
  return runs
}

/** Indexing messages stored and not yet processed. */
export const pendingMessages = async (cluster: Pick<ProcessCluster, "query">) =>
  (await cluster.query<{ n: number }>("SELECT count(*)::int AS n FROM cluster_messages WHERE NOT processed"))[0]!.n

/** Polls until `condition` holds; a bound against a hang, not a measurement. */
export const eventually = async <A>(what: string, boundMs: number, probe: () => Promise<A>, condition: (value: A) => boolean) => {
  const deadline = Date.now() + boundMs
  let value = await probe()
  while (!condition(value)) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${boundMs} ms; last: ${JSON.stringify(value)}`)
    await sleep(200)
    value = await probe()
  }
  return value
}

export interface IndexingDefect {
  readonly id: string
  readonly problem: string
}

/**
 * What is wrong with these documents' indexing, if anything: each must be `indexed` with exactly
 * the chunks one run of the chunker makes of it (ordinals 0..n-1, each once, with its text), and
 * committed exactly once (`recordIndexCommits`).
 */
export const indexingDefects = async (cluster: Pick<ProcessCluster, "query">, ids: ReadonlyArray<string>) => {
  const documents = await cluster.query<{ id: string; title: string; content: string; status: string; chunk_count: number }>(
    "SELECT id::text AS id, title, content, status, chunk_count FROM documents WHERE id = ANY($1::uuid[])",
    [ids]
  )
  const chunks = await cluster.query<{ document_id: string; ordinal: number; content: string; contextual_content: string }>(
    `SELECT document_id::text AS document_id, ordinal, content, contextual_content FROM chunks
     WHERE document_id = ANY($1::uuid[]) ORDER BY document_id, ordinal`,
    [ids]
  )
  const chunksOf = new Map<string, Array<(typeof chunks)[number]>>()
  for (const chunk of chunks) chunksOf.set(chunk.document_id, [...(chunksOf.get(chunk.document_id) ?? []), chunk])
  const commits = await indexCommits(cluster, ids)
  const defects: Array<IndexingDefect> = []
  const found = new Map(documents.map((document) => [document.id, document]))
  for (const id of ids) {
    const document = found.get(id)
    if (document === undefined) {
      defects.push({ id, problem: "missing" })
      continue
    }
    const expected = chunkDocument({ title: document.title, text: document.content })
    const stored = chunksOf.get(id) ?? []
    if (document.status !== "indexed") defects.push({ id, problem: `status ${document.status}` })
    if (document.chunk_count !== expected.length)
      defects.push({ id, problem: `chunk_count ${document.chunk_count}, expected ${expected.length}` })
    const ordinals = stored.map((chunk) => chunk.ordinal)
    if (JSON.stringify(ordinals) !== JSON.stringify(expected.map((_, i) => i))) {
      defects.push({ id, problem: `ordinals ${JSON.stringify(ordinals)}, expected 0..${expected.length - 1}` })
    } else if (stored.some((chunk, i) => chunk.content !== expected[i]!.text || chunk.contextual_content !== expected[i]!.contextualText)) {
      defects.push({ id, problem: "chunk text differs from the chunker's" })
    }
    const committed = commits.get(id) ?? 0
    if (committed !== 1) defects.push({ id, problem: `indexed ${committed} times` })
  }
  return defects
}

/** A word no other document has, of letters only (the keyword index stems and splits on digits). */
export const markerWord = (label: string, n: number) => `zq${label}${[...String(n)].map((digit) => "abcdefghij"[Number(digit)]).join("")}x`

/** A document of a few paragraphs (`paragraphs` more for a longer one), findable by `markerWord(label, n)`. */
export const scaleDocument = (label: string, source: string, n: number, paragraphs = 2) => {
  const sample = sampleDocument(n, paragraphs + (n % 4))
  return {
    title: `${sample.title} ${markerWord(label, n)}`,
    content: `${sample.content}\n\nMarker ${markerWord(label, n)}.`,
    source,
    external_id: `${label}-${n}`
  }
}

/** An error that says the connection was refused or cut: a balancer tries another process. */
export const isConnectionFailure = (error: unknown) => {
  const codes = ["ECONNREFUSED", "ECONNRESET", "EPIPE", "UND_ERR_SOCKET", "UND_ERR_CLOSED"]
  for (let cause: any = error; cause !== undefined && cause !== null; cause = cause.cause) {
    if (codes.includes(cause.code)) return true
  }
  return false
}

/**
 * A load balancer with health checks: it polls every process's /ready and sends each request to
 * one of those answering 200; a request whose connection is refused or cut (its process was
 * stopping) is sent again to another, as a balancer does. Anything else is the answer.
 */
export const startBalancer = (cluster: ProcessCluster, intervalMs = 100) => {
  const healthy = new Set<string>()
  let running = true
  let turn = 0
  const check = async () => {
    while (running) {
      await Promise.all(
        Array.from({ length: cluster.size }, async (_, index) => {
          const node = cluster.live().find((candidate) => candidate.index === index)
          if (node === undefined) return
          const ready = await node.request("/ready", { signal: AbortSignal.timeout(2_000) }).catch(() => undefined)
          if (ready?.status === 200) healthy.add(node.url)
          else healthy.delete(node.url)
        })
      )
      // A process that is down is no longer polled: forget it.
      for (const url of healthy) if (!cluster.live().some((node) => node.url === url)) healthy.delete(url)
      await sleep(intervalMs)
    }
  }
  const checking = check()
  const retries = { count: 0 }
  const send = async (path: string, init?: RequestInit): Promise<TestResponse> => {
    const deadline = Date.now() + 60_000
    for (;;) {
      const targets = [...healthy]
      if (targets.length > 0) {
        const url = targets[turn++ % targets.length]!
        try {
          return await requestAt(url, path, init)
        } catch (error) {
          if (!isConnectionFailure(error)) throw error
          retries.count++
          healthy.delete(url)
        }
      }
      if (Date.now() > deadline) throw new Error(`${init?.method ?? "GET"} ${path}: no process took it within 60 s`)
      await sleep(50)
    }
  }
  return {
    send,
    retries,
    healthyCount: () => healthy.size,
    stop: async () => {
      running = false
      await checking
    }
  }
}
