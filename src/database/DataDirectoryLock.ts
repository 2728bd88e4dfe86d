/**
 * One process at a time on an embedded data directory: two PGlite instances on the same files
 * lose writes and end by corrupting them. The lock is a file created exclusively (O_EXCL) in the
 * directory, naming its holder. Node has no flock and a native addon is not worth it, so a lock
 * left behind by a process that died is recognised and taken over:
 * - in the same pid namespace (same host name and /proc/self/ns/pid), by the holder's pid no
 *   longer running, or running as another process (its start time in /proc differs: the pid was
 *   reused), or being this very process's pid (a restarted container);
 * - elsewhere (another container or host sharing the volume), or where processes cannot be asked
 *   about (Deno without --allow-run), by its heartbeat: the holder touches the file every few
 *   seconds, and a lock untouched for `staleAfterMs` is abandoned.
 */
import { Duration, Effect, Schedule, type Scope } from "effect"
import {
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  readlinkSync,
  renameSync,
  statSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
  writeSync
} from "node:fs"
import { hostname } from "node:os"
import { join, resolve } from "node:path"
import { StartupError } from "../StartupFailure.ts"

export const lockFileName = "basalt.lock"

const heartbeatEvery = Duration.seconds(5)
/** Several missed heartbeats: a process that is merely busy keeps touching the file. */
const staleAfterMs = 30_000

interface Holder {
  readonly pid: number
  readonly host: string
  /** The pid namespace (Linux), where pids can be compared; absent elsewhere. */
  readonly pid_namespace?: string | undefined
  /** The process's start time in clock ticks since boot (Linux), which tells a reused pid apart. */
  readonly process_start?: string | undefined
}

const readOptional = <A>(read: () => A): A | undefined => {
  try {
    return read()
  } catch {
    return undefined
  }
}

const processStartOf = (pid: number | "self") =>
  // Field 22 of /proc/<pid>/stat; fields after the command (which may hold spaces) start at 3.
  readOptional(() => readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ")[19])

const thisProcess = (): Holder => ({
  pid: process.pid,
  host: hostname(),
  pid_namespace: readOptional(() => readlinkSync("/proc/self/ns/pid")),
  process_start: processStartOf("self")
})

/** Whether a process `pid` exists; undefined when this process may not ask (Deno without --allow-run). */
const isRunning = (pid: number): boolean | undefined => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    // EPERM: it exists, under another user.
    return code === "ESRCH" ? false : code === "EPERM" ? true : undefined
  }
}

/** Whether `holder` still holds its lock: by its process where pids can be compared and asked about, else by its heartbeat. */
const holds = (holder: Holder, heartbeatAgeMs: number): boolean => {
  const self = thisProcess()
  const heartbeating = heartbeatAgeMs < staleAfterMs
  if (holder.host !== self.host || holder.pid_namespace !== self.pid_namespace) return heartbeating
  if (holder.pid === self.pid) return false
  const running = isRunning(holder.pid)
  if (running === undefined) return heartbeating
  const start = processStartOf(holder.pid)
  return running && (start === undefined || holder.process_start === undefined || start === holder.process_start)
}

const parseHolder = (text: string): Holder | undefined => {
  const value = readOptional(() => JSON.parse(text) as Partial<Holder>)
  return typeof value?.pid === "number" && typeof value.host === "string" ? (value as Holder) : undefined
}

const describeFsError = (error: unknown) => {
  const { code, message } = error as NodeJS.ErrnoException
  switch (code) {
    case "EROFS":
      return "it is on a read-only file system"
    case "EACCES":
    case "EPERM":
      return "permission denied"
    case "ENOTDIR":
    case "EEXIST":
      return "it is not a directory"
    case "ENOSPC":
      return "no space left on the device"
    default:
      return message
  }
}

export const cannotOpen = (dir: string, reason: string) => new StartupError({ message: `cannot open the data directory ${dir}: ${reason}` })

type Attempt = { readonly _tag: "Locked" } | { readonly _tag: "Held"; readonly by: Holder } | { readonly _tag: "Retry" }

/** Creates the lock file with `content`; false if it exists. */
const create = (path: string, content: string): boolean => {
  let fd: number
  try {
    fd = openSync(path, "wx")
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false
    throw error
  }
  try {
    writeSync(fd, content)
  } catch (error) {
    // Created but not written (a full disk): it must not lock the next start out.
    readOptional(() => unlinkSync(path))
    throw error
  } finally {
    closeSync(fd)
  }
  return true
}

/** One try: create the file, or judge the one there (taking it over when abandoned). */
const attempt = (path: string, content: string): Attempt => {
  if (create(path, content)) return { _tag: "Locked" }
  const found = readOptional(() => ({ text: readFileSync(path, "utf8"), ageMs: Date.now() - statSync(path).mtimeMs }))
  if (found === undefined) return { _tag: "Retry" }
  const holder = parseHolder(found.text)
  // Unreadable: being written this instant, or left half-written; only the latter lasts.
  if (holder === undefined ? found.ageMs < 2_000 : holds(holder, found.ageMs)) {
    return holder === undefined ? { _tag: "Retry" } : { _tag: "Held", by: holder }
  }
  // Abandoned. Moved aside first, then checked: if another process took it over in between, the
  // lock moved aside is theirs, and goes back.
  const aside = `${path}.stale.${process.pid}`
  // Gone already: another process is taking it over too.
  if (readOptional(() => renameSync(path, aside) ?? true) === undefined) return { _tag: "Retry" }
  const moved = readOptional(() => readFileSync(aside, "utf8"))
  if (moved !== found.text) readOptional(() => writeFileSync(path, moved ?? "", { flag: "wx" }))
  readOptional(() => unlinkSync(aside))
  return { _tag: "Retry" }
}

/**
 * Locks `dataDir` (created if missing) for the scope, or fails with the line that names the
 * directory and its holder. While held, the lock's heartbeat is kept.
 */
/** The directories this process holds: a lock file naming this pid is a previous life's only if not listed here. */
const heldHere = new Set<string>()

export const lockDataDirectory = (dataDir: string): Effect.Effect<void, StartupError, Scope.Scope> => {
  const dir = resolve(dataDir)
  const path = join(dir, lockFileName)
  const content = `${JSON.stringify(thisProcess())}\n`
  const held = ({ host, pid }: Holder) =>
    new StartupError({
      message: `the data directory ${dir} is in use by process ${pid}${host === hostname() ? "" : ` on ${host}`}: stop that one, or set BASALT_DATA_DIR to another directory`
    })
  const fsStep = <A>(step: () => A) => Effect.try({ try: step, catch: (error) => cannotOpen(dir, describeFsError(error)) })
  const acquire = fsStep(() => mkdirSync(dir, { recursive: true })).pipe(
    Effect.andThen(heldHere.has(dir) ? Effect.fail(held(thisProcess())) : Effect.void),
    Effect.andThen(
      fsStep(() => attempt(path, content)).pipe(
        Effect.repeat({ schedule: Schedule.spaced("100 millis"), while: (result) => result._tag === "Retry", times: 20 })
      )
    ),
    Effect.flatMap((result) =>
      result._tag === "Locked"
        ? Effect.sync(() => heldHere.add(dir))
        : Effect.fail(
            result._tag === "Held"
              ? held(result.by)
              : new StartupError({ message: `cannot lock the data directory ${dir}: other processes keep taking it` })
          )
    )
  )
  const release = Effect.sync(() => {
    heldHere.delete(dir)
    if (readOptional(() => readFileSync(path, "utf8")) === content) readOptional(() => unlinkSync(path))
  })
  const heartbeat = Effect.sync(() => readOptional(() => utimesSync(path, new Date(), new Date())))
  return Effect.acquireRelease(acquire, () => release).pipe(
    Effect.andThen(Effect.forkScoped(Effect.repeat(heartbeat, Schedule.spaced(heartbeatEvery)))),
    Effect.asVoid
  )
}
