/**
 * Judges a request, as sent, against openapi.yaml: whether the contract says it must be accepted
 * (`valid`), must be refused (`invalid`), or leaves it open (`any`). Schemas are checked with ajv
 * (JSON Schema 2020-12, formats in full, date-time as RFC 3339 writes it, and the contract's
 * `x-max-depth` and `x-max-bytes`), independently of what the generator meant to produce.
 *
 * Beyond the schemas, the contract's own rules (its description): a query parameter an operation
 * does not declare is refused unless it is marked `x-unknown-query-parameters: ignore`; an integer
 * in a query is decimal digits; a string holding U+0000 or a lone surrogate is refused (issue 12,
 * rule 1), so is JSON nested 1,000 deep or more anywhere (rule 2), and a body over
 * BASALT_BODY_LIMIT (413); percent-escapes that are not UTF-8 are refused (rule 1: never U+FFFD
 * in silence); a date-time described as "in the future" must be. Where the contract cannot say (a
 * cursor's meaning, a `%` not followed by two hex digits, which URL parsers keep or refuse, a
 * charset other than UTF-8), the request is `any`: it is still checked for everything else.
 */
import Ajv2020 from "ajv/dist/2020.js"
import addFormats from "ajv-formats"
import { fullFormats } from "ajv-formats/dist/formats.js"
import { contract, templateOf } from "./contract.ts"
import type { JsonSchema } from "./fuzzSchema.ts"
import { type Operation, operations, type PlannedRequest, type Verdict } from "./fuzzRequests.ts"

const ajv = new Ajv2020.default({ strict: false, allErrors: false })
addFormats.default(ajv)
// RFC 3339's date-time production: "T" between date and time (ajv-formats also takes a space).
const dateTime = fullFormats["date-time"] as { validate: (value: string) => boolean }
ajv.addFormat("date-time", {
  type: "string",
  validate: (value: string) => /^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt]/.test(value) && dateTime.validate(value)
})
/** How deep a JSON value is: a scalar 0, an object or array one more than its deepest member (without recursion). */
export const depthOf = (root: unknown): number => {
  let deepest = 0
  const stack: Array<[unknown, number]> = [[root, 1]]
  while (stack.length > 0) {
    const [value, depth] = stack.pop()!
    if (value === null || typeof value !== "object") continue
    deepest = Math.max(deepest, depth)
    for (const item of Object.values(value)) stack.push([item, depth + 1])
  }
  return deepest
}
ajv.addKeyword({ keyword: "x-max-depth", schemaType: "number", validate: (max: number, data: unknown) => depthOf(data) <= max })
ajv.addKeyword({
  keyword: "x-max-bytes",
  schemaType: "number",
  validate: (max: number, data: unknown) => Buffer.byteLength(JSON.stringify(data)) <= max
})
ajv.addSchema(contract, "openapi")

const withBase = (node: unknown): unknown =>
  Array.isArray(node)
    ? node.map(withBase)
    : node !== null && typeof node === "object"
      ? Object.fromEntries(
          Object.entries(node).map(([key, value]) => [
            key,
            key === "$ref" && typeof value === "string" && value.startsWith("#") ? `openapi${value}` : withBase(value)
          ])
        )
      : node

const compiled = new WeakMap<JsonSchema, ReturnType<typeof ajv.compile>>()
const validator = (schema: JsonSchema) => {
  let validate = compiled.get(schema)
  if (validate === undefined) {
    validate = ajv.compile(withBase(schema) as object)
    compiled.set(schema, validate)
  }
  return validate
}

const operationsByTemplate = new Map<string, Array<Operation>>()
for (const op of operations) operationsByTemplate.set(op.template, [...(operationsByTemplate.get(op.template) ?? []), op])

/** The operation `method target` is, with its path parameters as sent (the template as contract.ts finds it). */
export const operationOf = (method: string, target: string) => {
  const path = target.split("?")[0]!.split("#")[0]!
  const template = templateOf(path)
  const op = operationsByTemplate.get(template ?? "")?.find((candidate) => candidate.method === (method === "HEAD" ? "GET" : method))
  if (op === undefined) return undefined
  const pattern = new RegExp(`^${op.template.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\{[^}]+\}/g, "([^/]+)")}$`)
  const names = [...op.template.matchAll(/\{([^}]+)\}/g)].map((match) => match[1]!)
  const values = path.match(pattern)!.slice(1)
  return { op, path: Object.fromEntries(names.map((name, i) => [name, values[i]!])) }
}

const loneSurrogate = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/
/** Percent-encoded UTF-8 of a surrogate (what a lone surrogate becomes on the wire). */
const encodedSurrogate = /%ED%[AB][0-9A-F]/i

class Judgement {
  readonly refused: Array<string> = []
  readonly open: Array<string> = []
  invalid(why: string): undefined {
    this.refused.push(why)
  }
  any(why: string): undefined {
    this.open.push(why)
  }
  /** Rule 1, for one string of the request (other control characters are text like any other). */
  string(value: string, where: string) {
    if (value.includes("\u0000")) this.invalid(`${where}: U+0000 (rule 1)`)
    else if (loneSurrogate.test(value)) this.invalid(`${where}: lone surrogate (rule 1)`)
  }
  get verdict(): Verdict {
    return this.refused.length > 0 ? "invalid" : this.open.length > 0 ? "any" : "valid"
  }
}

/** Why `raw` does not percent-decode: `%` without two hex digits, or escapes that are not UTF-8. */
const undecodable = (judgement: Judgement, raw: string, where: string): undefined =>
  /%(?![0-9A-Fa-f]{2})/.test(raw)
    ? judgement.any(`${where}: a % that is no percent-escape`)
    : judgement.invalid(`${where}: percent-escapes that are not UTF-8 (rule 1)`)

const decoded = (raw: string): string | undefined => {
  try {
    return decodeURIComponent(raw.replace(/\+/g, " "))
  } catch {
    return undefined
  }
}

const resolved = (schema: JsonSchema): JsonSchema => {
  let current = schema
  while (typeof current.$ref === "string") {
    const { $ref, ...siblings } = current
    current = {
      ...$ref
        .slice(2)
        .split("/")
        .reduce((at: any, key: string) => at[key], contract),
      ...siblings
    }
  }
  return current
}

const typesOf = (schema: JsonSchema): ReadonlyArray<string> => {
  const { type } = resolved(schema)
  return type === undefined ? [] : Array.isArray(type) ? type : [type]
}

/** One value of a parameter as the contract means it: its text read as its schema's type (undefined: judged already). */
const parameterValue = (judgement: Judgement, raw: string, schema: JsonSchema, where: string): { value: unknown } | undefined => {
  if (encodedSurrogate.test(raw)) return judgement.invalid(`${where}: lone surrogate (rule 1)`)
  const text = decoded(raw)
  if (text === undefined) return undecodable(judgement, raw, where)
  judgement.string(text, where)
  const types = typesOf(schema)
  if (types.includes("integer")) {
    return /^[0-9]+$/.test(text) ? { value: Number(text) } : judgement.invalid(`${where}: not decimal digits`)
  }
  if (types.includes("number")) {
    return /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$/.test(text)
      ? { value: Number(text) }
      : judgement.invalid(`${where}: not a number`)
  }
  if (types.includes("boolean")) {
    if (text !== "true" && text !== "false") return judgement.invalid(`${where}: not a boolean`)
    return { value: text === "true" }
  }
  return { value: text }
}

/** A parameter (a list: every occurrence, OpenAPI's form style) checked against its schema. */
const parameter = (judgement: Judgement, raws: ReadonlyArray<string>, schema: JsonSchema, where: string) => {
  const list = typesOf(schema).includes("array")
  if (!list && raws.length > 1) judgement.any(`${where}: repeated`)
  const values = raws.map((raw) => parameterValue(judgement, raw, list ? (resolved(schema).items ?? {}) : schema, where))
  if (values.some((value) => value === undefined)) return
  const value = list ? values.map((v) => v!.value) : values[0]!.value
  const validate = validator(schema)
  if (!validate(value)) judgement.invalid(`${where}: ${ajv.errorsText(validate.errors)}`)
}

/** Depth, strings, keys and cursors of parsed JSON, without recursion (it may be 100,000 deep). */
const scanJson = (judgement: Judgement, root: unknown, at = "body") => {
  let deepest = 0
  const stack: Array<[unknown, number, string]> = [[root, 1, at]]
  while (stack.length > 0) {
    const [value, depth, where] = stack.pop()!
    if (typeof value === "string") judgement.string(value, where)
    if (value === null || typeof value !== "object") continue
    deepest = Math.max(deepest, depth)
    for (const [key, item] of Object.entries(value)) {
      if (!Array.isArray(value)) {
        judgement.string(key, `${where} key`)
        if (key === "cursor") judgement.any(`${where}.cursor: a cursor's meaning is beyond the schema`)
      }
      stack.push([item, depth + 1, depth < 4 ? `${where}.${key}` : where])
    }
  }
  if (deepest >= 1000) judgement.invalid(`${at}: nested ${deepest} deep (rule 2)`)
}

/** A top-level field of a JSON body as sent; undefined when the body is no JSON object. */
const sentField = (body: Uint8Array | undefined, name: string): unknown => {
  if (body === undefined) return undefined
  try {
    return JSON.parse(new TextDecoder().decode(body))?.[name]
  } catch {
    return undefined
  }
}

const mediaType = (header: string) => {
  const [type = "", ...params] = header.split(";")
  return {
    type: type.trim().toLowerCase(),
    params: Object.fromEntries(params.map((param) => param.split("=").map((part) => part.trim().toLowerCase())))
  }
}

/** The list of a body whose items are judged one by one (an operation answering 207), if it has one. */
const itemList = (op: Operation, schema: JsonSchema) => {
  if (!op.multiStatus) return undefined
  const lists = Object.entries<JsonSchema>(resolved(schema).properties ?? {}).filter(
    ([, property]) => resolved(property).items !== undefined
  )
  if (lists.length !== 1) return undefined
  const [name, property] = lists[0]!
  const { items, ...list } = resolved(property)
  const whole = resolved(schema)
  return { name, items: items as JsonSchema, whole: { ...whole, properties: { ...whole.properties, [name]: list } } }
}

/** Each item of a 207 operation's list, judged on its own. */
const itemJudgements = (list: { name: string; items: JsonSchema }, value: unknown): ReadonlyArray<Judgement> | undefined => {
  const items = (value as Record<string, unknown> | null)?.[list.name]
  if (!Array.isArray(items)) return undefined
  return items.map((item, index) => {
    const judgement = new Judgement()
    scanJson(judgement, item, `body.${list.name}[${index}]`)
    const validate = validator(list.items)
    if (!validate(item)) judgement.invalid(`body.${list.name}[${index}]: ${ajv.errorsText(validate.errors)}`)
    return judgement
  })
}

const body = (
  judgement: Judgement,
  op: Operation,
  headers: Readonly<Record<string, string>>,
  bytes: Uint8Array | undefined,
  planned: PlannedRequest
): ReadonlyArray<Judgement> | undefined => {
  if (op.body === undefined) {
    if (bytes !== undefined && bytes.length > 0) judgement.any("a body where the operation takes none")
    return
  }
  if (bytes === undefined || bytes.length === 0) {
    if (op.body.required) judgement.invalid("body: required, none sent")
    return
  }
  const contentType = headers["content-type"]
  if (contentType === undefined) return judgement.invalid("no content type")
  const media = mediaType(contentType)
  const schema = op.body.content[media.type]
  if (schema === undefined) return judgement.invalid(`content type ${media.type} not declared`)
  if (media.params.charset !== undefined && media.params.charset !== "utf-8") judgement.any(`charset ${media.params.charset}`)
  if (media.type === "multipart/form-data") {
    // Multipart is judged by the generator, which built it.
    if (planned.verdict === "invalid") judgement.invalid(`multipart: ${planned.detail}`)
    else if (planned.verdict !== "valid") judgement.any(`multipart: ${planned.detail}`)
    return
  }
  let text: string
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes)
  } catch {
    return judgement.invalid("body: not UTF-8 (RFC 8259 §8.1)")
  }
  let value: unknown
  if (media.type === "application/json") {
    if (text.startsWith("\ufeff")) judgement.any("body: byte order mark")
    if (/"((?:[^"\\]|\\.)*)"\s*:[^,}]*,\s*"\1"\s*:/.test(text.slice(0, 4096))) judgement.any("body: duplicate keys")
    try {
      value = JSON.parse(text.replace(/^\ufeff/, ""))
    } catch {
      return judgement.invalid("body: not JSON")
    }
    const list = itemList(op, schema)
    const items = list === undefined ? undefined : itemJudgements(list, value)
    if (list !== undefined && items !== undefined) {
      // The body around its items, then each item on its own.
      scanJson(judgement, { ...(value as object), [list.name]: [] })
      const validate = validator(list.whole)
      if (!validate(value)) judgement.invalid(`body: ${ajv.errorsText(validate.errors)}`)
      return items
    }
    scanJson(judgement, value)
  } else {
    const form: Record<string, string> = {}
    for (const pair of text.split("&").filter(Boolean)) {
      const [rawKey = "", rawValue = ""] = pair.split(/=(.*)/s)
      if (encodedSurrogate.test(pair)) judgement.invalid(`form field ${rawKey}: lone surrogate (rule 1)`)
      const key = decoded(rawKey)
      const item = decoded(rawValue)
      if (key === undefined || item === undefined) {
        undecodable(judgement, pair, `form field ${rawKey}`)
        continue
      }
      judgement.string(item, `form field ${key}`)
      if (key in form) judgement.any(`form field ${key} repeated`)
      form[key] = item
    }
    value = form
  }
  const validate = validator(schema)
  if (!validate(value)) judgement.invalid(`body: ${ajv.errorsText(validate.errors)}`)
  else future(judgement, schema, value)
  return undefined
}

/** A top-level date-time the contract says is "in the future" must be (its schema cannot say so). */
const future = (judgement: Judgement, schema: JsonSchema, value: unknown) => {
  const properties: Record<string, JsonSchema> = resolved(schema).properties ?? {}
  for (const [name, property] of Object.entries(properties)) {
    const given = (value as Record<string, unknown>)[name]
    const { format, description } = resolved(property)
    if (
      format === "date-time" &&
      /\bin the future\b/.test(description ?? "") &&
      typeof given === "string" &&
      Date.parse(given) <= Date.now()
    ) {
      judgement.invalid(`body.${name}: not in the future, as the contract requires`)
    }
  }
}

export interface Judgment {
  readonly verdict: Verdict
  readonly reasons: ReadonlyArray<string>
}

export interface Judged extends Judgment {
  readonly operationId: string | undefined
  /** For an operation that answers 207: the request without its list's items, and each item. */
  readonly multiStatus?: { readonly whole: Judgment; readonly items: ReadonlyArray<Judgment> }
}

const judgmentOf = (judgement: Judgement): Judgment => ({ verdict: judgement.verdict, reasons: [...judgement.refused, ...judgement.open] })

export interface Circumstances {
  readonly bodyLimit: number
  readonly pgvector: boolean
}

/** What the contract says of this request, as it is sent. */
export const judge = (
  planned: PlannedRequest,
  sent: {
    readonly method: string
    readonly target: string
    readonly headers: Readonly<Record<string, string>>
    readonly body: Uint8Array | undefined
  },
  circumstances: Circumstances
): Judged => {
  const judgement = new Judgement()
  if (planned.raw !== undefined) return { verdict: planned.verdict ?? "invalid", reasons: [planned.detail], operationId: undefined }
  const found = operationOf(sent.method, sent.target)
  if (found === undefined) return { verdict: "invalid", reasons: ["no operation for this method and path"], operationId: undefined }
  const { op } = found
  for (const p of op.parameters.filter((p) => p.in === "path")) parameter(judgement, [found.path[p.name]!], p.schema, `path.${p.name}`)
  const query = sent.target.includes("?") ? sent.target.slice(sent.target.indexOf("?") + 1).split("#")[0]! : ""
  const given = new Map<string, Array<string>>()
  for (const pair of query.split("&").filter(Boolean)) {
    const [rawName = "", rawValue = ""] = pair.split(/=(.*)/s)
    const name = decoded(rawName)
    if (op.parameters.some((p) => p.in === "query" && p.name === name)) given.set(name!, [...(given.get(name!) ?? []), rawValue])
    else if (op.unknownQuery === "refuse") judgement.invalid(`query ${rawName}: not declared`)
  }
  for (const p of op.parameters.filter((p) => p.in === "query")) {
    const raws = given.get(p.name)
    if (raws === undefined) {
      if (p.required) judgement.invalid(`query.${p.name}: required`)
      continue
    }
    if (p.name === "cursor") judgement.any("query.cursor: a cursor's meaning is beyond the schema")
    parameter(judgement, raws, p.schema, `query.${p.name}`)
  }
  let items: ReadonlyArray<Judgement> | undefined
  if (sent.body !== undefined && sent.body.length > circumstances.bodyLimit && op.body?.content["multipart/form-data"] === undefined) {
    judgement.invalid(`body: ${sent.body.length} bytes, over BASALT_BODY_LIMIT`)
  } else items = body(judgement, op, sent.headers, sent.body, planned)
  if (op.id === "search" && !circumstances.pgvector && judgement.verdict === "valid") {
    if (sentField(sent.body, "mode") === "semantic") judgement.any("semantic search without pgvector: 422 (documented)")
  }
  if (op.id === "sendChatMessage" && judgement.verdict === "valid") {
    if (sentField(sent.body, "model") !== undefined) judgement.any("a model outside the configured allowlist: 422 (documented)")
  }
  if (items === undefined) return { ...judgmentOf(judgement), operationId: op.id }
  const whole = judgmentOf(judgement)
  const all = new Judgement()
  for (const part of [judgement, ...items]) {
    all.refused.push(...part.refused)
    all.open.push(...part.open)
  }
  return { ...judgmentOf(all), operationId: op.id, multiStatus: { whole, items: items.map(judgmentOf) } }
}
