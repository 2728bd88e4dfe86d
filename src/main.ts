/** Starts Basalt: `npm start` (Node) or `deno task start` (Deno). */
import { NodeRuntime } from "@effect/platform-node"
import { Cause, Config, Effect, Exit, Layer, Logger, Option, Runtime } from "effect"
import { describeConfigError } from "./config/AppConfig.ts"
import { AppLive } from "./App.ts"
import { jsonLogger } from "./telemetry/JsonLogger.ts"

const main = Layer.launch(AppLive).pipe(
  Effect.tapCause((cause) =>
    Effect.sync(() => {
      const failure = Cause.findErrorOption(cause)
      if (Option.isSome(failure) && failure.value instanceof Config.ConfigError) {
        process.stderr.write(`basalt: invalid configuration: ${describeConfigError(failure.value)}\n`)
      }
    })
  ),
  // SIGTERM and SIGINT interrupt the server, which then drains: a stop, not an error.
  Effect.tapCause((cause) => (Cause.hasInterruptsOnly(cause) ? Effect.void : Effect.logFatal("Basalt stopped on an error", cause))),
  Effect.provide(Logger.layer([jsonLogger]))
)

/** A stop asked for by a signal ends with exit code 0 once Basalt has drained; a failure with 1. */
const teardown: Runtime.Teardown = (exit, onExit) =>
  Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? onExit(0) : Runtime.defaultTeardown(exit, onExit)

NodeRuntime.runMain(main, { disableErrorReporting: true, teardown })
