/** Starts Basalt: `npm start` (Node) or `deno task start` (Deno). */
import { NodeRuntime } from "@effect/platform-node"
import { Cause, Duration, Effect, Exit, Layer, Logger, Runtime } from "effect"
import { AppConfigLive } from "../layers/AppConfigLive.ts"
import { AppLive } from "./App.ts"
import { AppConfig } from "./config/AppConfig.ts"
import { describeStartupFailure } from "./StartupFailure.ts"
import { jsonLogger } from "./telemetry/JsonLogger.ts"

/** Whether SIGTERM or SIGINT asked for the stop: an interruption without one is a fault, not a stop. */
let stopRequested = false
process.once("SIGTERM", () => {
  stopRequested = true
})
process.once("SIGINT", () => {
  stopRequested = true
})

/** What the layers may take to close after the drain (the database's checkpoint, the exporters' flush). */
const teardownBound = Duration.seconds(30)

/**
 * Once SIGTERM or SIGINT has come, the process ends within BASALT_SHUTDOWN_GRACE plus
 * `teardownBound`, whatever happens: a layer that waits on a database that no longer answers
 * would otherwise keep it alive.
 */
const BoundedStopLive = Layer.effectDiscard(
  AppConfig.useSync(({ shutdownGrace }) => {
    const bound = Duration.sum(shutdownGrace, teardownBound)
    const arm = () => {
      setTimeout(() => {
        process.stderr.write(`basalt: the shutdown did not finish within ${Duration.format(bound)} of the signal: exiting\n`)
        process.exit(1)
      }, Duration.toMillis(bound)).unref()
    }
    process.once("SIGTERM", arm)
    process.once("SIGINT", arm)
  })
).pipe(Layer.provide(AppConfigLive))

const main = Layer.launch(AppLive.pipe(Layer.provide(BoundedStopLive))).pipe(
  Effect.tapCause((cause) => {
    // A failure Basalt knows (configuration, port, data directory, database) is one line; a bug in full.
    const line = describeStartupFailure(cause)
    if (line !== undefined) return Effect.sync(() => process.stderr.write(`basalt: ${line}\n`))
    // SIGTERM and SIGINT interrupt the server, which then drains: a stop, not an error.
    if (Cause.hasInterruptsOnly(cause) && stopRequested) return Effect.void
    return Cause.hasInterruptsOnly(cause)
      ? Effect.logFatal("Basalt stopped: interrupted without a stop signal")
      : Effect.logFatal("Basalt stopped on an error", cause)
  }),
  Effect.provide(Logger.layer([jsonLogger]))
)

/**
 * A stop asked for by a signal ends with exit code 0 once Basalt has drained; a failure, or an
 * interruption no signal asked for, with 1 (so that an orchestrator restarts it).
 */
const teardown: Runtime.Teardown = (exit, onExit) =>
  Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? onExit(stopRequested ? 0 : 1) : Runtime.defaultTeardown(exit, onExit)

NodeRuntime.runMain(main, { disableErrorReporting: true, teardown })
