/**
 * Requests generated from openapi.yaml: for every operation, requests that keep to the contract and
 * requests that break it in one place (a parameter, the body, its content type, its encoding), or
 * carry hostile input (control characters, U+0000, lone surrogates, deep and wide JSON, malformed
 * multipart), with every kind of credential; and requests for methods and paths the contract does
 * not have, and malformed HTTP. A request names existing resources by placeholder
 * (`{{document:7}}`), filled in when it is sent (fuzzRun.ts); whether it keeps to the contract is
 * judged then, by fuzzOracle.ts.
 */
import fc from "fast-check"
import { contract } from "./contract.ts"
import { type JsonSchema, SchemaArbitraries } from "./fuzzSchema.ts"

export type Credential =
  | "none"
  | "basic"
  | "curator"
  | "admin"
  | "apiKey"
  | "cookie"
  | "cookieWithoutCsrf"
  | "revokedApiKey"
  | "garbage"
  | "foreignJwt"
  | "expiredJwt"
  | "strangerJwt"
  | "oddClaimsJwt"
  | "algNoneJwt"

/** What the contract says of a request: it must be accepted, it must be refused, or either. */
export type Verdict = "valid" | "invalid" | "any"

/** JSON too big to generate eagerly, put in place of `marker` (a JSON string) when sent. */
export interface Expansion {
  readonly marker: string
  /** `pad-to-limit`: the body padded with spaces to BASALT_BODY_LIMIT plus `size` bytes. */
  readonly shape: "deep-array" | "deep-object" | "wide-array" | "wide-object" | "long-string" | "pad-to-limit"
  readonly size: number
}

export interface PlannedRequest {
  /** The kind of request, for grouping: "valid", "broken body", "hostile string", ... */
  readonly variant: string
  readonly detail: string
  readonly method: string
  /** Path and query, with `{{pool:n}}` placeholders. */
  readonly target: string
  readonly headers: Readonly<Record<string, string>>
  readonly credential: Credential
  readonly body?: string | Uint8Array
  readonly expansion?: Expansion
  /** Where the oracle cannot judge (multipart, raw HTTP): what the generator knows. */
  readonly verdict?: Verdict
  /** Bytes sent as they are on a connection of their own, instead of a fetch. */
  readonly raw?: string
  /** Refused by Node's HTTP parser before any route (its answer must still be the one error shape). */
  readonly transport?: boolean
}

export interface Parameter {
  readonly name: string
  readonly in: "path" | "query" | "header" | "cookie"
  readonly required: boolean
  readonly schema: JsonSchema
}

export interface Operation {
  readonly id: string
  readonly method: string
  readonly template: string
  readonly parameters: ReadonlyArray<Parameter>
  readonly body: { readonly required: boolean; readonly content: Readonly<Record<string, JsonSchema>> } | undefined
  /** Answers 207 with a result per item of the body's list. */
  readonly multiStatus: boolean
  /** `x-unknown-query-parameters`: whether a query parameter it does not declare is refused (the default) or ignored. */
  readonly unknownQuery: "refuse" | "ignore"
}

const resolveRef = (ref: string): any =>
  ref
    .slice(2)
    .split("/")
    .reduce((at: any, key) => at?.[key.replace(/~1/g, "/").replace(/~0/g, "~")], contract)

const deref = (node: any) => (typeof node?.$ref === "string" ? resolveRef(node.$ref) : node)

export const schemas = new SchemaArbitraries(resolveRef)

const httpMethods = ["get", "put", "post", "delete", "options", "head", "patch", "trace"]

export const operations: ReadonlyArray<Operation> = Object.entries<any>(contract.paths).flatMap(([template, item]) =>
  Object.entries<any>(item)
    .filter(([method]) => httpMethods.includes(method))
    .map(([method, operation]) => ({
      id: operation.operationId,
      method: method.toUpperCase(),
      template,
      parameters: [...(item.parameters ?? []), ...(operation.parameters ?? [])].map(deref).map((parameter: any) => ({
        name: parameter.name,
        in: parameter.in,
        required: parameter.required === true,
        schema: parameter.schema ?? {}
      })),
      body:
        operation.requestBody === undefined
          ? undefined
          : {
              required: deref(operation.requestBody).required === true,
              content: Object.fromEntries(
                Object.entries<any>(deref(operation.requestBody).content).map(([type, media]) => [type, media.schema ?? {}])
              )
            },
      multiStatus: operation.responses?.["207"] !== undefined,
      unknownQuery: operation["x-unknown-query-parameters"] === "ignore" ? ("ignore" as const) : ("refuse" as const)
    }))
)

/** Which pool of existing ids a parameter or body field names. */
export const idPools: Readonly<Record<string, string>> = {
  document_id: "document",
  document_ids: "document",
  collection_id: "collection",
  collection_ids: "collection",
  collections: "collection",
  user_id: "user",
  actor_id: "user",
  key_id: "apiKey"
}

const placeholder = (pool: string) => fc.nat({ max: 9999 }).map((index) => `{{${pool}:${index}}}`)

// ---------------------------------------------------------------------------------------------
// Hostile values

/** Strings that have broken servers: each labelled. U+0000 and lone surrogates are issue 12's rule 1. */
export const hostileStrings: ReadonlyArray<readonly [string, string]> = [
  ["NUL", "a\u0000b"],
  ["NUL", "\u0000"],
  ["lone surrogate", "\ud800"],
  ["lone surrogate", "x\udfffy"],
  ["lone surrogate", "\udc00\ud800"],
  ["C0 controls", "\u0001\u0002\u001f"],
  ["C0 controls", "line\r\nbreak\ttab\u000b\u000c"],
  ["escape sequence", "\u001b[31mred\u001b[0m"],
  ["DEL and C1", "\u007f\u0085\u009f"],
  ["bidi and zero width", "\u202eevil\u202c\u200b\u200d\ufeff"],
  ["line separators", "\u2028\u2029"],
  ["noncharacters", "\ufffe\uffff\u{10ffff}"],
  ["astral and ZWJ", "👩‍👩‍👧‍👦𝒜🏳️‍🌈"],
  ["combining", "e\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301"],
  ["SQL", "' OR 1=1 --"],
  ["SQL", "%_\\$1E'\\x00'"],
  ["markup", "<script>alert(1)</script>"],
  ["path", "../../etc/passwd"],
  ["JSON in a string", '{"a":[1,{"b":null}]}'],
  ["numbers as text", "1e309 -0 NaN Infinity"],
  ["whitespace only", " \t "],
  ["empty", ""],
  ["long astral", "𝒜".repeat(300)],
  ["long", "x".repeat(5000)]
]

const hostileString = fc.constantFrom(...hostileStrings)

/** Percent-encoding that also writes lone surrogates (as the bytes WTF-8 gives them: invalid UTF-8). */
export const percentEncode = (value: string): string => {
  let out = ""
  for (const char of value) {
    const code = char.codePointAt(0)!
    if (code >= 0xd800 && code <= 0xdfff) {
      out += [0xe0 | (code >> 12), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f)]
        .map((byte) => `%${byte.toString(16).toUpperCase()}`)
        .join("")
    } else out += encodeURIComponent(char)
  }
  return out
}

const rawEncodings: ReadonlyArray<readonly [string, string]> = [
  ["bad percent-encoding", "%zz"],
  ["bad percent-encoding", "%"],
  ["truncated UTF-8", "%e2%82"],
  ["overlong UTF-8", "%C0%AF"],
  ["encoded slash", "a%2Fb"],
  ["dot segments", "%2e%2e"],
  ["plus", "a+b"]
]

// ---------------------------------------------------------------------------------------------
// Parts of a request

interface Part {
  readonly text: string
  readonly note?: string
}

const serialize = (value: unknown) => (typeof value === "string" ? value : JSON.stringify(value))

/** Whether a query parameter is a list, sent as `name=a&name=b` (style form, explode: OpenAPI's default). */
export const isList = (parameter: Parameter) => parameter.in === "query" && schemas.resolved(parameter.schema).type === "array"

/** A value as the query or path carries it: percent-encoded, a list as repeated pairs. */
const encodeParameter = (parameter: Parameter, value: unknown) =>
  isList(parameter) && Array.isArray(value)
    ? value.map((item) => percentEncode(serialize(item))).join(`&${encodeURIComponent(parameter.name)}=`)
    : percentEncode(serialize(value))

const validParameterValue = (parameter: Parameter): fc.Arbitrary<string> => {
  const pool = idPools[parameter.name]
  const value = schemas.valid(parameter.schema).map((v) => encodeParameter(parameter, v))
  if (parameter.name === "cursor") return placeholder(`cursor`)
  return pool === undefined ? value : fc.oneof({ weight: 3, arbitrary: placeholder(pool) }, { weight: 2, arbitrary: value })
}

const brokenParameterValue = (parameter: Parameter): fc.Arbitrary<Part> => {
  const wire = (value: unknown) => encodeParameter(parameter, value)
  const broken = schemas.canBreak(parameter.schema)
    ? schemas.invalid(parameter.schema, `${parameter.in}.${parameter.name}`).map((b) => ({ text: wire(b.value), note: b.why }))
    : fc.constant({ text: "x", note: `${parameter.in}.${parameter.name}: (any value is valid)` })
  const numeric = ["integer", "number"].includes(schemas.resolved(parameter.schema).type)
  const lexical = fc.constantFrom("0x10", "1e1", "+5", " 5", "5.0", "5abc", "", "１２", "9".repeat(30), "-0", "Infinity", "NaN")
  return numeric
    ? fc.oneof(
        broken,
        lexical.map((text) => ({
          text: percentEncode(text),
          note: `${parameter.in}.${parameter.name}: lenient number ${JSON.stringify(text)}`
        }))
      )
    : broken
}

const hostileParameterValue = (parameter: Parameter): fc.Arbitrary<Part> =>
  fc.oneof(
    {
      weight: 3,
      arbitrary: hostileString.map(([label, value]) => ({
        text: percentEncode(value),
        note: `${parameter.in}.${parameter.name}: ${label}`
      }))
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom(...rawEncodings).map(([label, text]) => ({ text, note: `${parameter.in}.${parameter.name}: ${label}` }))
    }
  )

type PartsOf = (op: Operation) => fc.Arbitrary<{ path: Record<string, Part>; query: Record<string, Part> }>

/** Valid path and query values; optional query parameters sometimes left out. */
const validParameters: PartsOf = (op) =>
  fc.record({
    path: fc.record(
      Object.fromEntries(
        op.parameters.filter((p) => p.in === "path").map((p) => [p.name, validParameterValue(p).map((text) => ({ text }))])
      )
    ),
    query: fc.record(
      Object.fromEntries(
        op.parameters.filter((p) => p.in === "query").map((p) => [p.name, validParameterValue(p).map((text) => ({ text }))])
      ),
      { requiredKeys: op.parameters.filter((p) => p.in === "query" && p.required).map((p) => p.name) }
    )
  })

const targetOf = (op: Operation, path: Record<string, Part>, query: Record<string, Part>, extraQuery = "") => {
  const pathText = op.template.replace(/\{([^}]+)\}/g, (_, name: string) => path[name]?.text ?? "")
  const pairs = Object.entries(query).map(([name, part]) => `${encodeURIComponent(name)}=${part.text}`)
  if (extraQuery !== "") pairs.push(extraQuery)
  return pairs.length === 0 ? pathText : `${pathText}?${pairs.join("&")}`
}

// ---------------------------------------------------------------------------------------------
// Credentials and headers

const credential: fc.Arbitrary<Credential> = fc.oneof(
  { weight: 14, arbitrary: fc.constantFrom<Credential>("basic", "curator", "admin", "apiKey", "cookie") },
  { weight: 3, arbitrary: fc.constant<Credential>("none") },
  {
    weight: 4,
    arbitrary: fc.constantFrom<Credential>(
      "cookieWithoutCsrf",
      "revokedApiKey",
      "garbage",
      "foreignJwt",
      "expiredJwt",
      "strangerJwt",
      "oddClaimsJwt",
      "algNoneJwt"
    )
  }
)

/** Headers a client may add: usually none, sometimes odd ones. */
const extraHeaders: fc.Arbitrary<{ headers: Record<string, string>; note?: string }> = fc.oneof(
  { weight: 12, arbitrary: fc.constant({ headers: {} }) },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom("abc-123", "has space", "ünïcödé", "x".repeat(129), "", "../x", "a\tb")
      .map((id) => ({ headers: { "x-request-id": id }, note: `x-request-id ${JSON.stringify(id.slice(0, 20))}` }))
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom("gzip", "br", "identity;q=0", "*;q=0", "gzip;q=0, br;q=0", "deflate", "zstd", "br;q=abc", "x".repeat(500))
      .map((value) => ({ headers: { "accept-encoding": value }, note: `accept-encoding ${value.slice(0, 20)}` }))
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom("text/html", "application/xml", "*/*;q=0", "application/json;q=0", "nonsense")
      .map((value) => ({ headers: { accept: value }, note: `accept ${value}` }))
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom(
        ["traceparent", "00-zzzz-zzzz-01"],
        ["traceparent", `00-${"0".repeat(32)}-${"0".repeat(16)}-01`],
        ["x-forwarded-for", "1.2.3.4, ::1, not-an-ip"],
        ["cookie", "basalt_session=; basalt_session=x; =; ;;"],
        ["x-csrf-token", "x".repeat(2000)],
        ["last-event-id", "not-a-position"],
        ["last-event-id", "9".repeat(40)],
        ["if-none-match", "*"],
        ["range", "bytes=0-0"]
      )
      .map(([name, value]) => ({ headers: { [name]: value }, note: `${name} ${value.slice(0, 24)}` }))
  }
)

// ---------------------------------------------------------------------------------------------
// JSON bodies

const marker = "\u0001FUZZ\u0001"
const markerJson = JSON.stringify(marker)

/** The string leaves of a JSON value, as paths. */
const stringPaths = (value: unknown, path: ReadonlyArray<string | number> = []): Array<ReadonlyArray<string | number>> => {
  if (typeof value === "string") return [path]
  if (Array.isArray(value)) return value.flatMap((item, index) => stringPaths(item, [...path, index]))
  if (value !== null && typeof value === "object") return Object.entries(value).flatMap(([key, item]) => stringPaths(item, [...path, key]))
  return []
}

const setAt = (value: unknown, path: ReadonlyArray<string | number>, replacement: unknown): unknown => {
  if (path.length === 0) return replacement
  const [head, ...rest] = path
  if (Array.isArray(value)) return value.map((item, index) => (index === head ? setAt(item, rest, replacement) : item))
  return { ...(value as object), [head!]: setAt((value as any)[head!], rest, replacement) }
}

/** Existing ids in the fields that name resources, from some of the generated uuids. */
const withExistingIds = (value: unknown, key = ""): unknown => {
  if (typeof value === "string") {
    const pool = idPools[key]
    const hex = Number.parseInt(value.slice(0, 4), 16)
    return pool !== undefined && /^[0-9a-f-]{36}$/i.test(value) && hex % 3 !== 0 ? `{{${pool}:${hex}}}` : value
  }
  if (Array.isArray(value)) return value.map((item) => withExistingIds(item, key))
  if (value !== null && typeof value === "object")
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withExistingIds(v, k)]))
  return value
}

interface Body {
  readonly text: string
  readonly contentType: string | undefined
  readonly note: string
  readonly expansion?: Expansion
  readonly bytes?: Uint8Array
}

const jsonTypes = fc.constantFrom("application/json", "application/json", "application/json; charset=utf-8")

const validJson = (schema: JsonSchema) => schemas.valid(schema).map(withExistingIds)

const deepShapes = fc.constantFrom<Expansion["shape"]>("deep-array", "deep-object")
const wideShapes = fc.constantFrom<Expansion["shape"]>("wide-array", "wide-object", "long-string")
const depths = fc.constantFrom(32, 33, 64, 1000, 3000, 5000, 100_000)
const widths = fc.constantFrom(1000, 20_000, 100_000)

/** Where in `value` to put something: the whole, a top-level field, or a string leaf. */
const spotIn = (value: unknown) =>
  fc.nat().map((n) => {
    const spots = [
      [],
      ...(value !== null && typeof value === "object" ? Object.keys(value).map((key) => [key]) : []),
      ...stringPaths(value)
    ]
    return spots[n % spots.length]!
  })

/** Where a schema takes any JSON (metadata): where depth and width are the server's to bound. */
const freeFormPaths = (input: JsonSchema, path: ReadonlyArray<string | number> = []): Array<ReadonlyArray<string | number>> => {
  const schema = schemas.resolved(input)
  if (path.length > 4) return []
  if (schema.type === "object" && schema.properties === undefined && schema.additionalProperties !== false) return [path]
  if (schema.items !== undefined) return freeFormPaths(schema.items, [...path, 0])
  return Object.entries<JsonSchema>(schema.properties ?? {}).flatMap(([name, property]) => freeFormPaths(property, [...path, name]))
}

const malformed: ReadonlyArray<readonly [string, (valid: string) => string]> = [
  ["truncated", (valid) => valid.slice(0, Math.max(1, Math.floor(valid.length / 2)))],
  ["trailing garbage", (valid) => `${valid}}`],
  ["two documents", (valid) => `${valid}${valid}`],
  ["single quotes", (valid) => valid.replace(/"/g, "'")],
  ["trailing comma", (valid) => valid.replace(/}$/, ",}")],
  ["comment", (valid) => `${valid} // comment`],
  ["raw control character in a string", (valid) => valid.replace(/"([^"]*)"/, '"$1\u0001"')],
  ["invalid escape", (valid) => valid.replace(/"([^"]*)"/, '"$1\\x00"')],
  ["byte order mark", (valid) => `\ufeff${valid}`],
  ["NaN", () => '{"limit": NaN}'],
  ["leading zero", () => '{"limit": 01}'],
  ["huge number", () => `{"limit": 1${"0".repeat(400)}}`],
  ["empty", () => ""],
  ["whitespace", () => "  \n "],
  ["null", () => "null"],
  ["array", () => "[]"],
  ["string", () => '"text"'],
  ["number", () => "42"],
  ["duplicate keys", (valid) => valid.replace(/^\{/, '{"title":"first","title":"second",')]
]

const jsonBodies = (schema: JsonSchema): fc.Arbitrary<Body> => {
  const valid = validJson(schema)
  const hostile = fc
    .tuple(valid, fc.nat(), hostileString, fc.constantFrom("replace", "append"), jsonTypes)
    .map(([value, n, [label, bad], how, contentType]) => {
      const paths = stringPaths(value)
      const path =
        paths.length > 0 ? paths[n % paths.length]! : typeof value === "object" && value !== null ? [Object.keys(value)[0] ?? "field"] : []
      const current = paths.length > 0 ? String(path.reduce((at: any, key) => at[key], value)) : ""
      const replaced = setAt(value, path, how === "replace" ? bad : `${current}${bad}`)
      return { text: JSON.stringify(replaced), contentType, note: `hostile string: ${label} at body.${path.join(".")}` }
    })
  const hostileKey = fc
    .tuple(
      valid,
      fc.constantFrom(
        ["NUL in a key", "k\u0000"],
        ["lone surrogate in a key", "\udead"],
        ["__proto__ key", "__proto__"],
        ["empty key", ""],
        ["constructor key", "constructor"]
      )
    )
    .map(([value, [label, key]]) => {
      const holder = value !== null && typeof value === "object" && "metadata" in value ? "metadata" : undefined
      const inner = { [marker]: "v" }
      const body = holder === undefined ? { ...(value as object), ...inner } : { ...(value as object), metadata: inner }
      return {
        text: JSON.stringify(body).replace(markerJson, JSON.stringify(key)),
        contentType: "application/json",
        note: `hostile key: ${label} in body${holder === undefined ? "" : ".metadata"}`
      }
    })
  const freeForm = freeFormPaths(schema)
  const big = (shapes: fc.Arbitrary<Expansion["shape"]>, sizes: fc.Arbitrary<number>, label: string) =>
    fc.tuple(valid, shapes, sizes).chain(([value, shape, size]) =>
      (freeForm.length === 0 ? spotIn(value) : fc.oneof(spotIn(value), fc.constantFrom(...freeForm), fc.constantFrom(...freeForm))).map(
        (spot) => ({
          text: JSON.stringify(setAt(value, spot, marker)),
          contentType: "application/json",
          expansion: { marker: markerJson, shape, size },
          note: `${label}: ${shape} ${size} at body${spot.length === 0 ? "" : `.${spot.join(".")}`}`
        })
      )
    )
  return fc.oneof(
    {
      weight: 10,
      arbitrary: fc.tuple(valid, jsonTypes).map(([value, contentType]) => ({ text: JSON.stringify(value), contentType, note: "valid" }))
    },
    {
      weight: 8,
      arbitrary: fc
        .tuple(schemas.invalid(schema, "body"), jsonTypes)
        .map(([b, contentType]) => ({ text: JSON.stringify(withExistingIds(b.value)), contentType, note: `broken body: ${b.why}` }))
    },
    { weight: 5, arbitrary: hostile },
    { weight: 1, arbitrary: hostileKey },
    { weight: 3, arbitrary: big(deepShapes, depths, "deep JSON") },
    { weight: 1, arbitrary: big(wideShapes, widths, "wide JSON") },
    {
      weight: 2,
      arbitrary: fc.tuple(valid, fc.constantFrom(...malformed)).map(([value, [label, make]]) => ({
        text: make(JSON.stringify(value)),
        contentType: "application/json",
        note: `malformed JSON: ${label}`
      }))
    },
    {
      weight: 2,
      arbitrary: fc
        .tuple(
          valid,
          fc.constantFrom(
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/xml",
            "application/json-patch+json",
            "application/jsonx",
            "*/*",
            "",
            undefined,
            "application/json; charset=utf-16",
            "APPLICATION/JSON"
          )
        )
        .map(([value, contentType]) => ({
          text: JSON.stringify(value),
          contentType,
          note: `content type: ${contentType === undefined ? "missing" : JSON.stringify(contentType)}`
        }))
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(valid, fc.constantFrom(["\u00ff", 0xff], ["overlong", 0xc0], ["lone surrogate bytes", 0xed]))
        .map(([value, [label, byte]]) => {
          const text = JSON.stringify(setAt(value, stringPaths(value)[0] ?? [], marker))
          const [before, after = ""] = text.split(markerJson.slice(1, -1))
          const encoder = new TextEncoder()
          const middle = byte === 0xed ? [0xed, 0xa0, 0x80] : byte === 0xc0 ? [0xc0, 0xaf] : [0xff]
          const bytes = new Uint8Array([...encoder.encode(before), ...middle, ...encoder.encode(after)])
          return { text: "", bytes, contentType: "application/json", note: `invalid UTF-8 in body: ${label}` }
        })
    },
    {
      weight: 1,
      arbitrary: fc.tuple(valid, fc.constantFrom(0, 1)).map(([value, over]) => ({
        text: JSON.stringify(value),
        contentType: "application/json",
        expansion: { marker: "", shape: "pad-to-limit" as const, size: over },
        note: `body limit: ${over === 0 ? "exactly" : "one byte over"} BASALT_BODY_LIMIT (padded with spaces)`
      }))
    },
    { weight: 1, arbitrary: fc.constant({ text: "", contentType: undefined, note: "no body" }) }
  )
}

// ---------------------------------------------------------------------------------------------
// Form bodies (the OAuth2 token grant)

const formBodies = (schema: JsonSchema): fc.Arbitrary<Body> => {
  const encode = (value: unknown) =>
    value === null || typeof value !== "object"
      ? percentEncode(serialize(value))
      : Object.entries(value)
          .map(([key, v]) => `${percentEncode(key)}=${percentEncode(serialize(v))}`)
          .join("&")
  const valid = schemas.valid(schema)
  const contentType = "application/x-www-form-urlencoded"
  return fc.oneof(
    { weight: 6, arbitrary: valid.map((value) => ({ text: encode(value), contentType, note: "valid" })) },
    {
      weight: 2,
      arbitrary: valid.map((value) => ({
        text: encode({ ...(value as object), grant_type: "password" }),
        contentType,
        note: "valid: password grant"
      }))
    },
    {
      weight: 4,
      arbitrary: schemas.invalid(schema, "body").map((b) => ({ text: encode(b.value), contentType, note: `broken body: ${b.why}` }))
    },
    {
      weight: 4,
      arbitrary: fc
        .tuple(valid, fc.constantFrom("grant_type", "username", "password", "scope"), hostileString)
        .map(([value, field, [label, bad]]) => ({
          text: encode({ ...(value as object), [field]: bad }),
          contentType,
          note: `hostile string: ${label} at body.${field}`
        }))
    },
    {
      weight: 1,
      arbitrary: fc.tuple(valid, fc.constantFrom(...rawEncodings)).map(([value, [label, raw]]) => ({
        text: `${encode(value)}&username=${raw}`,
        contentType,
        note: `form encoding: ${label}`
      }))
    },
    {
      weight: 2,
      arbitrary: fc
        .tuple(valid, fc.constantFrom("application/json", "text/plain", "multipart/form-data", undefined))
        .map(([value, type]) => ({
          text: type === "application/json" ? JSON.stringify(value) : encode(value),
          contentType: type,
          note: `content type: ${type ?? "missing"}`
        }))
    },
    { weight: 1, arbitrary: fc.constant({ text: "", contentType, note: "empty form" }) }
  )
}

// ---------------------------------------------------------------------------------------------
// Multipart bodies (uploads)

const words = ["alpha", "basalt", "granite", "search", "index", "river", "policy", "onboarding", "signing", "keys", "rotate", "team"]
const prose = fc.array(fc.constantFrom(...words), { minLength: 1, maxLength: 40 }).map((ws) => `${ws.join(" ")}.\n`)

interface MultipartPart {
  readonly name: string
  readonly filename?: string
  readonly contentType?: string
  readonly content: string | Uint8Array
}

const multipartBytes = (parts: ReadonlyArray<MultipartPart>, boundary: string, options: { close?: boolean; blankLine?: boolean } = {}) => {
  const chunks: Array<Uint8Array> = []
  for (const part of parts) {
    const disposition = `form-data; name="${part.name}"${part.filename === undefined ? "" : `; filename="${part.filename}"`}`
    const head = `--${boundary}\r\ncontent-disposition: ${disposition}\r\n${part.contentType === undefined ? "" : `content-type: ${part.contentType}\r\n`}${options.blankLine === false ? "" : "\r\n"}`
    chunks.push(bytesOf(head), typeof part.content === "string" ? bytesOf(part.content) : part.content, bytesOf("\r\n"))
  }
  if (options.close !== false) chunks.push(bytesOf(`--${boundary}--\r\n`))
  return Buffer.concat(chunks)
}

/**
 * UTF-8, except that a lone surrogate is written as UTF-8 would write its code point (WTF-8):
 * invalid UTF-8, which is what a lone surrogate is on the wire (TextEncoder would send U+FFFD).
 */
const bytesOf = (text: string) => {
  const bytes: Array<number> = []
  for (const char of text) {
    const code = char.codePointAt(0)!
    if (code >= 0xd800 && code <= 0xdfff) bytes.push(0xe0 | (code >> 12), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f))
    else bytes.push(...new TextEncoder().encode(char))
  }
  return new Uint8Array(bytes)
}

/** Files nobody should send, each labelled. */
const hostileFiles: ReadonlyArray<readonly [string, () => string | Uint8Array]> = [
  ["HTML nested 50,000 deep", () => `<html><body>${"<div>".repeat(50_000)}x${"</div>".repeat(50_000)}</body></html>`],
  ["JSON nested 5,000 deep", () => `${"[".repeat(5000)}${"]".repeat(5000)}`],
  ["text with U+0000", () => "before\u0000after\n"],
  ["invalid UTF-8", () => new Uint8Array([0x68, 0x69, 0xff, 0xfe, 0xc0, 0xaf, 0xed, 0xa0, 0x80, 0x0a])],
  ["binary", () => new Uint8Array(Array.from({ length: 512 }, (_, i) => (i * 73) % 256))],
  ["PDF header, garbage", () => "%PDF-1.7\n1 0 obj << /Length 99999 >> stream\nxx"],
  ["ZIP header, garbage", () => new Uint8Array([0x50, 0x4b, 0x03, 0x04, 0x14, 0, 0, 0, 8, 0, 1, 2, 3])],
  ["empty", () => ""],
  ["CSV, 5,000 columns", () => `${Array.from({ length: 5000 }, (_, i) => `c${i}`).join(",")}\n${"1,".repeat(4999)}1\n`],
  ["CSV with unbalanced quotes", () => 'a,b\n"x,y\nz'],
  ["markdown of headings only", () => "#\n".repeat(20_000)],
  ["JSON with U+0000 escape", () => '{"a":"\\u0000","b":"\\ud800"}'],
  ["byte order mark and text", () => "\ufeffhello"],
  ["over the upload limit by far (200 KB)", () => "word ".repeat(40_000)]
]

const uploadBodies = (): fc.Arbitrary<Body> => {
  const boundary = fc.stringMatching(/^[A-Za-z0-9]{8,40}$/)
  const file = fc
    .tuple(prose, fc.constantFrom("notes.txt", "a.md", "read me.txt", "x"))
    .map(([content, filename]) => ({ name: "files", filename, contentType: "text/plain", content }))
  const fields = fc.record(
    {
      source: schemas.valid({ $ref: "#/components/schemas/DocumentSource" }),
      visibility: fc.constantFrom("private", "public"),
      tags: fc.array(fc.constantFrom("hr", "guide", "Policy", " spaced "), { maxLength: 3 }),
      collection_ids: fc.array(placeholder("collection"), { maxLength: 2 })
    },
    { requiredKeys: [] }
  )
  const fieldParts = (value: Record<string, unknown>): Array<MultipartPart> =>
    Object.entries(value).flatMap(([name, v]) =>
      Array.isArray(v) ? v.map((item) => ({ name, content: String(item) })) : [{ name, content: String(v) }]
    )
  const body = (
    parts: ReadonlyArray<MultipartPart>,
    b: string,
    note: string,
    verdict: Verdict,
    options = {}
  ): Body & { verdict: Verdict } => ({
    text: "",
    bytes: multipartBytes(parts, b, options),
    contentType: `multipart/form-data; boundary=${b}`,
    note,
    verdict
  })
  return fc.oneof(
    {
      weight: 6,
      arbitrary: fc
        .tuple(boundary, fc.array(file, { minLength: 1, maxLength: 3 }), fields)
        .map(([b, files, f]) => body([...files, ...fieldParts(f)], b, "valid upload", "valid"))
    },
    {
      weight: 3,
      arbitrary: fc
        .tuple(boundary, file, fc.constantFrom(...hostileFiles))
        .map(([b, ok, [label, make]]) =>
          body([ok, { name: "files", filename: "hostile.bin", content: make() }], b, `hostile file: ${label}`, "any")
        )
    },
    {
      weight: 2,
      arbitrary: fc
        .tuple(
          boundary,
          file,
          fc.constantFrom(
            ["visibility", "secret"],
            ["source", "Not A Source"],
            ["collection_ids", "not-a-uuid"],
            ["tags", "x".repeat(65)],
            ["unknown", "1"]
          )
        )
        .map(([b, ok, [name, value]]) => body([ok, { name, content: value }], b, `broken field: ${name}=${value.slice(0, 12)}`, "invalid"))
    },
    {
      weight: 2,
      arbitrary: fc
        .tuple(boundary, file, fc.constantFrom("tags", "source", "visibility"), hostileString)
        .map(([b, ok, name, [label, value]]) =>
          body(
            [ok, { name, content: value }],
            b,
            `hostile string: ${label} in field ${name}`,
            ["NUL", "lone surrogate"].includes(label) ? "invalid" : "any"
          )
        )
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(boundary, file, fc.constantFrom("../../etc/passwd", "a\u0000b.txt", "x".repeat(5000), "", "\ud800.txt", "con.txt"))
        .map(([b, ok, filename]) => body([{ ...ok, filename }], b, `hostile file name: ${JSON.stringify(filename.slice(0, 16))}`, "any"))
    },
    { weight: 1, arbitrary: fc.tuple(boundary, fields).map(([b, f]) => body(fieldParts(f), b, "no files part", "invalid")) },
    {
      weight: 1,
      arbitrary: fc.tuple(boundary, file).map(([b, ok]) =>
        body(
          Array.from({ length: 101 }, () => ok),
          b,
          "101 files",
          "any"
        )
      )
    },
    {
      weight: 3,
      arbitrary: fc
        .tuple(
          boundary,
          file,
          fc.constantFrom(
            "no boundary",
            "closing boundary missing",
            "no blank line after part headers",
            "other boundary",
            "multipart/mixed",
            "not multipart at all"
          )
        )
        .map(([b, ok, how]) => {
          const bytes = multipartBytes([ok], b, {
            close: how !== "closing boundary missing",
            blankLine: how !== "no blank line after part headers"
          })
          const contentType =
            how === "no boundary"
              ? "multipart/form-data"
              : how === "other boundary"
                ? `multipart/form-data; boundary=${b}x`
                : how === "multipart/mixed"
                  ? `multipart/mixed; boundary=${b}`
                  : `multipart/form-data; boundary=${b}`
          const text = how === "not multipart at all" ? "just text" : ""
          return {
            text,
            bytes: how === "not multipart at all" ? bytesOf(text) : bytes,
            contentType,
            note: `malformed multipart: ${how}`,
            verdict: "invalid" as Verdict
          }
        })
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom("application/json", "text/plain", undefined).map((contentType) => ({
        text: '{"files":["x"]}',
        contentType,
        note: `content type: ${contentType ?? "missing"}`,
        verdict: "invalid" as Verdict
      }))
    }
  )
}

// ---------------------------------------------------------------------------------------------
// Requests

const bodiesOf = (op: Operation): fc.Arbitrary<Body & { verdict?: Verdict }> | undefined => {
  if (op.body === undefined) return undefined
  const [type, schema] = Object.entries(op.body.content)[0]!
  if (type === "application/json") return jsonBodies(schema)
  if (type === "application/x-www-form-urlencoded") return formBodies(schema)
  if (type === "multipart/form-data") return uploadBodies()
  throw new Error(`fuzzRequests: request content type ${type} is not supported; teach tests/support/fuzzRequests.ts`)
}

const unknownQuery = fc.constantFrom("emial=x", "unknown=1", "limit2=3", "%00=1", "debug=true")

/** A request to `op`: valid, or broken or hostile in its parameters, body or headers. */
const operationRequest = (op: Operation): fc.Arbitrary<PlannedRequest> => {
  const parameters = op.parameters.filter((p) => p.in === "path" || p.in === "query")
  const bodies = bodiesOf(op) ?? fc.constant(undefined)
  const parameterChange = fc.oneof(
    { weight: 12, arbitrary: fc.constant({ kind: "none" as const }) },
    ...(parameters.length === 0
      ? []
      : [
          {
            weight: 4,
            arbitrary: fc
              .constantFrom(...parameters)
              .chain((p) => brokenParameterValue(p).map((part) => ({ kind: "broken parameter" as const, parameter: p, part })))
          },
          {
            weight: 4,
            arbitrary: fc
              .constantFrom(...parameters)
              .chain((p) => hostileParameterValue(p).map((part) => ({ kind: "hostile parameter" as const, parameter: p, part })))
          }
        ]),
    { weight: 1, arbitrary: unknownQuery.map((extra) => ({ kind: "unknown query parameter" as const, extra })) },
    ...(op.parameters.some((p) => p.in === "query" && !isList(p))
      ? [{ weight: 1, arbitrary: fc.constant({ kind: "repeated query parameter" as const }) }]
      : [])
  )
  return fc.tuple(validParameters(op), parameterChange, bodies, credential, extraHeaders).map(([values, change, body, who, extra]) => {
    const path = { ...values.path }
    const query = { ...values.query }
    let extraQuery = ""
    let variant = body?.note.split(":")[0] ?? "valid"
    let detail = body?.note ?? ""
    if (change.kind === "broken parameter" || change.kind === "hostile parameter") {
      ;(change.parameter.in === "path" ? path : query)[change.parameter.name] = change.part
      variant = change.kind === "broken parameter" ? "broken parameter" : `hostile parameter: ${change.part.note?.split(": ")[1]}`
      detail = [change.part.note, detail].filter(Boolean).join("; ")
    } else if (change.kind === "unknown query parameter") {
      extraQuery = change.extra
      variant = "unknown query parameter"
      detail = [change.extra, detail].filter(Boolean).join("; ")
    } else if (change.kind === "repeated query parameter") {
      const first = op.parameters.find((p) => p.in === "query" && !isList(p))!
      extraQuery = `${first.name}=${query[first.name]?.text ?? "1"}`
      variant = "repeated query parameter"
      detail = [first.name, detail].filter(Boolean).join("; ")
    }
    if (extra.note !== undefined) {
      variant = variant === "valid" ? `header: ${extra.note.split(" ")[0]}` : variant
      detail = [detail, extra.note].filter(Boolean).join("; ")
    }
    const headers: Record<string, string> = { ...extra.headers }
    if (body?.contentType !== undefined) headers["content-type"] = body.contentType
    const sendsBody = body !== undefined && body.note !== "no body" && op.method !== "GET"
    return {
      variant,
      detail: detail === "" ? "valid" : detail,
      method: op.method,
      target: targetOf(op, path, query, extraQuery),
      headers,
      credential: who,
      ...(sendsBody ? { body: body.bytes ?? body.text } : {}),
      ...(body?.expansion === undefined ? {} : { expansion: body.expansion }),
      ...(body?.verdict === undefined ? {} : { verdict: body.verdict })
    }
  })
}

const declaredMethods = new Map<string, ReadonlySet<string>>()
for (const op of operations) declaredMethods.set(op.template, new Set([...(declaredMethods.get(op.template) ?? []), op.method]))

/** A path the contract has, with a method it does not declare there. */
const wrongMethod: fc.Arbitrary<PlannedRequest> = fc
  .tuple(
    fc.constantFrom(...operations),
    fc.constantFrom("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "PROPFIND", "FOO"),
    credential
  )
  .filter(
    ([op, method]) => !declaredMethods.get(op.template)!.has(method) && !(method === "HEAD" && declaredMethods.get(op.template)!.has("GET"))
  )
  .chain(([op, method, who]) =>
    validParameters(op).map((values) => ({
      variant: "method not declared",
      detail: `${method} on ${op.template}`,
      method,
      target: targetOf(op, values.path, {}),
      headers: ["POST", "PUT", "PATCH"].includes(method) ? { "content-type": "application/json" } : ({} as Record<string, string>),
      credential: who,
      // Node's parser knows PROPFIND (WebDAV), not FOO.
      ...(method === "FOO" ? { transport: true } : {}),
      ...(["POST", "PUT", "PATCH"].includes(method) ? { body: "{}" } : {})
    }))
  )

/** HEAD wherever GET is declared. */
const headRequest: fc.Arbitrary<PlannedRequest> = fc
  .tuple(fc.constantFrom(...operations.filter((op) => op.method === "GET")), credential)
  .chain(([op, who]) =>
    validParameters(op).map((values) => ({
      variant: "HEAD",
      detail: `HEAD ${op.template}`,
      method: "HEAD",
      target: targetOf(op, values.path, values.query),
      headers: {},
      credential: who
    }))
  )

const oddPaths = [
  "/",
  "/api",
  "/api/v1",
  "/api/v1/",
  "/api/v2/documents",
  "/api/v1/documents/",
  "//api/v1/documents",
  "/api/v1//documents",
  "/API/V1/DOCUMENTS",
  "/%zz",
  "/api/v1/documents/%zz",
  "/api/v1/collections/%zz/members",
  "/api/v1/documents/%2e%2e/collections",
  "/api/v1/documents/..%2f..%2fhealth",
  "/api/v1/documents/%00",
  "/api/v1/documents/%ED%A0%80",
  "/health/",
  "/health;x",
  "/docs/assets/../../openapi.json",
  "/docs/assets/%2e%2e%2fopenapi.json",
  "/docs/assets/swagger-ui.css%00.js",
  "/api/v1/collections/00000000-0000-0000-0000-000000000000/members/x/y",
  "/openapi.json/x",
  "/api/v1/documents/batch/x",
  "/api/v1/documents/{{document:1}}/chunks/x",
  `/${"a".repeat(8000)}`,
  "/api/v1/documents?limit=1#fragment",
  "/*",
  "/api/v1/documents/*"
]

const unknownPath: fc.Arbitrary<PlannedRequest> = fc
  .tuple(fc.constantFrom(...oddPaths), fc.constantFrom("GET", "POST", "DELETE", "OPTIONS"), credential)
  .map(([target, method, who]) => ({
    variant: "odd path",
    detail: `${method} ${target.slice(0, 60)}`,
    method,
    target,
    headers: {},
    credential: who
  }))

/** Headers Node's own parser refuses, before any route: the one error shape all the same. */
const oversizedHeaders: fc.Arbitrary<PlannedRequest> = fc
  .constantFrom(
    { name: "x-large", size: 20_000, count: 1 },
    { name: "x-many", size: 100, count: 200 },
    { name: "cookie", size: 17_000, count: 1 }
  )
  .map(({ name, size, count }) => ({
    variant: "headers over Node's limit",
    detail: `${count} × ${name} of ${size} bytes`,
    method: "GET",
    target: "/api/v1/users/me",
    headers: Object.fromEntries(Array.from({ length: count }, (_, i) => [count === 1 ? name : `${name}-${i}`, "v".repeat(size)])),
    credential: "basic",
    transport: true
  }))

/** Malformed HTTP, sent on a connection of its own. */
const rawRequests: ReadonlyArray<readonly [string, string]> = [
  ["not HTTP", "GARBAGE\r\n\r\n"],
  ["header without colon", "GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"],
  ["unknown HTTP version", "GET /health HTTP/9.9\r\nHost: x\r\n\r\n"],
  [
    "bad chunked body",
    "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
  ],
  [
    "Content-Length and Transfer-Encoding",
    "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
  ],
  [
    "non-numeric Content-Length",
    "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: abc\r\n\r\n{}"
  ],
  [
    "two Content-Lengths",
    "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"
  ],
  ["NUL in a header", "GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\u0000b\r\n\r\n"],
  ["absolute-form target", "GET http://elsewhere.example/health HTTP/1.1\r\nHost: x\r\n\r\n"],
  ["request line of 20 KB", `GET /${"a".repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`],
  ["space in the target", "GET /api/v1/documents?q=a b HTTP/1.1\r\nHost: x\r\n\r\n"],
  ["no Host", "GET /health HTTP/1.1\r\n\r\n"],
  ["lowercase method", "get /health HTTP/1.1\r\nHost: x\r\n\r\n"]
]

const rawRequest: fc.Arbitrary<PlannedRequest> = fc.constantFrom(...rawRequests).map(([label, raw]) => ({
  variant: "malformed HTTP",
  detail: label,
  // RFC 9112 section 3.2.2: a server must accept the absolute form.
  verdict: label === "absolute-form target" ? ("any" as const) : ("invalid" as const),
  method: raw.split(" ")[0]!,
  target: raw.split(" ")[1] ?? "/",
  headers: {},
  credential: "none",
  raw: raw.replace("Host: x\r\n", "Host: x\r\nConnection: close\r\n"),
  transport: true
}))

/** Every request the fuzz test sends: most to the contract's operations, each alike. */
export const fuzzRequest: fc.Arbitrary<PlannedRequest> = fc.oneof(
  { weight: 88, arbitrary: fc.oneof(...operations.map(operationRequest)) },
  { weight: 4, arbitrary: wrongMethod },
  { weight: 2, arbitrary: headRequest },
  { weight: 4, arbitrary: unknownPath },
  { weight: 1, arbitrary: oversizedHeaders },
  { weight: 1, arbitrary: rawRequest }
)
