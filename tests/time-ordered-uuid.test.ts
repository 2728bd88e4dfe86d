/** Time-ordered ids (UUID version 7) for rows whose B-trees should grow at one edge. */
import { Schema } from "effect"
import { describe, expect, it } from "vitest"
import { timeOrderedUuid } from "../src/database/TimeOrderedUuid.ts"

const millisecondsOf = (uuid: string) => Number.parseInt(uuid.replace(/-/g, "").slice(0, 12), 16)

describe("timeOrderedUuid", () => {
  it("is a version 7, RFC 9562 variant UUID that Postgres and the contract accept", () => {
    const uuid = timeOrderedUuid()
    expect(uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    expect(Schema.is(Schema.String.check(Schema.isUUID()))(uuid)).toBe(true)
  })

  it("starts with the milliseconds it was made at, so that later ids sort after earlier ones", () => {
    const at = Date.UTC(2026, 10, 21, 12, 0, 0, 123)
    expect(millisecondsOf(timeOrderedUuid(at))).toBe(at)
    const ids = [at, at + 1, at + 1_000, at + 86_400_000, 2 ** 47].map((ms) => timeOrderedUuid(ms))
    expect([...ids].sort()).toEqual(ids)
  })

  it("differs within one millisecond (the rest is random)", () => {
    const at = Date.now()
    expect(new Set(Array.from({ length: 1000 }, () => timeOrderedUuid(at))).size).toBe(1000)
  })
})
