/**
 * Log lines as JSON on stdout: time, level, message, the request id and any other annotations,
 * and the trace and span ids of the span the line was written in, so logs and traces join up.
 */
import { Cause, Context, FiberRef, FiberRefs, HashMap, Logger, Option, Tracer } from "effect"

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
  process.stdout.write(`${JSON.stringify(entry)}\n`)
})
