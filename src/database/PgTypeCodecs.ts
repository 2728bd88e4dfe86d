/**
 * How column values come back from the database. The driver reads every column in Postgres's
 * binary format; these codecs give the values Basalt's queries (and its stored data) have always
 * seen, the ones Postgres's own text output gives:
 *
 * - `int8`: a decimal string (a JavaScript number would lose digits past 2^53; a bigint would not
 *   survive JSON);
 * - `float4`: the shortest decimal that reads back as the same float4 (0.1, not 0.10000000149011612);
 * - `vector` (pgvector, whose type id each database assigns): its text form, `[0.1,0.2,…]`;
 * - `numeric` stays a decimal string, `timestamptz` a Date and `jsonb` parsed JSON, as the
 *   driver already reads them.
 */
import { Result } from "effect"
import { PgTypes } from "@effect/sql-pg"

const fail = (message: string) => Result.fail(new PgTypes.CodecError({ message }))

const int8AsString: PgTypes.Codec<string | bigint | number> = {
  decode: (bytes) =>
    bytes.length !== 8
      ? fail(`int8 of ${bytes.length} bytes`)
      : Result.succeed(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigInt64(0).toString()),
  encode: (value) => {
    try {
      const bytes = new Uint8Array(8)
      new DataView(bytes.buffer).setBigInt64(0, BigInt(value))
      return Result.succeed(bytes)
    } catch {
      return fail(`not an int8: ${String(value)}`)
    }
  }
}

const float4View = new DataView(new ArrayBuffer(4))
const pow10 = (n: number) => 10n ** BigInt(n)

/**
 * The digits and decimal exponent of the decimal Postgres prints for float4 `x` (finite, not 0):
 * the fewest digits that lie strictly between `x`'s neighbours' midpoints (Postgres's Ryu accepts
 * no value on a midpoint), the closest of them to `x`, the even one on a tie. Exact, in bigints.
 */
const shortestFloat4 = (x: number): { readonly digits: string; readonly exponent: number } => {
  float4View.setFloat32(0, Math.abs(x))
  const bits = float4View.getUint32(0)
  const biased = bits >>> 23
  const fraction = BigInt(bits & 0x7fffff)
  // x = m * 2^e; its neighbours' midpoints are (2m - 1) * 2^(e-1) (closer below a power of two) and (2m + 1) * 2^(e-1).
  const m = biased === 0 ? fraction : fraction | 0x800000n
  const e = (biased === 0 ? 1 : biased) - 150
  const lowerGap = biased > 1 && fraction === 0n ? 1n : 2n
  // Everything scaled by 2^(2 - e) when e < 2, so that the midpoints are integers.
  const shift = e < 2 ? 2 - e : 0
  const scale = e < 2 ? 1n : 2n ** BigInt(e - 2)
  const exact = m * 4n * scale
  const lower = (m * 4n - lowerGap) * scale
  const upper = (m * 4n + 2n) * scale
  const denominator = 2n ** BigInt(shift)
  const magnitude = Math.floor(Math.log10(Math.abs(x)))
  for (let precision = 1; precision <= 9; precision++) {
    // Candidates c * 10^unit around x: value = c * 10^unit * denominator in the scaled units.
    const unit = magnitude - precision + 1
    const up = unit > 0 ? pow10(unit) : 1n
    const down = unit < 0 ? pow10(-unit) : 1n
    const floor = (exact * down) / (up * denominator)
    let best: bigint | undefined
    let bestDistance = 0n
    for (const candidate of [floor, floor + 1n]) {
      // Compare candidate * up / down against the scaled bounds (all multiplied by down).
      const value = candidate * up * denominator
      if (value <= lower * down || value >= upper * down) continue
      const distance = value > exact * down ? value - exact * down : exact * down - value
      if (best === undefined || distance < bestDistance || (distance === bestDistance && candidate % 2n === 0n)) {
        best = candidate
        bestDistance = distance
      }
    }
    if (best !== undefined) {
      const text = best.toString()
      const digits = text.replace(/0+$/, "")
      return { digits: digits === "" ? "0" : digits, exponent: unit + text.length - 1 }
    }
  }
  throw new RangeError(`no float4 decimal for ${x}`)
}

/**
 * Postgres's text form of a float4 (float4out, and pgvector's element output): the shortest
 * round-tripping digits, in fixed notation for decimal exponents from -4 to 5 and as `1.5e+06`
 * beyond.
 */
export const float4Text = (x: number): string => {
  if (Number.isNaN(x)) return "NaN"
  if (!Number.isFinite(x)) return x > 0 ? "Infinity" : "-Infinity"
  if (x === 0) return Object.is(x, -0) ? "-0" : "0"
  const sign = x < 0 ? "-" : ""
  const { digits, exponent } = shortestFloat4(x)
  if (exponent >= -4 && exponent < 6) {
    if (exponent < 0) return `${sign}0.${"0".repeat(-exponent - 1)}${digits}`
    const whole = digits.padEnd(exponent + 1, "0")
    const fraction = digits.slice(exponent + 1)
    return `${sign}${whole.slice(0, exponent + 1)}${fraction === "" ? "" : `.${fraction}`}`
  }
  const mantissa = digits.length === 1 ? digits : `${digits[0]}.${digits.slice(1)}`
  const magnitude = String(Math.abs(exponent)).padStart(2, "0")
  return `${sign}${mantissa}e${exponent < 0 ? "-" : "+"}${magnitude}`
}

const readFloat4 = (bytes: Uint8Array, offset: number) => new DataView(bytes.buffer, bytes.byteOffset + offset, 4).getFloat32(0)

const float4Shortest: PgTypes.Codec<number> = {
  decode: (bytes) =>
    bytes.length !== 4 ? fail(`float4 of ${bytes.length} bytes`) : Result.succeed(Number(float4Text(readFloat4(bytes, 0)))),
  encode: (value) => {
    if (typeof value !== "number") return fail(`not a float4: ${String(value)}`)
    const bytes = new Uint8Array(4)
    new DataView(bytes.buffer).setFloat32(0, value)
    return Result.succeed(bytes)
  }
}

/** pgvector's binary form: int16 dimensions, int16 unused, then each element as a float4. */
export const vectorCodec: PgTypes.Codec<string | ArrayLike<number>> = {
  decode: (bytes) => {
    if (bytes.length < 4) return fail("truncated vector")
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    const dimensions = view.getInt16(0)
    if (bytes.length !== 4 + dimensions * 4) return fail(`vector of ${dimensions} dimensions in ${bytes.length} bytes`)
    const elements = new Array<string>(dimensions)
    for (let i = 0; i < dimensions; i++) elements[i] = float4Text(view.getFloat32(4 + i * 4))
    return Result.succeed(`[${elements.join(",")}]`)
  },
  encode: (value) => {
    const elements =
      typeof value === "string"
        ? value
            .replace(/^\s*\[|\]\s*$/g, "")
            .split(",")
            .map(Number)
        : Array.from(value)
    if (elements.some((element) => !Number.isFinite(element))) return fail("a vector holds finite numbers only")
    const bytes = new Uint8Array(4 + elements.length * 4)
    const view = new DataView(bytes.buffer)
    view.setInt16(0, elements.length)
    for (let i = 0; i < elements.length; i++) view.setFloat32(4 + i * 4, elements[i]!)
    return Result.succeed(bytes)
  }
}

/** A registry with Basalt's codecs, for one client; `registerVector` adds pgvector's once its type id is known. */
export const makeTypes = (): PgTypes.Registry => {
  const types = PgTypes.makeRegistry()
  types.register(PgTypes.OID.int8, int8AsString, { arrayOid: PgTypes.OID.int8Array })
  types.register(PgTypes.OID.float4, float4Shortest, { arrayOid: PgTypes.OID.float4Array })
  return types
}

export const registerVector = (types: PgTypes.Registry, oid: number, arrayOid: number | undefined) =>
  types.register(oid, vectorCodec, arrayOid === undefined || arrayOid === 0 ? undefined : { arrayOid })
