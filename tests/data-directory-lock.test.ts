/**
 * The data directory lock on its own: which locks left behind are taken over, and which are not.
 * (tests/startup.test.ts runs it with real servers: a live one, one killed.)
 */
import { Effect, Exit } from "effect"
import { mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { lockDataDirectory, lockFileName } from "../src/database/DataDirectoryLock.ts"

const scratch = mkdtempSync(join(tmpdir(), "basalt-lock-"))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

let directories = 0

/** A data directory holding `lock` (written as is), last touched `ageMs` ago. */
const directoryWithLock = (lock: string, ageMs = 0) => {
  const dir = mkdtempSync(join(scratch, `dir-${++directories}-`))
  const path = join(dir, lockFileName)
  writeFileSync(path, lock)
  const touched = new Date(Date.now() - ageMs)
  utimesSync(path, touched, touched)
  return dir
}

/** Locks `dir`, reads who holds it then, and unlocks: the failure's message if it could not. */
const tryLock = (dir: string) =>
  Effect.runPromise(
    Effect.exit(
      Effect.scoped(
        Effect.andThen(
          lockDataDirectory(dir),
          Effect.sync(() => JSON.parse(readFileSync(join(dir, lockFileName), "utf8")).pid)
        )
      )
    )
  ).then((exit) => (Exit.isSuccess(exit) ? { holder: exit.value as number } : { refused: String(exit.cause) }))

describe("the data directory lock", () => {
  it("is taken, named after this process, and released with its scope", async () => {
    const dir = mkdtempSync(join(scratch, "fresh-"))
    expect(await tryLock(dir)).toEqual({ holder: process.pid })
    expect(await tryLock(dir)).toEqual({ holder: process.pid })
  })

  it("is refused to a second holder in the same process", async () => {
    const dir = mkdtempSync(join(scratch, "twice-"))
    const second = await Effect.runPromise(
      Effect.scoped(
        Effect.andThen(
          lockDataDirectory(dir),
          Effect.promise(() => tryLock(dir))
        )
      )
    )
    expect(second).toEqual({ refused: expect.stringContaining(`is in use by process ${process.pid}`) })
  })

  it("is refused while another process on this host holds it", async () => {
    const own = JSON.parse(await lockedContent())
    // The parent of this test process: alive, and not this process.
    const dir = directoryWithLock(JSON.stringify({ ...own, pid: process.ppid, process_start: startOf(process.ppid) }))
    expect(await tryLock(dir)).toEqual({ refused: expect.stringContaining(`is in use by process ${process.ppid}: stop that one`) })
  })

  it.each([
    ["its process has ended", (own: Holder) => ({ ...own, pid: 2 ** 22 + 1 })],
    ["its pid now runs another program", (own: Holder) => ({ ...own, pid: process.ppid, process_start: "1" })],
    ["it names this very pid (a restarted container)", (own: Holder) => own]
  ])("is taken over on this host when %s", async (_, lock) => {
    const own = JSON.parse(await lockedContent()) as Holder
    const dir = directoryWithLock(JSON.stringify(lock(own)))
    expect(await tryLock(dir)).toEqual({ holder: process.pid })
  })

  it("from another host, is refused while its heartbeat is fresh and taken over once it is 30 s old", async () => {
    const foreign = JSON.stringify({ pid: 1, host: "elsewhere" })
    expect(await tryLock(directoryWithLock(foreign, 5_000))).toEqual({
      refused: expect.stringContaining("is in use by process 1 on elsewhere")
    })
    expect(await tryLock(directoryWithLock(foreign, 31_000))).toEqual({ holder: process.pid })
  })

  it("left half-written (empty) is taken over once it is not being written any more", async () => {
    expect(await tryLock(directoryWithLock("", 5_000))).toEqual({ holder: process.pid })
  })
})

interface Holder {
  readonly pid: number
  readonly host: string
  readonly pid_namespace?: string
  readonly process_start?: string
}

/** The content this process writes into a lock, as a holder other processes compare with theirs. */
const lockedContent = async () => {
  const dir = mkdtempSync(join(scratch, "own-"))
  let content = ""
  await Effect.runPromise(
    Effect.scoped(
      Effect.andThen(
        lockDataDirectory(dir),
        Effect.sync(() => {
          content = readFileSync(join(dir, lockFileName), "utf8")
        })
      )
    )
  )
  return content
}

/** A process's start time as the lock records it (Linux), or undefined. */
const startOf = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ")[19]
  } catch {
    return undefined
  }
}
