/** Request count and latency, exported over OTLP with the traces when telemetry is on. */
import { Metric, MetricBoundaries } from "effect"

export const httpRequests = Metric.counter("http.server.requests", {
  description: "HTTP requests served, by method, route and status code",
  incremental: true
})

export const httpDuration = Metric.histogram(
  "http.server.request.duration",
  MetricBoundaries.exponential({ start: 0.5, factor: 2, count: 14 }),
  "HTTP request latency in milliseconds, by method, route and status code"
)
