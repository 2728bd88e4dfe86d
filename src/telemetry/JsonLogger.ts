/**
 * Log lines as JSON on stdout: time, level, message, the request id and any other annotations,
 * and the trace and span ids of the span the line was written in, so logs and traces join up.
 */
import { Cause, Context, FiberRef, FiberRefs, HashMap, Logger, Option, Tracer } from "effect"
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

export const jsonLogger = Logger.make(({ annotations, cause, context, date, logLevel, message }) => {
  const entry: Record<string, unknown> = {
    time: date.toISOString(),
    level: logLevel.label.toLowerCase(),
    message: text(message)
  }
  for (const [key, value] of HashMap.toEntries(annotations)) entry[key] = value
  const span = Context.getOption(FiberRefs.getOrDefault(context, FiberRef.currentContext), Tracer.ParentSpan)
  if (Option.isSome(span)) {
    entry["trace_id"] = span.value.traceId
    entry["span_id"] = span.value.spanId
  }
  if (!Cause.isEmpty(cause)) entry["error"] = Cause.pretty(cause, { renderErrorCause: true })
  writeLine(JSON.stringify(entry))
})
