/** Starts Basalt: `npm start` (Node) or `deno task start` (Deno). */
import { NodeRuntime } from "@effect/platform-node"
import { ConfigError, Effect, Layer, Logger } from "effect"
import { describeConfigError } from "./config/AppConfig.ts"
import { AppLive } from "./App.ts"
import { jsonLogger } from "./telemetry/JsonLogger.ts"

const main = Layer.launch(AppLive).pipe(
  Effect.tapErrorCause((cause) =>
    Effect.sync(() => {
      const failure = cause._tag === "Fail" ? cause.error : undefined
      if (ConfigError.isConfigError(failure)) {
        process.stderr.write(`basalt: invalid configuration: ${describeConfigError(failure)}\n`)
      }
    })
  ),
  Effect.tapErrorCause((cause) => Effect.logFatal("Basalt stopped on an error", cause)),
  Effect.provide(Logger.replace(Logger.defaultLogger, jsonLogger))
)

NodeRuntime.runMain(main, { disableErrorReporting: true, disablePrettyLogger: true })
