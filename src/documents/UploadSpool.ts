/**
 * Where uploads are spooled: a directory per request (`basalt-upload-*`) under the system's
 * temporary directory, removed with the request. A process killed mid-upload cannot remove its
 * own, so every process sweeps, at start and then hourly, the spool directories older than any
 * upload lives (several processes may share one temporary directory: a live upload's is young).
 */
import { Duration, Effect, FileSystem, Layer, Option, Path } from "effect"
import { tmpdir } from "node:os"
import { cleanUpEvery } from "../database/Cleanup.ts"

export const spoolPrefix = "basalt-upload-"

/** Far beyond the longest upload: its body (BASALT_UPLOAD_TIMEOUT) and then the extraction of its files. */
const staleAfter = Duration.hours(6)
const sweepInterval = Duration.hours(1)

/** Removes the spool directories in `directory` last changed before `cutoff`; how many. */
export const sweepSpools = (directory: string, cutoff: Date) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    let removed = 0
    for (const name of yield* fs.readDirectory(directory)) {
      if (!name.startsWith(spoolPrefix)) continue
      const spool = path.join(directory, name)
      // Gone meanwhile (its request ended, another process swept it), or not ours to read: left alone.
      const info = yield* Effect.option(fs.stat(spool))
      const changed = Option.flatMap(info, (stat) => (stat.type === "Directory" ? stat.mtime : Option.none()))
      if (Option.isSome(changed) && changed.value < cutoff) {
        yield* fs.remove(spool, { recursive: true }).pipe(Effect.ignore)
        removed++
      }
    }
    return removed
  })

export const UploadSpoolSweepLive = Layer.effectDiscard(
  Effect.gen(function* () {
    const context = yield* Effect.context<FileSystem.FileSystem | Path.Path>()
    const sweep = Effect.suspend(() => sweepSpools(tmpdir(), new Date(Date.now() - Duration.toMillis(staleAfter)))).pipe(
      Effect.provideContext(context)
    )
    yield* Effect.forkScoped(Effect.ignore(sweep))
    yield* cleanUpEvery(sweepInterval, "stale upload spool directories", sweep)
  })
)
