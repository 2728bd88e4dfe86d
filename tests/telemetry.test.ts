/**
 * Telemetry end to end: the real server exports over OTLP/HTTP (JSON) to a real receiver on
 * loopback, and one traced request is followed through its server span, its SQL spans, its
 * metrics and its JSON log line.
 */
import { randomBytes } from "node:crypto"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { settled, signUp } from "./support/people.ts"
import { startServer, type TestResponse, type TestServer } from "./support/server.ts"

// The OTLP JSON encoding, as far as these tests read it.
interface AnyValue {
  readonly stringValue?: string
  readonly intValue?: number | string
  readonly doubleValue?: number
  readonly boolValue?: boolean
}
interface KeyValue {
  readonly key: string
  readonly value: AnyValue
}
interface OtlpSpan {
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId?: string
  readonly name: string
  readonly startTimeUnixNano: string
  readonly kind: number
  readonly attributes: ReadonlyArray<KeyValue>
}
interface OtlpDataPoint {
  readonly attributes: ReadonlyArray<KeyValue>
  readonly asInt?: number | string
  readonly asDouble?: number
  readonly count?: number | string
}
interface OtlpMetric {
  readonly name: string
  readonly sum?: { readonly dataPoints: ReadonlyArray<OtlpDataPoint>; readonly isMonotonic?: boolean }
  readonly histogram?: { readonly dataPoints: ReadonlyArray<OtlpDataPoint> }
}
interface OtlpLogRecord {
  readonly traceId?: string
  readonly spanId?: string
  readonly body?: AnyValue
  readonly attributes?: ReadonlyArray<KeyValue>
}

const SpanKindServer = 2
const SpanKindClient = 3

/** An attribute's value as a string or number, whichever the encoding carries. */
const attribute = (attributes: ReadonlyArray<KeyValue> | undefined, key: string): string | number | boolean | undefined => {
  const value = attributes?.find((entry) => entry.key === key)?.value
  if (value === undefined) return undefined
  if (value.stringValue !== undefined) return value.stringValue
  if (value.intValue !== undefined) return Number(value.intValue)
  return value.doubleValue ?? value.boolValue
}

/** A node:http OTLP/HTTP receiver: keeps every JSON body POSTed to /v1/{traces,metrics,logs}. */
const startReceiver = async () => {
  const received = { traces: [] as Array<any>, metrics: [] as Array<any>, logs: [] as Array<any> }
  const rejected: Array<string> = []
  const server: Server = createServer((request, response) => {
    const signal = /^\/v1\/(traces|metrics|logs)$/.exec(request.url ?? "")?.[1] as keyof typeof received | undefined
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => {
      const isJson = request.headers["content-type"]?.startsWith("application/json") === true
      if (request.method !== "POST" || signal === undefined || !isJson) {
        rejected.push(`${request.method} ${request.url} ${request.headers["content-type"]}`)
        response.writeHead(404).end()
        return
      }
      received[signal].push(JSON.parse(Buffer.concat(chunks).toString("utf8")))
      response.writeHead(200, { "content-type": "application/json" }).end("{}")
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    rejected,
    spans: (): Array<OtlpSpan> =>
      received.traces.flatMap((body) =>
        (body.resourceSpans ?? []).flatMap((resource: any) => (resource.scopeSpans ?? []).flatMap((scope: any) => scope.spans ?? []))
      ),
    metrics: (): Array<OtlpMetric> =>
      received.metrics.flatMap((body) =>
        (body.resourceMetrics ?? []).flatMap((resource: any) => (resource.scopeMetrics ?? []).flatMap((scope: any) => scope.metrics ?? []))
      ),
    logRecords: (): Array<OtlpLogRecord> =>
      received.logs.flatMap((body) =>
        (body.resourceLogs ?? []).flatMap((resource: any) => (resource.scopeLogs ?? []).flatMap((scope: any) => scope.logRecords ?? []))
      ),
    close: () => new Promise<void>((resolve) => server.close(() => resolve()))
  }
}

/** Polls `probe` until it returns a value, for at most `boundMs` (a bound, not a measurement). */
const eventually = async <A>(what: string, probe: () => A | undefined, describeState: () => string, boundMs = 15_000) => {
  const deadline = Date.now() + boundMs
  for (;;) {
    const found = probe()
    if (found !== undefined) return found
    if (Date.now() > deadline) throw new Error(`${what} did not arrive within ${boundMs} ms; ${describeState()}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** Collects the JSON log lines the server writes to stdout, passing anything else through. */
const captureLogLines = () => {
  const lines: Array<string> = []
  const write = process.stdout.write
  process.stdout.write = ((chunk: unknown, ...rest: Array<unknown>) => {
    // The logger writes whole lines, several at a time when they come together.
    if (typeof chunk === "string" && chunk.startsWith("{") && chunk.endsWith("\n")) {
      lines.push(...chunk.trimEnd().split("\n"))
      return true
    }
    return (write as (...args: Array<unknown>) => boolean).call(process.stdout, chunk, ...rest)
  }) as typeof process.stdout.write
  return {
    entries: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>),
    restore: () => {
      process.stdout.write = write
    }
  }
}

describe("telemetry over OTLP/HTTP", () => {
  const callerTraceId = randomBytes(16).toString("hex")
  const callerSpanId = randomBytes(8).toString("hex")
  const requestId = `telemetry-${randomBytes(6).toString("hex")}`
  let receiver: Awaited<ReturnType<typeof startReceiver>>
  let logs: ReturnType<typeof captureLogLines>
  let server: TestServer | undefined
  let ready: TestResponse

  const stopServer = async () => {
    const running = server
    server = undefined
    await running?.stop()
  }

  beforeAll(async () => {
    receiver = await startReceiver()
    logs = captureLogLines()
    server = await startServer({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, LOG_LEVEL: "info" })
    ready = await server.request("/ready", {
      headers: { traceparent: `00-${callerTraceId}-${callerSpanId}-01`, "x-request-id": requestId }
    })
  })

  afterAll(async () => {
    try {
      await stopServer()
    } finally {
      logs?.restore()
      await receiver?.close()
    }
  })

  const callerSpans = () => receiver.spans().filter((span) => span.traceId === callerTraceId)
  const describeSpans = () =>
    `spans of the caller's trace: ${JSON.stringify(callerSpans().map(({ name, spanId, parentSpanId, kind }) => ({ name, spanId, parentSpanId, kind })))}; ` +
    `${receiver.spans().length} spans in all; rejected: ${JSON.stringify(receiver.rejected)}`
  const serverSpan = () => eventually("the server span", () => callerSpans().find((span) => span.kind === SpanKindServer), describeSpans)

  it("answers the traced request", () => {
    expect(ready.status).toBe(200)
    expect(ready.headers.get("x-request-id")).toBe(requestId)
  })

  it("exports the request's server span as a child of the caller's span", async () => {
    const span = await serverSpan()
    expect(span.name).toBe("http.server GET")
    expect(span.parentSpanId).toBe(callerSpanId)
    expect(span.spanId).toMatch(/^[0-9a-f]{16}$/)
    expect(span.spanId).not.toBe(callerSpanId)
    expect(attribute(span.attributes, "http.route")).toBe("/ready")
    expect(attribute(span.attributes, "http.request.method")).toBe("GET")
    expect(attribute(span.attributes, "http.response.status_code")).toBe(200)
    expect(attribute(span.attributes, "url.path")).toBe("/ready")
    expect(attribute(span.attributes, "http.request.id")).toBe(requestId)
    const resources = receiver.received.traces.flatMap((body) => body.resourceSpans.map((resource: any) => resource.resource))
    for (const resource of resources) expect(attribute(resource.attributes, "service.name")).toBe("basalt")
  })

  it("exports the request's SQL statements as descendants of the server span", async () => {
    const root = await serverSpan()
    const isDescendantOfRoot = (span: OtlpSpan) => {
      const byId = new Map(callerSpans().map((each) => [each.spanId, each]))
      for (let parent = span.parentSpanId; parent !== undefined && parent !== ""; parent = byId.get(parent)?.parentSpanId) {
        if (parent === root.spanId) return true
      }
      return false
    }
    const sqlSpans = await eventually(
      "the readiness query's SQL span",
      () => {
        // A statement's span is named after its database (OpenTelemetry's convention) and carries its text.
        const found = callerSpans().filter((span) => attribute(span.attributes, "db.query.text") !== undefined)
        return found.some((span) => String(attribute(span.attributes, "db.query.text")).includes("basalt_migrations")) ? found : undefined
      },
      describeSpans
    )
    for (const span of sqlSpans) {
      expect(span.kind).toBe(SpanKindClient)
      expect(span.name).toBe(attribute(span.attributes, "db.namespace"))
      expect(isDescendantOfRoot(span)).toBe(true)
      expect(attribute(span.attributes, "db.system.name")).toBe("postgresql")
      expect(attribute(span.attributes, "db.query.text")).toMatch(/\bSELECT\b/i)
    }
  })

  it("logs the request as one JSON line carrying the caller's trace id and the request id", async () => {
    const requestLines = await eventually(
      "the request's log line",
      () => {
        const found = logs.entries().filter((entry) => entry["request_id"] === requestId)
        return found.length > 0 ? found : undefined
      },
      () => `captured ${logs.entries().length} log lines`
    )
    expect(requestLines).toHaveLength(1)
    const [line] = requestLines
    expect(line).toMatchObject({ level: "info", message: "GET /ready 200", route: "/ready", trace_id: callerTraceId })
    // The line is written inside the server span.
    expect(line!["span_id"]).toBe((await serverSpan()).spanId)
  })

  // Last: stopping the server flushes the exporters (metrics are exported every 10 s otherwise).
  it("exports the request's metrics and log record, flushed on shutdown", async () => {
    await stopServer()
    const labels = (point: OtlpDataPoint) => ({
      method: attribute(point.attributes, "http.request.method"),
      route: attribute(point.attributes, "http.route"),
      status: attribute(point.attributes, "http.response.status_code")
    })
    const isReadyRequest = (point: OtlpDataPoint) =>
      JSON.stringify(labels(point)) === JSON.stringify({ method: "GET", route: "/ready", status: "200" })
    // Cumulative values: the last export holds the totals.
    const last = (name: string) =>
      receiver
        .metrics()
        .filter((metric) => metric.name === name)
        .at(-1)

    const requests = last("http.server.requests")
    expect(requests?.sum?.isMonotonic).toBe(true)
    const readyCount = requests?.sum?.dataPoints.filter(isReadyRequest) ?? []
    expect(readyCount).toHaveLength(1)
    expect(Number(readyCount[0]!.asInt ?? readyCount[0]!.asDouble)).toBe(1)

    const duration = last("http.server.request.duration")
    const readyDuration = duration?.histogram?.dataPoints.filter(isReadyRequest) ?? []
    expect(readyDuration).toHaveLength(1)
    expect(Number(readyDuration[0]!.count)).toBe(1)

    // The same log line, exported as an OTLP log record in the caller's trace.
    const records = receiver.logRecords().filter((record) => attribute(record.attributes, "request_id") === requestId)
    expect(records.map((record) => record.traceId)).toEqual([callerTraceId])
    expect(receiver.rejected).toEqual([])
  })
})

describe("telemetry of an idle server", () => {
  let receiver: Awaited<ReturnType<typeof startReceiver>>
  let server: TestServer

  beforeAll(async () => {
    receiver = await startReceiver()
    server = await startServer({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, BASALT_ALLOW_SIGNUP: "true" })
  })

  afterAll(async () => {
    try {
      await server?.stop()
    } finally {
      await receiver?.close()
    }
  })

  const nanos = (at: number) => BigInt(at) * 1_000_000n
  const spansBetween = (from: number, to: number) =>
    receiver.spans().filter((span) => BigInt(span.startTimeUnixNano) >= nanos(from) && BigInt(span.startTimeUnixNano) < nanos(to))
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

  it("exports no spans while no request comes (background polling that finds nothing is not traced)", async () => {
    // Start-up (the migrations) is traced; the quiet after it must not be. The search statistics
    // are looked at every 2 s: several rounds fall in the window.
    const from = Date.now()
    await sleep(7_000)
    const to = Date.now()
    await sleep(1_500) // spans are exported every second
    const idle = spansBetween(from, to)
    expect(idle.map((span) => span.name)).toEqual([])
  })

  it("still traces a background round that finds work", async () => {
    const ada = await signUp(server, "ada")
    const created = await server.request(
      "/api/v1/documents",
      ada.json("POST", { title: "Basalt", content: "Columns of cooled lava.", source: "api" })
    )
    expect(created.status).toBe(202)
    await settled(ada, created.json().id)
    // Indexing appended statistics deltas: the next round folds them, traced.
    const fold = await eventually(
      "the traced fold of the search statistics",
      () => receiver.spans().find((span) => span.name === "SearchStatistics.fold"),
      () => `spans: ${[...new Set(receiver.spans().map((span) => span.name))].join(", ")}`
    )
    expect(fold.parentSpanId ?? "").toBe("")
  })
})
