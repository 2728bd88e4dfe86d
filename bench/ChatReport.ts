/** bench/chat.ts's figures: one row per arrival mode and stream count, the table and the goals. */

export type Arrival = "burst" | "ramp"

export const percentile = (values: ReadonlyArray<number>, p: number): number | undefined => {
  if (values.length === 0) return undefined
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]
}
export const ms = (value: number | undefined) => (value === undefined ? "n/a" : value.toFixed(1))
export const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1)

export interface RunResult {
  readonly arrival: Arrival
  /** Between two chats' starts in ramp mode. */
  readonly rampMs: number | undefined
  readonly streams: number
  readonly retrievalP50: number
  readonly addedP50: number | undefined
  readonly addedP95: number | undefined
  /** Over the chats started while at least half of `streams` were open: "at N open streams". */
  readonly atHalfOpenP50: number | undefined
  readonly atHalfOpenP95: number | undefined
  readonly atHalfOpenCount: number
  readonly clientTtftP50: number | undefined
  readonly providerTtftP50: number | undefined
  readonly beforeProviderP50: number | undefined
  readonly relayP50: number | undefined
  readonly relayP95: number | undefined
  readonly idleRss: number
  readonly heldRss: number
  readonly openAtSample: number
  readonly peakRss: number
  readonly lost: number
  readonly errorEvents: number
  readonly httpFailures: number
  readonly violations: number | undefined
  readonly totalMs: number
  readonly loopDelayP99: number
  /** This process's CPU time over the run's wall time: the client, the relay and the fake provider together. */
  readonly benchCpuShare: number
  /** Basalt A's CPU time (from /proc) per stream, over the whole run. */
  readonly basaltCpuMsPerStream: number | undefined
  /** The same up to the hold (every stream open, none past its first tokens): in a ramp, what arrivals alone cost. */
  readonly basaltCpuMsPerStreamToHold: number | undefined
  /** The local Postgres server's CPU time for the bench's database per stream; undefined on PGlite. */
  readonly postgresCpuMsPerStream: number | undefined
  readonly unmatched: number
}

const pair = (a: number | undefined, b: number | undefined) => `${ms(a)} / ${ms(b)}`

export const printTable = (results: ReadonlyArray<RunResult>, withResume: boolean, onPostgres: boolean) => {
  const header = [
    "arrival",
    "streams",
    "added TTFT p50 / p95 ms",
    "at ≥ N/2 open: added TTFT p50 / p95 ms (chats)",
    "client TTFT p50 ms",
    "provider TTFT p50 ms",
    "request→provider p50 ms",
    "provider→client p50 / p95 ms",
    "retrieval p50 ms",
    "RSS idle MB",
    "RSS open MB",
    "open at reading",
    "KB per stream",
    "RSS peak MB",
    "lost",
    "error events",
    "HTTP failures",
    ...(withResume ? ["resume violations"] : []),
    "total s",
    "Basalt A CPU ms/stream to hold / in all",
    ...(onPostgres ? ["Postgres CPU ms/stream"] : []),
    "bench loop delay p99 ms",
    "bench CPU %"
  ]
  const rows = results.map((r) => [
    r.arrival === "ramp" ? `ramp ${r.rampMs} ms` : "burst",
    String(r.streams),
    pair(r.addedP50, r.addedP95),
    r.atHalfOpenCount === 0 ? "n/a (0)" : `${pair(r.atHalfOpenP50, r.atHalfOpenP95)} (${r.atHalfOpenCount})`,
    ms(r.clientTtftP50),
    ms(r.providerTtftP50),
    ms(r.beforeProviderP50),
    pair(r.relayP50, r.relayP95),
    ms(r.retrievalP50),
    mb(r.idleRss),
    mb(r.heldRss),
    String(r.openAtSample),
    r.openAtSample === 0 ? "n/a" : ((r.heldRss - r.idleRss) / r.openAtSample / 1024).toFixed(1),
    mb(r.peakRss),
    String(r.lost),
    String(r.errorEvents),
    String(r.httpFailures),
    ...(withResume ? [String(r.violations ?? "n/a")] : []),
    (r.totalMs / 1_000).toFixed(1),
    pair(r.basaltCpuMsPerStreamToHold, r.basaltCpuMsPerStream),
    ...(onPostgres ? [ms(r.postgresCpuMsPerStream)] : []),
    r.loopDelayP99.toFixed(1),
    (r.benchCpuShare * 100).toFixed(0)
  ])
  const line = (cells: ReadonlyArray<string>) => `| ${cells.join(" | ")} |`
  const unmatched = Math.max(0, ...results.map((r) => r.unmatched))
  console.log(
    `\n${[line(header), line(header.map((_, i) => (i < 2 ? "---" : "---:"))), ...rows.map(line)].join("\n")}\n\n` +
      `Added TTFT = the client's time to its first token event − the provider's own time to its first token (per request, from\n` +
      `the relay) − retrieval's p50 (POST /api/v1/search's X-Process-Time, timed apart on the same Basalt). "At ≥ N/2 open" counts\n` +
      `the chats requested while at least half of N streams were open at the client (none in a burst: all start at once).\n` +
      `RSS is Basalt A's VmRSS, idle before the streams and with them held open; KB per stream = (open − idle) / open. Each\n` +
      `arrival mode runs on a Basalt and a database of its own.` +
      (unmatched > 0 ? ` Provider requests not tied to a question: ${unmatched}.` : "")
  )
}

export const printGoals = (results: ReadonlyArray<RunResult>, withResume: boolean) => {
  const verdict = (met: boolean | undefined) => (met === undefined ? "not measured" : met ? "met" : "NOT met")
  const ttft = (arrival: Arrival) => {
    const at100 = results.find((r) => r.streams === 100 && r.arrival === arrival)
    if (at100 === undefined) return undefined
    // A burst has no chat that starts with streams already open: its figure is over all of them.
    const p95 = arrival === "burst" ? at100.addedP95 : at100.atHalfOpenP95
    const label = arrival === "burst" ? "burst, all 100" : `ramp ${at100.rampMs} ms, at ≥ 50 open`
    return `${label}: ${verdict(p95 === undefined ? undefined : p95 < 30)} (${ms(p95)})`
  }
  const ttftVerdicts = (["burst", "ramp"] as const).flatMap((arrival) => ttft(arrival) ?? [])
  const memory = results
    .filter((r) => r.streams === 1000)
    .map(
      (r) =>
        `${r.arrival} ${verdict(r.heldRss - r.idleRss < 300 * 1024 * 1024 && r.openAtSample === 1000)} ` +
        `(${mb(r.heldRss - r.idleRss)} MB over idle, ${mb(r.heldRss)} MB in all, ${r.openAtSample} open)`
    )
  const lostTotal = results.reduce((sum, r) => sum + r.lost + r.errorEvents + r.httpFailures, 0)
  const violationTotal = withResume ? results.reduce((sum, r) => sum + (r.violations ?? 0), 0) : undefined
  console.log(
    `\nGoals (issue 14): added TTFT p95 < 30 ms at 100: ${ttftVerdicts.length === 0 ? "not measured" : ttftVerdicts.join(", ")}` +
      `; 1,000 open streams add under 300 MB RSS: ${memory.length === 0 ? "not measured" : memory.join(", ")}` +
      `; no stream lost: ${verdict(lostTotal === 0)} (${lostTotal})` +
      `; resume exactly once: ${verdict(violationTotal === undefined ? undefined : violationTotal === 0)}` +
      (violationTotal === undefined ? "" : ` (${violationTotal} violations)`)
  )
}
