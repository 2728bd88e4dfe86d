/**
 * Log lines as JSON on stdout: time, level, message, the request id and any other annotations,
 * and the trace and span ids of the span the line was written in, so logs and traces join up.
 */
import { Cause, Logger, References } from "effect"
import { writeSync } from "node:fs"

/**
 * Lines written in one turn of the event loop leave in one write: under load that is one system
 * call for many requests instead of one each. What is pending when the process exits is written
 * synchronously, so nothing logged before a clean exit is lost.
 */
let pending = ""
let flushScheduled = false
const flush = () => {
  flushScheduled = false
  if (pending === "") return
  const out = pending
  pending = ""
  process.stdout.write(out)
}
process.once("exit", () => {
  if (pending !== "") writeSync(1, pending)
})
const writeLine = (line: string) => {
  pending += `${line}\n`
  if (pending.length > 65_536) flush()
  else if (!flushScheduled) {
    flushScheduled = true
    setImmediate(flush)
  }
}

const text = (message: unknown): unknown => {
  const parts = Array.isArray(message) ? message : [message]
  return parts.length === 1 ? parts[0] : parts
}

export const jsonLogger = Logger.make(({ cause, date, fiber, logLevel, message }) => {
  const entry: Record<string, unknown> = {
    time: date.toISOString(),
    level: logLevel.toLowerCase(),
    message: text(message)
  }
  for (const [key, value] of Object.entries(fiber.getRef(References.CurrentLogAnnotations))) entry[key] = value
  // The fiber keeps its current span at hand: no Context lookup per line.
  const span = fiber.cache.span
  if (span !== undefined) {
    entry["trace_id"] = span.traceId
    entry["span_id"] = span.spanId
  }
  if (cause.reasons.length > 0) entry["error"] = Cause.pretty(cause)
  writeLine(JSON.stringify(entry))
})
