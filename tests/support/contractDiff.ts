/**
 * Compares the OpenAPI document derived from an HttpApi (OpenApi.fromApi) with openapi.yaml on
 * what clients depend on: paths and methods, operation ids, parameters (and whether unknown ones
 * are refused), request body content types, response status codes and the content types of each
 * response. Returns one line per difference.
 */
import { type HttpApi, type HttpApiGroup, OpenApi } from "effect/http-api"
import { ignoresUnknownQueryParameters } from "../../src/http/RequestParams.ts"
import { contract } from "./contract.ts"

type Json = Record<string, any>

const methods = ["get", "put", "post", "delete", "patch", "head", "options", "trace"] as const

const operations = (doc: Json) => {
  const found = new Map<string, Json>()
  for (const [path, item] of Object.entries<Json>(doc.paths ?? {})) {
    for (const method of methods) if (item[method] !== undefined) found.set(`${method.toUpperCase()} ${path}`, item[method])
  }
  return found
}

const deref = (doc: Json, node: Json): Json =>
  typeof node?.$ref === "string"
    ? node.$ref
        .slice(2)
        .split("/")
        .reduce((at: Json, key: string) => at?.[key], doc)
    : node

const parameters = (doc: Json, op: Json): Set<string> =>
  new Set(
    (op.parameters ?? []).map((node: Json) => {
      const p = deref(doc, node)
      return `${p.in}:${p.name}${p.required ? "" : "?"}`
    })
  )

const sorted = (values: Iterable<string>) => [...values].sort().join(", ")

const differ = (a: Set<string>, b: Set<string>) => sorted(a) !== sorted(b)

export const derivedDocument = <Id extends string, Groups extends HttpApiGroup.Constraint>(api: HttpApi.HttpApi<Id, Groups>): Json =>
  OpenApi.fromApi(api)

export const contractDifferences = <Id extends string, Groups extends HttpApiGroup.Constraint>(
  api: HttpApi.HttpApi<Id, Groups>,
  expected: Json = contract
): ReadonlyArray<string> => {
  const derived = derivedDocument(api)
  const served = operations(derived)
  const documented = operations(expected)
  const differences: Array<string> = []
  for (const route of served.keys()) if (!documented.has(route)) differences.push(`${route} is served but not in openapi.yaml`)
  for (const route of documented.keys()) if (!served.has(route)) differences.push(`${route} is in openapi.yaml but not served`)
  for (const [route, mine] of served) {
    const theirs = documented.get(route)
    if (theirs === undefined) continue
    const operationId = String(mine.operationId).split(".").pop()
    if (operationId !== theirs.operationId) {
      differences.push(`${route}: operationId ${operationId} served, ${theirs.operationId} documented`)
    }
    const [p1, p2] = [parameters(derived, mine), parameters(expected, theirs)]
    if (differ(p1, p2)) differences.push(`${route}: parameters ${sorted(p1)} served, ${sorted(p2)} documented`)
    const [u1, u2] = [mine[ignoresUnknownQueryParameters] ?? "refuse", theirs[ignoresUnknownQueryParameters] ?? "refuse"]
    if (u1 !== u2) differences.push(`${route}: unknown query parameters: ${u1} served, ${u2} documented`)
    const [b1, b2] = [
      new Set(Object.keys(mine.requestBody?.content ?? {})),
      new Set(Object.keys(deref(expected, theirs.requestBody)?.content ?? {}))
    ]
    if (differ(b1, b2)) differences.push(`${route}: request body ${sorted(b1)} served, ${sorted(b2)} documented`)
    const [s1, s2] = [new Set(Object.keys(mine.responses)), new Set(Object.keys(theirs.responses))]
    if (differ(s1, s2)) differences.push(`${route}: statuses ${sorted(s1)} served, ${sorted(s2)} documented`)
    for (const status of s1) {
      if (!s2.has(status)) continue
      const [c1, c2] = [
        new Set(Object.keys(deref(derived, mine.responses[status])?.content ?? {})),
        new Set(Object.keys(deref(expected, theirs.responses[status])?.content ?? {}))
      ]
      if (differ(c1, c2)) differences.push(`${route} → ${status}: content ${sorted(c1)} served, ${sorted(c2)} documented`)
    }
  }
  return differences
}
