/**
 * Chat runs' events: stored in order, replayed from a position, followed live (in the process
 * that writes them and in another one on the same database), ended by the terminal event; the
 * stop signal across processes; retention; and the server-sent events framing.
 */
import { randomUUID } from "node:crypto"
import { Effect, Exit, Stream } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type NewRunEvent, type RunEvent, RunEvents } from "../src/chat/RunEvents.ts"
import { frame, heartbeat, withHeartbeat } from "../src/http/ServerSentEvents.ts"
import { freshPostgresDatabase, startServer, type TestServer } from "./support/server.ts"

type Runs = RunEvents["Service"]

/** Runs `f` with the server's RunEvents (its runtime has one; `run` is typed for the SqlClient only). */
const withRuns = <A, E>(server: TestServer, f: (runs: Runs) => Effect.Effect<A, E>) =>
  server.run(RunEvents.use(f) as unknown as Effect.Effect<A, E>)

/** An assistant message being generated, in a session of a user of its own. */
const newRun = async (server: TestServer) => {
  const [user] = await server.query<{ id: string }>(
    "INSERT INTO users (email, display_name, role) VALUES ($1, 'Runner', 'basic') RETURNING id",
    [`run-${randomUUID()}@example.com`]
  )
  const [session] = await server.query<{ id: string }>("INSERT INTO chat_sessions (owner_id, title) VALUES ($1, 'Runs') RETURNING id", [
    user!.id
  ])
  const [message] = await server.query<{ id: string }>(
    "INSERT INTO chat_messages (session_id, role, content, status) VALUES ($1, 'assistant', '', 'generating') RETURNING id",
    [session!.id]
  )
  return message!.id
}

const append = (server: TestServer, messageId: string, events: ReadonlyArray<NewRunEvent>) =>
  withRuns(server, (runs) => runs.append(messageId, events))

const follow = (server: TestServer, messageId: string, afterSeq = 0) =>
  withRuns(server, (runs) => Effect.map(Stream.runCollect(runs.follow(messageId, afterSeq)), (events) => [...events]))

const tokens = (...texts: ReadonlyArray<string>): ReadonlyArray<NewRunEvent> => texts.map((text) => ({ type: "token", data: { text } }))
const start: NewRunEvent = { type: "message_start", data: { message_id: "m" } }
const end: NewRunEvent = { type: "message_end", data: { finish_reason: "stop" } }

const summary = (events: ReadonlyArray<RunEvent>) => events.map(({ data, seq, type }) => `${seq}:${type}:${(data as any)?.text ?? ""}`)

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe("chat run events", () => {
  let server: TestServer
  beforeAll(async () => {
    server = await startServer()
  }, 60_000)
  afterAll(() => server?.stop())

  it("stores a batch after the run's last events, and the terminal event finishes the run", async () => {
    const id = await newRun(server)
    expect(await append(server, id, [start, ...tokens("a", "b")])).toEqual([1, 2, 3])
    expect(await append(server, id, [])).toEqual([])
    const [before] = await server.query<{ finished_at: Date | null }>("SELECT finished_at FROM chat_messages WHERE id = $1", [id])
    expect(before!.finished_at).toBeNull()
    expect(await append(server, id, [...tokens("c"), end])).toEqual([4, 5])
    const [after] = await server.query<{ finished_at: Date | null }>("SELECT finished_at FROM chat_messages WHERE id = $1", [id])
    expect(after!.finished_at).not.toBeNull()
  })

  it("gives concurrent writers of one run consecutive, distinct seqs", async () => {
    const id = await newRun(server)
    const batches = await Promise.all(Array.from({ length: 8 }, (_, n) => append(server, id, tokens(`${n}a`, `${n}b`))))
    expect(batches.flat().sort((a, b) => a - b)).toEqual(Array.from({ length: 16 }, (_, n) => n + 1))
    for (const seqs of batches) expect(seqs[1]).toBe(seqs[0]! + 1)
  })

  it("replays from the start in order and ends after the terminal event", async () => {
    const id = await newRun(server)
    await append(server, id, [start, ...tokens("Hel", "lo")])
    await append(server, id, [end])
    // Not sent: nothing follows the end of a run.
    await append(server, id, tokens("late"))
    expect(summary(await follow(server, id))).toEqual(["1:message_start:", "2:token:Hel", "3:token:lo", "4:message_end:"])
  })

  it("replays from a position, and ends at once when everything after it was sent", async () => {
    const id = await newRun(server)
    await append(server, id, [start, ...tokens("a", "b", "c"), end])
    expect(summary(await follow(server, id, 2))).toEqual(["3:token:b", "4:token:c", "5:message_end:"])
    expect(await follow(server, id, 5)).toEqual([])
    expect(await follow(server, id, 99)).toEqual([])
  })

  it("replays a long run in pages", async () => {
    const id = await newRun(server)
    const texts = Array.from({ length: 2_500 }, (_, n) => `t${n}`)
    await append(server, id, [start, ...tokens(...texts), end])
    const events = await follow(server, id)
    expect(events.length).toBe(2_502)
    expect(events.map(({ seq }) => seq)).toEqual(Array.from({ length: 2_502 }, (_, n) => n + 1))
  })

  it("follows live what is appended after it started", async () => {
    const id = await newRun(server)
    const followed = follow(server, id)
    await sleep(150)
    await append(server, id, [start])
    await sleep(150)
    const startedAt = Date.now()
    await append(server, id, tokens("x", "y"))
    await append(server, id, [{ type: "error", data: { code: "ProviderUnavailable", retryable: true } }])
    const events = await followed
    expect(summary(events)).toEqual(["1:message_start:", "2:token:x", "3:token:y", "4:error:"])
    // Woken in-process, not by the once-a-second poll.
    expect(Date.now() - startedAt).toBeLessThan(900)
  })

  it("answers a stop request once, until the run finishes, and signals it", async () => {
    const id = await newRun(server)
    const stopped = withRuns(server, (runs) => runs.stopRequested(id))
    await sleep(100)
    const requestedAt = Date.now()
    expect(await withRuns(server, (runs) => runs.requestStop(id))).toBe(true)
    await stopped
    expect(Date.now() - requestedAt).toBeLessThan(900)
    // Already requested: still true, and the signal completes at once.
    expect(await withRuns(server, (runs) => runs.requestStop(id))).toBe(true)
    await withRuns(server, (runs) => runs.stopRequested(id))
    await append(server, id, [{ type: "message_end", data: { finish_reason: "stopped" } }])
    const finished = await newRun(server)
    await append(server, finished, [start, end])
    expect(await withRuns(server, (runs) => runs.requestStop(finished))).toBe(false)
    expect(await withRuns(server, (runs) => runs.requestStop(randomUUID()))).toBe(false)
  })

  it("fails as expired for a message that does not exist", async () => {
    const exit = await withRuns(server, (runs) => Effect.exit(Stream.runCollect(runs.follow(randomUUID(), 0))))
    expect(Exit.isFailure(exit) && String(exit.cause)).toContain("RunEventsExpired")
  })
})

describe("chat run events retention", () => {
  it("deletes finished runs' events after the retention, and a follow then fails as expired", async () => {
    // A database of its own: a retention this short would delete other test files' runs.
    const server = await startServer({ BASALT_CHAT_RUN_RETENTION: "1 millis" }, { emptyDatabase: true })
    try {
      const finished = await newRun(server)
      await append(server, finished, [start, ...tokens("a"), end])
      const running = await newRun(server)
      await append(server, running, [start, ...tokens("b")])
      await sleep(20)
      expect(await withRuns(server, (runs) => runs.pruneExpired)).toBe(3)
      const kept = await server.query<{ message_id: string; n: number }>(
        "SELECT message_id, count(*)::integer AS n FROM chat_run_events GROUP BY message_id"
      )
      expect(kept).toEqual([{ message_id: running, n: 2 }])
      const exit = await withRuns(server, (runs) => Effect.exit(Stream.runCollect(runs.follow(finished, 0))))
      expect(Exit.isFailure(exit) && String(exit.cause)).toContain("RunEventsExpired")
      // From any position: the client cannot know whether it had the end.
      const resumed = await withRuns(server, (runs) => Effect.exit(Stream.runCollect(runs.follow(finished, 3))))
      expect(Exit.isFailure(resumed) && String(resumed.cause)).toContain("RunEventsExpired")
    } finally {
      await server.stop()
    }
  }, 60_000)

  it("keeps them by default for an hour", async () => {
    const server = await startServer({}, { emptyDatabase: true })
    try {
      const finished = await newRun(server)
      await append(server, finished, [start, end])
      expect(await withRuns(server, (runs) => runs.pruneExpired)).toBe(0)
      expect(summary(await follow(server, finished))).toEqual(["1:message_start:", "2:message_end:"])
    } finally {
      await server.stop()
    }
  }, 60_000)
})

describe.runIf(process.env.DATABASE_URL)("chat run events across processes", () => {
  let database: Awaited<ReturnType<typeof freshPostgresDatabase>>
  let writer: TestServer
  let reader: TestServer
  beforeAll(async () => {
    database = await freshPostgresDatabase()
    writer = await startServer({ DATABASE_URL: database.url })
    reader = await startServer({ DATABASE_URL: database.url })
  }, 120_000)
  afterAll(async () => {
    await reader?.stop()
    await writer?.stop()
    await database?.drop()
  })

  it("follows on one process what another appends, live, and ends with it", async () => {
    const id = await newRun(writer)
    const followed = follow(reader, id)
    await sleep(200)
    const latencies: Array<number> = []
    const seen = new Set<number>()
    const watch = withRuns(reader, (runs) => Stream.runForEach(runs.follow(id, 0), (event) => Effect.sync(() => seen.add(event.seq))))
    for (const [n, batch] of [[start], tokens("one"), tokens("two", "three"), tokens("four"), tokens("five")].entries()) {
      const sentAt = Date.now()
      const seqs = await append(writer, id, batch)
      while (!seen.has(seqs[seqs.length - 1]!)) {
        if (Date.now() - sentAt > 3_000) throw new Error(`batch ${n} not seen by the other process within 3 s`)
        await sleep(5)
      }
      latencies.push(Date.now() - sentAt)
      await sleep(150)
    }
    await append(writer, id, [end])
    await watch
    expect(summary(await followed)).toEqual([
      "1:message_start:",
      "2:token:one",
      "3:token:two",
      "4:token:three",
      "5:token:four",
      "6:token:five",
      "7:message_end:"
    ])
    // Woken by NOTIFY: by the once-a-second poll alone, five batches would hardly all arrive this soon.
    expect(Math.max(...latencies)).toBeLessThan(500)
    // Resumed on the other process from a position: the rest, exactly once.
    expect(summary(await follow(reader, id, 5))).toEqual(["6:token:five", "7:message_end:"])
  }, 30_000)

  it("signals a stop requested on one process to a runner on the other", async () => {
    const id = await newRun(writer)
    const stopped = withRuns(writer, (runs) => runs.stopRequested(id))
    await sleep(200)
    const requestedAt = Date.now()
    expect(await withRuns(reader, (runs) => runs.requestStop(id))).toBe(true)
    await stopped
    expect(Date.now() - requestedAt).toBeLessThan(900)
  }, 30_000)
})

describe("server-sent events framing", () => {
  it("frames an event with its id, its name and its data as JSON on one line", () => {
    expect(frame({ id: "7", event: "token", data: { text: "a\nb" } })).toBe('id: 7\nevent: token\ndata: {"text":"a\\nb"}\n\n')
    expect(frame({ event: "message_end", data: undefined })).toBe("event: message_end\ndata: null\n\n")
  })

  it("sends a heartbeat comment when nothing was sent for a while, and ends with the stream", async () => {
    const frames = Stream.make(frame({ id: "1", event: "token", data: "a" })).pipe(
      Stream.concat(Stream.fromEffect(Effect.as(Effect.sleep("350 millis"), frame({ id: "2", event: "token", data: "b" })))),
      Stream.concat(Stream.make(frame({ id: "3", event: "message_end", data: {} })))
    )
    const sent = [...(await Effect.runPromise(Stream.runCollect(withHeartbeat(frames, "100 millis"))))]
    const beats = sent.filter((text) => text === heartbeat).length
    expect(beats).toBeGreaterThanOrEqual(2)
    expect(beats).toBeLessThanOrEqual(4)
    expect(sent[0]).toContain("id: 1")
    expect(sent.filter((text) => text !== heartbeat)).toEqual([
      frame({ id: "1", event: "token", data: "a" }),
      frame({ id: "2", event: "token", data: "b" }),
      frame({ id: "3", event: "message_end", data: {} })
    ])
    expect(sent[sent.length - 1]).toContain("message_end")
    expect(heartbeat).toBe(": heartbeat\n\n")
  })

  it("sends no heartbeat on a stream that keeps sending", async () => {
    const frames = Stream.range(1, 5).pipe(
      Stream.mapEffect((n) => Effect.as(Effect.sleep("20 millis"), frame({ event: "token", data: n })))
    )
    const sent = [...(await Effect.runPromise(Stream.runCollect(withHeartbeat(frames, "200 millis"))))]
    expect(sent).not.toContain(heartbeat)
    expect(sent.length).toBe(5)
  })
})
