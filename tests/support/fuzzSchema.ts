/**
 * fast-check arbitraries from the JSON Schemas of openapi.yaml: values that match a schema, and
 * values that break it in one place (with where and how). Written here rather than taken from the
 * registry: the one JSON-Schema generator there (json-schema-fast-check 0.0.6) is built on
 * fast-check 1 and a draft-4 subset, without formats, patterns or 2020-12's type arrays.
 *
 * It covers the subset of JSON Schema 2020-12 the contract's requests use. A keyword outside it
 * throws, so a contract that grows one fails here loudly instead of being fuzzed with wrong data.
 * Whether a generated value really matches is decided by ajv (fuzzOracle.ts), not by this file.
 */
import fc from "fast-check"

export type JsonSchema = { readonly [keyword: string]: any }

/** Keywords that only describe. */
const annotations = new Set([
  "description",
  "title",
  "default",
  "example",
  "examples",
  "writeOnly",
  "readOnly",
  "deprecated",
  "contentMediaType",
  "contentEncoding",
  "$comment",
  // A hint for generators: oneOf with a const per member says the same.
  "discriminator"
])
const understood = new Set([
  "$ref",
  "type",
  "enum",
  "const",
  "oneOf",
  "anyOf",
  "properties",
  "required",
  "additionalProperties",
  "minProperties",
  "maxProperties",
  "items",
  "minItems",
  "maxItems",
  "minLength",
  "maxLength",
  "pattern",
  "format",
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "exclusiveMaximum"
])
const formats = new Set(["uuid", "date-time", "email", "binary"])

/** Marks every generated value of a `writeOnly` string (passwords): no response may contain it. */
export const secretCanary = "Zq9secret"

/** Strings longer than this are not generated at their boundary: the body limit refuses them first. */
const longestBoundary = 1 << 20

export interface Broken {
  readonly value: unknown
  /** Where and how, as `path: reason`. */
  readonly why: string
}

const asciiPrintable = fc.integer({ min: 0x20, max: 0x7e }).map((code) => String.fromCharCode(code))
/** For strings at a length bound: not a space, so that a server trimming them still sees that length. */
const asciiVisible = fc.integer({ min: 0x21, max: 0x7e }).map((code) => String.fromCharCode(code))

/** Strings as people write them: mostly ASCII, sometimes any Unicode (astral and combining included). */
const text = (minLength: number, maxLength: number) =>
  fc.oneof(
    { weight: 6, arbitrary: fc.string({ unit: asciiPrintable, minLength, maxLength: Math.min(maxLength, Math.max(minLength, 24)) }) },
    { weight: 2, arbitrary: fc.string({ unit: "grapheme", minLength, maxLength: Math.min(maxLength, Math.max(minLength, 12)) }) }
  )

const uuid = fc.oneof(
  { weight: 8, arbitrary: fc.uuid() },
  { weight: 1, arbitrary: fc.uuid().map((id) => id.toUpperCase()) },
  { weight: 1, arbitrary: fc.constant("00000000-0000-0000-0000-000000000000") }
)

const dateTime = fc
  .tuple(
    fc.date({ min: new Date("1970-01-01T00:00:00Z"), max: new Date("2100-01-01T00:00:00Z"), noInvalidDate: true }),
    fc.constantFrom("millis", "seconds", "offset")
  )
  .map(([date, form]) => {
    const iso = date.toISOString()
    if (form === "millis") return iso
    if (form === "seconds") return `${iso.slice(0, 19)}Z`
    // The same instant two hours ahead, written with its offset.
    return `${new Date(date.getTime() + 2 * 3_600_000).toISOString().slice(0, 19)}+02:00`
  })

const email = fc
  .oneof(
    { weight: 4, arbitrary: fc.tuple(fc.stringMatching(/^[a-z][a-z0-9]{0,11}$/), fc.constantFrom("example.com", "example.org")) },
    { weight: 1, arbitrary: fc.emailAddress().map((address) => [address, ""] as const) }
  )
  .map(([local, domain]) => (domain === "" ? local : `${local}@${domain}`))

const withoutLookarounds = (pattern: string) => pattern.replace(/\(\?<?[=!](?:\\.|[^()\\])*\)/g, "")

const typesOf = (schema: JsonSchema): ReadonlyArray<string> =>
  schema.type === undefined ? [] : Array.isArray(schema.type) ? schema.type : [schema.type]

/** A JSON value of none of `types` (so it breaks a `type`). */
const otherType = (types: ReadonlyArray<string>): fc.Arbitrary<unknown> => {
  const candidates: Array<[string, unknown]> = [
    ["string", "1"],
    ["integer", 7],
    ["number", 1.5],
    ["boolean", true],
    ["null", null],
    ["array", []],
    ["object", {}]
  ]
  const allowed = (kind: string) => types.includes(kind) || (kind === "integer" && types.includes("number"))
  return fc.constantFrom(...candidates.filter(([kind]) => !allowed(kind)).map(([, value]) => value))
}

export class SchemaArbitraries {
  constructor(private readonly resolve: (ref: string) => JsonSchema) {}

  /** The schema with `$ref` followed (siblings of a `$ref` override, as in OpenAPI 3.1). */
  resolved(schema: JsonSchema): JsonSchema {
    let current = schema
    while (typeof current.$ref === "string") {
      const { $ref, ...siblings } = current
      current = { ...this.resolve($ref), ...siblings }
    }
    for (const keyword of Object.keys(current)) {
      if (!understood.has(keyword) && !annotations.has(keyword) && !keyword.startsWith("x-")) {
        throw new Error(`fuzzSchema: JSON Schema keyword "${keyword}" is not supported; teach tests/support/fuzzSchema.ts`)
      }
    }
    if (current.format !== undefined && !formats.has(current.format)) {
      throw new Error(`fuzzSchema: format "${current.format}" is not supported; teach tests/support/fuzzSchema.ts`)
    }
    return current
  }

  /** Values that match `schema`. */
  valid(input: JsonSchema): fc.Arbitrary<unknown> {
    const schema = this.resolved(input)
    if ("const" in schema) return fc.constant(schema.const)
    if (schema.enum !== undefined) return fc.constantFrom(...schema.enum)
    const branches = schema.oneOf ?? schema.anyOf
    if (branches !== undefined) return fc.oneof(...branches.map((branch: JsonSchema) => this.valid(branch)))
    const types = typesOf(schema)
    if (types.length > 1) return fc.oneof(...types.map((type) => this.valid({ ...schema, type })))
    switch (types[0]) {
      case "null":
        return fc.constant(null)
      case "boolean":
        return fc.boolean()
      case "integer":
        return this.integer(schema)
      case "number":
        return this.number(schema)
      case "string":
        return this.string(schema)
      case "array":
        return this.array(schema)
      case "object":
        return this.object(schema)
      case undefined:
        // No type: any JSON (a batch item is checked on its own by the server).
        return fc.jsonValue({ maxDepth: 2 })
      default:
        throw new Error(`fuzzSchema: type ${types[0]}`)
    }
  }

  private integer(schema: JsonSchema): fc.Arbitrary<number> {
    const min = schema.minimum ?? (schema.exclusiveMinimum === undefined ? -1_000_000 : schema.exclusiveMinimum + 1)
    const max = schema.maximum ?? (schema.exclusiveMaximum === undefined ? 1_000_000 : schema.exclusiveMaximum - 1)
    return fc.oneof({ weight: 3, arbitrary: fc.integer({ min, max }) }, { weight: 1, arbitrary: fc.constantFrom(min, max) })
  }

  private number(schema: JsonSchema): fc.Arbitrary<number> {
    const min = schema.minimum ?? schema.exclusiveMinimum ?? -1e9
    const max = schema.maximum ?? schema.exclusiveMaximum ?? 1e9
    const inside = fc.double({ min, max, noNaN: true, noDefaultInfinity: true })
    const bounds = [schema.minimum, schema.maximum].filter((bound) => bound !== undefined)
    const filtered = inside.filter((n) => n !== schema.exclusiveMinimum && n !== schema.exclusiveMaximum)
    return bounds.length === 0
      ? filtered
      : fc.oneof({ weight: 3, arbitrary: filtered }, { weight: 1, arbitrary: fc.constantFrom(...bounds) })
  }

  private string(schema: JsonSchema): fc.Arbitrary<string> {
    const minLength: number = schema.minLength ?? 0
    const maxLength: number = schema.maxLength ?? 200
    const fits = (value: string) => [...value].length >= minLength && [...value].length <= maxLength
    if (schema.format === "uuid") return uuid
    if (schema.format === "date-time") return dateTime
    if (schema.format === "email") return email.filter(fits)
    if (schema.pattern !== undefined) {
      const pattern = new RegExp(schema.pattern, "u")
      return fc
        .stringMatching(new RegExp(withoutLookarounds(schema.pattern)))
        .map((value) => [...value].slice(0, maxLength).join(""))
        .filter((value) => fits(value) && pattern.test(value))
    }
    if (schema.writeOnly === true) {
      // A secret: marked, so that an answer echoing it is caught.
      return fc
        .string({ unit: asciiPrintable, minLength: Math.max(0, minLength - secretCanary.length), maxLength: Math.min(40, maxLength) })
        .map((rest) => `${secretCanary}${rest}`.slice(0, maxLength))
    }
    const boundaries = [minLength, maxLength].filter((length) => length > 0 && length <= longestBoundary)
    const atBoundary = fc
      .tuple(fc.constantFrom(...(boundaries.length > 0 ? boundaries : [minLength])), asciiVisible)
      .map(([length, char]) => char.repeat(length))
    return fc.oneof({ weight: 8, arbitrary: text(minLength, maxLength) }, { weight: 1, arbitrary: atBoundary })
  }

  private array(schema: JsonSchema): fc.Arbitrary<ReadonlyArray<unknown>> {
    const minItems: number = schema.minItems ?? 0
    const maxItems: number = schema.maxItems ?? 10
    const item = this.valid(schema.items ?? {})
    return fc.oneof(
      { weight: 6, arbitrary: fc.array(item, { minLength: minItems, maxLength: Math.min(maxItems, minItems + 4) }) },
      { weight: 1, arbitrary: fc.array(item, { minLength: maxItems, maxLength: maxItems }) }
    )
  }

  /** Keys of free-form objects (metadata): ordinary names, never `__proto__` (a rule of its own). */
  private readonly key = fc.oneof(fc.stringMatching(/^[a-z][a-z_]{0,11}$/), fc.string({ unit: "grapheme", maxLength: 8 }))

  private object(schema: JsonSchema): fc.Arbitrary<Record<string, unknown>> {
    const properties: Record<string, JsonSchema> = schema.properties ?? {}
    const required = new Set<string>(schema.required ?? [])
    const known = fc.record(Object.fromEntries(Object.entries(properties).map(([name, property]) => [name, this.valid(property)])), {
      requiredKeys: [...required]
    })
    const extra =
      schema.additionalProperties === false
        ? fc.constant({})
        : fc.dictionary(
            this.key.filter((key) => !(key in properties) && key !== "__proto__"),
            schema.additionalProperties === true || schema.additionalProperties === undefined
              ? fc.jsonValue({ maxDepth: 3 })
              : this.valid(schema.additionalProperties),
            { maxKeys: 6 }
          )
    const minProperties: number = schema.minProperties ?? 0
    const maxProperties: number = schema.maxProperties ?? Number.POSITIVE_INFINITY
    return fc
      .tuple(known, extra)
      .map(([values, more]) => ({ ...more, ...values }))
      .filter((value) => Object.keys(value).length >= minProperties && Object.keys(value).length <= maxProperties)
  }

  /** Values that break `schema` in exactly one place, with where (under `path`) and how. */
  invalid(input: JsonSchema, path: string): fc.Arbitrary<Broken> {
    const schema = this.resolved(input)
    const breaking: Array<fc.Arbitrary<Broken>> = []
    const add = (arbitrary: fc.Arbitrary<unknown>, why: string) =>
      breaking.push(arbitrary.map((value) => ({ value, why: `${path}: ${why}` })))
    const branches: ReadonlyArray<JsonSchema> = (schema.oneOf ?? schema.anyOf ?? []).map((branch: JsonSchema) => this.resolved(branch))
    // A union breaks where each of its members does (whether that breaks the union: the oracle judges).
    for (const branch of branches) breaking.push(this.invalid(branch, path))
    const types = [...new Set([...typesOf(schema), ...branches.flatMap(typesOf)])]
    if (types.length > 0) add(otherType(types), `not ${types.join(" or ")}`)
    if ("const" in schema) add(fc.constant(typeof schema.const === "string" ? `${schema.const}x` : "other"), "not the constant")
    if (schema.enum !== undefined) {
      const first = String(schema.enum[0])
      add(
        fc.constantFrom(first.toUpperCase(), `${first} `, "", `${first}_other`).filter((value) => !schema.enum.includes(value)),
        "not in the enum"
      )
    }
    if (types.includes("integer")) {
      add(fc.constantFrom(1.5, -0.5, 1e21), "not an integer")
      if (schema.minimum !== undefined) add(fc.constant(schema.minimum - 1), `minimum ${schema.minimum} - 1`)
      if (schema.maximum !== undefined) add(fc.constant(schema.maximum + 1), `maximum ${schema.maximum} + 1`)
    } else if (types.includes("number")) {
      if (schema.minimum !== undefined) add(fc.constant(schema.minimum - 0.001), `below minimum ${schema.minimum}`)
      if (schema.maximum !== undefined) add(fc.constant(schema.maximum + 0.001), `above maximum ${schema.maximum}`)
    }
    if (types.includes("string")) this.brokenStrings(schema, add)
    if (types.includes("array")) {
      const item = this.valid(schema.items ?? {})
      if (schema.maxItems !== undefined)
        add(fc.array(item, { minLength: schema.maxItems + 1, maxLength: schema.maxItems + 1 }), `maxItems ${schema.maxItems} + 1`)
      if (schema.minItems !== undefined && schema.minItems > 0)
        add(fc.array(item, { minLength: schema.minItems - 1, maxLength: schema.minItems - 1 }), `minItems ${schema.minItems} - 1`)
      if (schema.items !== undefined && this.canBreak(schema.items)) {
        breaking.push(
          fc
            .tuple(fc.array(item, { maxLength: 2 }), this.invalid(schema.items, `${path}[]`))
            .map(([others, broken]) => ({ value: [...others, broken.value], why: broken.why }))
        )
      }
    }
    if (types.includes("object")) this.brokenObjects(schema, path, breaking)
    if (breaking.length === 0) throw new Error(`fuzzSchema: nothing breaks the schema at ${path}`)
    return fc.oneof(...breaking)
  }

  /** Whether some value breaks the schema (`{}` and `true` accept everything). */
  canBreak(input: JsonSchema): boolean {
    const schema = this.resolved(input)
    return Object.keys(schema).some((keyword) => understood.has(keyword) && keyword !== "additionalProperties")
  }

  private brokenStrings(schema: JsonSchema, add: (arbitrary: fc.Arbitrary<unknown>, why: string) => void) {
    if (schema.maxLength !== undefined && schema.maxLength < longestBoundary) {
      const prefix = schema.writeOnly === true ? secretCanary : ""
      add(
        asciiVisible.map((char) => (prefix + char.repeat(schema.maxLength + 1)).slice(0, schema.maxLength + 1)),
        `maxLength ${schema.maxLength} + 1`
      )
    }
    if (schema.minLength !== undefined && schema.minLength > 0) {
      add(
        asciiVisible.map((char) => char.repeat(schema.minLength - 1)),
        `minLength ${schema.minLength} - 1`
      )
    }
    if (schema.pattern !== undefined) {
      const pattern = new RegExp(schema.pattern, "u")
      const misses = ["", " ", "   ", "A", "Z9", "_a", "a b", "-", "//x", "\\x", "é", "a".repeat(40)].filter(
        (value) => !pattern.test(value) && [...value].length >= (schema.minLength ?? 0) && [...value].length <= (schema.maxLength ?? 1e9)
      )
      if (misses.length > 0) add(fc.constantFrom(...misses), `does not match ${schema.pattern}`)
    }
    const badFormats: Record<string, ReadonlyArray<string>> = {
      uuid: [
        "not-a-uuid",
        "0b9f5f4e-4a51-4c1a-9a59-3f2f1d7b6c1",
        "0b9f5f4e4a514c1a9a593f2f1d7b6c11",
        "{0b9f5f4e-4a51-4c1a-9a59-3f2f1d7b6c11}",
        "0b9f5f4e-4a51-4c1a-9a59-3f2f1d7b6c11x",
        "g0000000-0000-0000-0000-000000000000"
      ],
      "date-time": [
        "2020-02-30T00:00:00Z",
        "2021-02-29T12:00:00Z",
        "2020-01-01",
        "2020-01-01T25:00:00Z",
        "2020-13-01T00:00:00Z",
        "yesterday",
        "1700000000",
        "2020-01-01T00:00:00",
        "2020-01-01 00:00:00Z"
      ],
      email: ["a", "a@", "@example.com", "a@b@example.com", "a b@example.com", "a@example..com", "a@-example.com"]
    }
    const bad = badFormats[schema.format]
    if (bad !== undefined) add(fc.constantFrom(...bad), `not a ${schema.format}`)
  }

  private brokenObjects(schema: JsonSchema, path: string, breaking: Array<fc.Arbitrary<Broken>>) {
    const properties: Record<string, JsonSchema> = schema.properties ?? {}
    const whole = this.object(schema)
    for (const name of schema.required ?? []) {
      breaking.push(
        whole.map((value) => {
          const { [name]: _missing, ...rest } = value
          return { value: rest, why: `${path}: required ${name} missing` }
        })
      )
    }
    if (schema.additionalProperties === false) {
      breaking.push(
        fc
          .tuple(whole, fc.constantFrom("unknown", "extra_field", "Title", "__typename", "id"))
          .filter(([, name]) => !(name in properties))
          .map(([value, name]) => ({ value: { ...value, [name]: 1 }, why: `${path}: unknown field ${name}` }))
      )
    }
    if (schema.minProperties !== undefined && schema.minProperties > 0) {
      breaking.push(fc.constant({ value: {}, why: `${path}: fewer than ${schema.minProperties} properties` }))
    }
    for (const [name, property] of Object.entries(properties)) {
      if (!this.canBreak(property)) continue
      breaking.push(
        fc
          .tuple(whole, this.invalid(property, path === "" ? name : `${path}.${name}`))
          .map(([value, broken]) => ({ value: { ...value, [name]: broken.value }, why: broken.why }))
      )
    }
  }
}
