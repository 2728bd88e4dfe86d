/**
 * Validates every HTTP response a test receives against openapi.yaml, independently of the
 * server's own Schemas: the operation (by method and path), the status code, the content type,
 * the body (ajv, JSON Schema 2020-12, the dialect of OpenAPI 3.1) and the required headers.
 */
import Ajv2020 from "ajv/dist/2020.js"
import addFormats from "ajv-formats"
import { readFileSync } from "node:fs"
import { parse } from "yaml"

type Json = Record<string, any>

export const contract: Json = parse(readFileSync(new URL("../../openapi.yaml", import.meta.url), "utf8"))

const ajv = new Ajv2020.default({ strict: false, allErrors: true })
addFormats.default(ajv)
ajv.addSchema(contract, "openapi")

const deref = (node: Json): Json => {
  let current = node
  while (typeof current?.$ref === "string") {
    current = current.$ref
      .slice(2)
      .split("/")
      .reduce((at: Json, key: string) => at?.[key.replace(/~1/g, "/").replace(/~0/g, "~")], contract)
  }
  return current
}

// Keys taken from a `$ref` are already escaped; others are escaped here.
const pointer = (...keys: ReadonlyArray<string>) =>
  `openapi#/${keys.map((key) => (/~[01]/.test(key) ? key : key.replace(/~/g, "~0").replace(/\//g, "~1"))).join("/")}`

const validators = new Map<string, ReturnType<typeof ajv.compile>>()
const compiled = (keys: ReadonlyArray<string>) => {
  const ref = pointer(...keys)
  const cached = validators.get(ref)
  if (cached !== undefined) return cached
  const validate = ajv.compile({ $ref: ref })
  validators.set(ref, validate)
  return validate
}

// A path is its most specific template, as a router reads it: segment by segment, a literal before a
// parameter (`/documents/batch` is the batch path, not `/documents/{document_id}`).
const specificity = (a: string, b: string) => {
  const [as, bs] = [a.split("/"), b.split("/")]
  for (let i = 0; i < Math.min(as.length, bs.length); i++) {
    const [aParam, bParam] = [as[i]!.startsWith("{"), bs[i]!.startsWith("{")]
    if (aParam !== bParam) return aParam ? 1 : -1
  }
  return 0
}

const templates = Object.keys(contract.paths)
  .sort(specificity)
  .map((template) => ({
    template,
    pattern: new RegExp(`^${template.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\{[^}]+\}/g, "[^/]+")}$`)
  }))

/**
 * Whether every segment of `path` is valid percent-encoding and free of `;` (which the router
 * would take as the path's end): a path that is not names no resource.
 */
const isResourcePath = (path: string) => {
  if (path.includes(";")) return false
  try {
    decodeURIComponent(path)
    return true
  } catch {
    return false
  }
}

/** The template of openapi.yaml that `path` (as sent, percent-encoded) is, if any. */
export const templateOf = (path: string): string | undefined =>
  isResourcePath(path) ? templates.find(({ pattern }) => pattern.test(path))?.template : undefined

export interface ReceivedResponse {
  readonly status: number
  readonly headers: Headers
  readonly text: string
}

export class ContractViolation extends Error {}

const fail = (where: string, message: string): never => {
  throw new ContractViolation(`${where}: ${message}`)
}

const validateAgainst = (where: string, response: ReceivedResponse, declared: Json, schemaPointer: ReadonlyArray<string>) => {
  for (const [name, headerNode] of Object.entries<Json>(declared.headers ?? {})) {
    const header = deref(headerNode)
    const value = response.headers.get(name)
    if (value === null) {
      if (header.required === true) fail(where, `required header ${name} is missing`)
      continue
    }
    const headerKeys = typeof headerNode.$ref === "string" ? headerNode.$ref.slice(2).split("/") : [...schemaPointer, "headers", name]
    const validate = compiled([...headerKeys, "schema"])
    if (!validate(value)) fail(where, `header ${name}=${value}: ${ajv.errorsText(validate.errors)}`)
  }
  const content: Json | undefined = declared.content
  const contentType = response.headers.get("content-type")?.split(";")[0]?.trim()
  if (content === undefined) {
    if (response.text !== "") fail(where, `declares no body but received ${response.text.slice(0, 80)}`)
    return
  }
  if (contentType === undefined || content[contentType] === undefined) {
    return fail(where, `content type ${contentType} is not one of ${Object.keys(content).join(", ")}`)
  }
  const body = contentType.endsWith("json") ? JSON.parse(response.text) : response.text
  const validate = compiled([...schemaPointer, "content", contentType, "schema"])
  if (!validate(body)) fail(where, `body ${response.text.slice(0, 200)}: ${ajv.errorsText(validate.errors)}`)
}

/** The pointer keys of a response object, following one `$ref` to components.responses. */
const responseKeys = (keys: ReadonlyArray<string>): ReadonlyArray<string> => {
  const node = keys.reduce((at: Json, key) => at?.[key], contract)
  return typeof node?.$ref === "string" ? node.$ref.slice(2).split("/") : keys
}

/** Throws a ContractViolation unless `response` is one openapi.yaml allows for `method path`. */
export const validateResponse = (method: string, url: string, response: ReceivedResponse): void => {
  // `//x` is a path here, not a URL without its scheme.
  const path = new URL(url.startsWith("//") ? `http://localhost${url}` : url, "http://localhost").pathname
  const where = `${method} ${path} → ${response.status}`
  const matched = isResourcePath(path) ? templates.find(({ pattern }) => pattern.test(path)) : undefined
  const operationMethod = method === "HEAD" ? "get" : method.toLowerCase()
  const operation: Json | undefined = matched && contract.paths[matched.template][operationMethod]
  if (method === "OPTIONS" && response.headers.has("access-control-allow-methods")) {
    // A CORS preflight: answered by the CORS layer for any path, with no body.
    if (response.status !== 204) fail(where, "a preflight must answer 204")
    return
  }
  if (operation === undefined) {
    const expected = matched === undefined ? 404 : 405
    if (response.status !== expected) fail(where, `no operation serves this; expected ${expected}`)
    const component = expected === 404 ? "NotFound" : "MethodNotAllowed"
    const declared = contract.components.responses[component]
    // A HEAD response has no body, whatever its status.
    validateAgainst(where, response, method === "HEAD" ? { ...declared, content: undefined } : declared, [
      "components",
      "responses",
      component
    ])
    return
  }
  const statusKey = String(response.status)
  if (operation.responses[statusKey] === undefined) {
    fail(where, `status not declared (declared: ${Object.keys(operation.responses).join(", ")})`)
  }
  const keys = responseKeys(["paths", matched!.template, operationMethod, "responses", statusKey])
  const declared = deref(operation.responses[statusKey])
  // A HEAD response has a GET's headers and no body.
  if (method === "HEAD") validateAgainst(where, response, { ...declared, content: undefined }, keys)
  else validateAgainst(where, response, declared, keys)
}

const nodeAt = (keys: ReadonlyArray<string>): Json | undefined => keys.reduce((at: Json, key) => at?.[key], contract)

/** One event of a `text/event-stream`: its fields, as the stream sent them. */
export type StreamEvent = Readonly<Record<string, string>>

/**
 * Throws a ContractViolation unless `event` is one that the event stream `method path` may send:
 * valid against the stream's `itemSchema` (OpenAPI 3.2), and each field the item declares as
 * `contentMediaType: application/json` JSON valid against the `contentSchema` of the variant the
 * event is (JSON Schema leaves `contentSchema` to the application, so it is applied here).
 */
export const validateStreamEvent = (method: string, url: string, event: StreamEvent) => {
  const path = new URL(url, "http://localhost").pathname
  const where = `${method} ${path} event ${JSON.stringify(event).slice(0, 200)}`
  const matched = templates.find(({ pattern }) => pattern.test(path))
  const operationMethod = method.toLowerCase()
  if (matched === undefined || contract.paths[matched.template][operationMethod] === undefined) return fail(where, "no such operation")
  const responseAt = responseKeys(["paths", matched.template, operationMethod, "responses", "200"])
  const mediaAt = [...responseAt, "content", "text/event-stream"]
  const media: Json | undefined = deref(nodeAt(responseAt) ?? {})?.content?.["text/event-stream"]
  if (media?.itemSchema === undefined) return fail(where, "the stream declares no itemSchema")
  const validate = compiled([...mediaAt, "itemSchema"])
  if (!validate(event)) fail(where, ajv.errorsText(validate.errors))
  const itemAt = typeof media.itemSchema.$ref === "string" ? media.itemSchema.$ref.slice(2).split("/") : [...mediaAt, "itemSchema"]
  const item = deref(media.itemSchema)
  const variants: ReadonlyArray<ReadonlyArray<string>> =
    item.oneOf === undefined ? [itemAt] : item.oneOf.map((_: Json, i: number) => [...itemAt, "oneOf", String(i)])
  const variant = variants.find((keys) => compiled(keys)(event))
  for (const [field, declared] of Object.entries<Json>(item.properties ?? {})) {
    if (declared.contentMediaType !== "application/json" || event[field] === undefined) continue
    let value: unknown
    try {
      value = JSON.parse(event[field])
    } catch {
      return fail(where, `${field} is not JSON`)
    }
    // The variant's own contentSchema, else the item's.
    const declaring = [variant, itemAt].find((keys) => keys !== undefined && nodeAt(keys)?.properties?.[field]?.contentSchema !== undefined)
    if (declaring === undefined) continue
    const validateContent = compiled([...declaring, "properties", field, "contentSchema"])
    if (!validateContent(value)) fail(where, `${field}: ${ajv.errorsText(validateContent.errors)}`)
  }
}

/** Validates a response against one of components.responses (for responses of test-only APIs). */
export const validateComponentResponse = (name: string, response: ReceivedResponse): void =>
  validateAgainst(`components.responses.${name}`, response, contract.components.responses[name], ["components", "responses", name])

/** Throws a ContractViolation unless `value` is valid against components.schemas[`name`] of openapi.yaml. */
export const validateComponent = (name: string, value: unknown): void => {
  if (contract.components.schemas[name] === undefined) fail(`components.schemas.${name}`, "no such schema")
  const validate = compiled(["components", "schemas", name])
  if (!validate(value)) fail(`components.schemas.${name}`, `${JSON.stringify(value).slice(0, 200)}: ${ajv.errorsText(validate.errors)}`)
}
