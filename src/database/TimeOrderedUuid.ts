/**
 * UUID version 7 (RFC 9562): 48 bits of Unix milliseconds, then random bits, so that ids sort in
 * the order rows were written and B-trees keyed by them (the chunks', and the search postings'
 * primary key, which starts with the chunk id: about a hundred and fifty rows per chunk) grow at
 * one edge instead of at random pages. At 20,000 chunks, which fit in memory, loading was no
 * faster than with random ids (README, bench:search); it is for corpora that do not.
 */
import { randomFillSync } from "node:crypto"

const hex = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, "0"))

export const timeOrderedUuid = (now: number = Date.now()): string => {
  const bytes = randomFillSync(new Uint8Array(16))
  bytes[0] = Math.floor(now / 2 ** 40) & 0xff
  bytes[1] = Math.floor(now / 2 ** 32) & 0xff
  bytes[2] = (now >>> 24) & 0xff
  bytes[3] = (now >>> 16) & 0xff
  bytes[4] = (now >>> 8) & 0xff
  bytes[5] = now & 0xff
  bytes[6] = (bytes[6]! & 0x0f) | 0x70
  bytes[8] = (bytes[8]! & 0x3f) | 0x80
  const h = Array.from(bytes, (byte) => hex[byte]!)
  return `${h.slice(0, 4).join("")}-${h.slice(4, 6).join("")}-${h.slice(6, 8).join("")}-${h.slice(8, 10).join("")}-${h.slice(10).join("")}`
}
