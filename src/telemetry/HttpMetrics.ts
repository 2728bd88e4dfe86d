/**
 * Request count and latency, exported over OTLP with the traces when telemetry is on. Names and
 * units follow OpenTelemetry's HTTP semantic conventions (durations in seconds).
 */
import { Metric } from "effect"

export const httpRequests = Metric.counter("http.server.requests", {
  description: "HTTP requests served, by method, route and status code",
  incremental: true
})

// OpenTelemetry's recommended boundaries for http.server.request.duration.
export const httpDuration = Metric.histogram("http.server.request.duration", {
  description: "Duration of HTTP server requests, in seconds, by method, route and status code",
  boundaries: Metric.boundariesFromIterable([0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10])
})
