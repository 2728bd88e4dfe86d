/**
 * Logging and, when OTEL_EXPORTER_OTLP_ENDPOINT is set, traces, metrics and logs over OTLP/HTTP
 * (the SDK-free exporter of @effect/opentelemetry, which runs under Deno as well). On shutdown
 * the exporters flush what they hold.
 */
import { FetchHttpClient } from "@effect/platform"
import { Otlp } from "@effect/opentelemetry"
import { Effect, Layer, Logger, Option, Redacted } from "effect"
import { AppConfig } from "../src/config/AppConfig.ts"
import { jsonLogger } from "../src/telemetry/JsonLogger.ts"

const serviceVersion = "0.1.0"

export const LoggerLive = Layer.unwrapEffect(
  Effect.map(AppConfig, (config) =>
    Layer.merge(Logger.replace(Logger.defaultLogger, jsonLogger), Logger.minimumLogLevel(config.logLevel)))
)

export const TelemetryLive = Layer.unwrapEffect(
  Effect.map(AppConfig, ({ telemetry }) =>
    Option.match(telemetry.otlpEndpoint, {
      onNone: () => Layer.empty,
      onSome: (baseUrl) =>
        Otlp.layerJson({
          baseUrl,
          resource: { serviceName: telemetry.serviceName, serviceVersion },
          headers: Redacted.value(telemetry.otlpHeaders),
          tracerExportInterval: "1 second",
          metricsExportInterval: "10 seconds"
        }).pipe(Layer.provide(FetchHttpClient.layer))
    }))
)
