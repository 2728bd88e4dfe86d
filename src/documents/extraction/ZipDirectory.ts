/**
 * The central directory of a ZIP archive (APPNOTE 6.3.10, with ZIP64), read from the end of the
 * file. DOCX, XLSX, PPTX, JAR and plain archives all begin with the same `PK\x03\x04`; only the
 * entry names tell them apart, and the directory lists every name without unpacking anything.
 */
import { inflateRawSync } from "node:zlib"
import { Effect } from "effect"
import type { ByteSource } from "./ByteSource.ts"

export interface ZipEntry {
  readonly name: string
  readonly method: number
  readonly encrypted: boolean
  readonly compressedSize: number
  readonly uncompressedSize: number
  readonly localHeaderOffset: number
}

export type ZipDirectory =
  | { readonly _tag: "Readable"; readonly entries: ReadonlyArray<ZipEntry> }
  | { readonly _tag: "Unreadable"; readonly reason: string }

const endOfDirectorySignature = 0x06054b50
const zip64LocatorSignature = 0x07064b50
const zip64EndSignature = 0x06064b50
const directoryEntrySignature = 0x02014b50
const localHeaderSignature = 0x04034b50
const endOfDirectoryLength = 22
const maxCommentLength = 0xffff
// A DOCX's directory is a few KB; one this large is not a document worth unpacking.
const maxDirectoryBytes = 16 * 1024 * 1024

const u16 = (bytes: Uint8Array, at: number) => bytes[at]! | (bytes[at + 1]! << 8)
const u32 = (bytes: Uint8Array, at: number) => (u16(bytes, at) | (u16(bytes, at + 2) << 16)) >>> 0
const u64 = (bytes: Uint8Array, at: number) => u32(bytes, at) + u32(bytes, at + 4) * 0x1_0000_0000

const names = new TextDecoder("utf-8")

const unreadable = (reason: string): ZipDirectory => ({ _tag: "Unreadable", reason })

export const readZipDirectory = (source: ByteSource): Effect.Effect<ZipDirectory> =>
  Effect.gen(function* () {
    const tailStart = Math.max(0, source.size - endOfDirectoryLength - maxCommentLength)
    const tail = yield* source.read(tailStart, source.size - tailStart)
    const end = findEndOfDirectory(tail)
    if (end === undefined) return unreadable("its ZIP directory is missing, so the file is truncated or damaged")

    let count = u16(tail, end + 10)
    let directorySize = u32(tail, end + 12)
    let directoryOffset = u32(tail, end + 16)
    if (count === 0xffff || directorySize === 0xffffffff || directoryOffset === 0xffffffff) {
      const locator = end - 20
      if (locator < 0 || u32(tail, locator) !== zip64LocatorSignature) return unreadable("its ZIP64 directory is missing")
      const zip64End = yield* source.read(u64(tail, locator + 8), 56)
      if (zip64End.byteLength < 56 || u32(zip64End, 0) !== zip64EndSignature) {
        return unreadable("its ZIP64 directory is damaged")
      }
      count = u64(zip64End, 32)
      directorySize = u64(zip64End, 40)
      directoryOffset = u64(zip64End, 48)
    }
    if (directorySize > maxDirectoryBytes) return unreadable("its ZIP directory is implausibly large")
    if (directoryOffset + directorySize > tailStart + end) {
      return unreadable("its ZIP directory points past the end of the file, so the file is truncated or damaged")
    }

    const directory = yield* source.read(directoryOffset, directorySize)
    const entries: Array<ZipEntry> = []
    let at = 0
    for (let i = 0; i < count; i++) {
      if (at + 46 > directory.byteLength || u32(directory, at) !== directoryEntrySignature) {
        return unreadable("its ZIP directory is damaged")
      }
      const nameLength = u16(directory, at + 28)
      const extraLength = u16(directory, at + 30)
      const commentLength = u16(directory, at + 32)
      const next = at + 46 + nameLength + extraLength + commentLength
      if (next > directory.byteLength) return unreadable("its ZIP directory is damaged")
      const sizes = {
        compressedSize: u32(directory, at + 20),
        uncompressedSize: u32(directory, at + 24),
        localHeaderOffset: u32(directory, at + 42)
      }
      readZip64Extra(directory.subarray(at + 46 + nameLength, at + 46 + nameLength + extraLength), sizes)
      entries.push({
        name: names.decode(directory.subarray(at + 46, at + 46 + nameLength)),
        method: u16(directory, at + 10),
        encrypted: (u16(directory, at + 8) & 1) === 1,
        ...sizes
      })
      at = next
    }
    return { _tag: "Readable", entries } satisfies ZipDirectory
  })

/** The end-of-directory record nearest the end whose comment length fits what follows it. */
const findEndOfDirectory = (tail: Uint8Array): number | undefined => {
  for (let at = tail.byteLength - endOfDirectoryLength; at >= 0; at--) {
    if (u32(tail, at) === endOfDirectorySignature && at + endOfDirectoryLength + u16(tail, at + 20) <= tail.byteLength) {
      return at
    }
  }
  return undefined
}

/** ZIP64 keeps the real sizes and offset in an extra field when the 32-bit ones are saturated. */
const readZip64Extra = (extra: Uint8Array, sizes: { compressedSize: number; uncompressedSize: number; localHeaderOffset: number }) => {
  for (let at = 0; at + 4 <= extra.byteLength; ) {
    const id = u16(extra, at)
    const length = u16(extra, at + 2)
    if (id === 0x0001) {
      let field = at + 4
      const take = () => {
        const value = field + 8 <= at + 4 + length ? u64(extra, field) : undefined
        field += 8
        return value
      }
      if (sizes.uncompressedSize === 0xffffffff) sizes.uncompressedSize = take() ?? sizes.uncompressedSize
      if (sizes.compressedSize === 0xffffffff) sizes.compressedSize = take() ?? sizes.compressedSize
      if (sizes.localHeaderOffset === 0xffffffff) sizes.localHeaderOffset = take() ?? sizes.localHeaderOffset
      return
    }
    at += 4 + length
  }
}

/**
 * The entry names in the local headers found in `head`: what a damaged archive, whose directory
 * is gone, still says about itself. A best effort, used only to word an error well.
 */
export const localEntryNames = (head: Uint8Array): ReadonlyArray<string> => {
  const found: Array<string> = []
  for (let at = 0; at + 30 <= head.byteLength && found.length < 100; at++) {
    if (u32(head, at) !== localHeaderSignature) continue
    const nameLength = u16(head, at + 26)
    if (nameLength === 0 || at + 30 + nameLength > head.byteLength) continue
    found.push(names.decode(head.subarray(at + 30, at + 30 + nameLength)))
  }
  return found
}

/**
 * One entry's bytes, unpacked to at most `maxBytes`; undefined when it cannot be (encrypted, an
 * unknown method, damaged, or larger than allowed).
 */
export const readZipEntry = (source: ByteSource, entry: ZipEntry, maxBytes: number): Effect.Effect<Uint8Array | undefined> =>
  Effect.gen(function* () {
    if (entry.encrypted || entry.uncompressedSize > maxBytes || entry.compressedSize > maxBytes) return undefined
    const header = yield* source.read(entry.localHeaderOffset, 30)
    if (header.byteLength < 30 || u32(header, 0) !== localHeaderSignature) return undefined
    const dataOffset = entry.localHeaderOffset + 30 + u16(header, 26) + u16(header, 28)
    const data = yield* source.read(dataOffset, entry.compressedSize)
    if (data.byteLength < entry.compressedSize) return undefined
    if (entry.method === 0) return data
    if (entry.method !== 8) return undefined
    try {
      // The bound holds even when the directory understates the size (a ZIP bomb).
      return new Uint8Array(inflateRawSync(data, { maxOutputLength: maxBytes }))
    } catch {
      return undefined
    }
  })
