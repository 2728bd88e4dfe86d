/**
 * Logging and, when OTEL_EXPORTER_OTLP_ENDPOINT is set, traces, metrics and logs over OTLP/HTTP
 * (Effect's own SDK-free exporter, which runs under Deno as well). On shutdown the exporters
 * flush what they hold.
 */
import { Layer, Logger, Option, Redacted, References } from "effect"
import { FetchHttpClient } from "effect/http"
import { Otlp } from "effect/observability"
import { AppConfig } from "../src/config/AppConfig.ts"
import { jsonLogger } from "../src/telemetry/JsonLogger.ts"

const serviceVersion = "0.1.0"

export const LoggerLive = Layer.unwrap(
  AppConfig.useSync((config) => Layer.merge(Logger.layer([jsonLogger]), Layer.succeed(References.MinimumLogLevel, config.logLevel)))
)

export const TelemetryLive = Layer.unwrap(
  AppConfig.useSync(({ telemetry }) =>
    Option.match(telemetry.otlpEndpoint, {
      onNone: () => Layer.empty,
      onSome: (baseUrl) =>
        Otlp.layerJson({
          baseUrl,
          resource: { serviceName: telemetry.serviceName, serviceVersion },
          headers: Redacted.value(telemetry.otlpHeaders),
          tracerExportInterval: "1 second",
          metricsExportInterval: "10 seconds",
          // Beside the JSON lines on stdout, not instead of them.
          loggerMergeWithExisting: true
        }).pipe(Layer.provide(FetchHttpClient.layer))
    })
  )
)
