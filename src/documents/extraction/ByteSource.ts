/**
 * Random access to a file's bytes, so sniffing reads the head and a ZIP's directory at the end,
 * never the whole file. A failure to read is a defect: the route wrote the file a moment ago, so
 * it cannot be the uploader's fault.
 */
import { open } from "node:fs/promises"
import { Effect, type Scope } from "effect"

export interface ByteSource {
  readonly size: number
  /** Up to `length` bytes from `offset`; fewer at the end of the file. */
  readonly read: (offset: number, length: number) => Effect.Effect<Uint8Array>
  /** Every byte, for the parsers that need the whole file in memory (PDF, DOCX, the text formats). */
  readonly readAll: Effect.Effect<Uint8Array>
}

export const bytesSource = (bytes: Uint8Array): ByteSource => ({
  size: bytes.byteLength,
  read: (offset, length) => Effect.sync(() => bytes.subarray(offset, Math.min(offset + length, bytes.byteLength))),
  // A copy: pdf.js takes ownership of (detaches) the buffer it is given.
  readAll: Effect.sync(() => bytes.slice())
})

/** The file at `path`, open for the scope. */
export const fileSource = (path: string): Effect.Effect<ByteSource, never, Scope.Scope> =>
  Effect.gen(function* () {
    const handle = yield* Effect.acquireRelease(
      Effect.promise(() => open(path, "r")),
      (handle) => Effect.promise(() => handle.close())
    )
    const { size } = yield* Effect.promise(() => handle.stat())
    // Positional reads only: they leave the file position alone on every runtime.
    const read = (offset: number, length: number) =>
      Effect.promise(async () => {
        const buffer = new Uint8Array(Math.max(0, Math.min(length, size - offset)))
        let filled = 0
        while (filled < buffer.byteLength) {
          const { bytesRead } = await handle.read(buffer, filled, buffer.byteLength - filled, offset + filled)
          if (bytesRead === 0) break
          filled += bytesRead
        }
        return buffer.subarray(0, filled)
      })
    return { size, read, readAll: read(0, size) } satisfies ByteSource
  })
