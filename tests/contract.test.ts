/**
 * The server is checked against openapi.yaml, never the reverse: the routes it serves, their
 * parameters, bodies, statuses and media types (from OpenApi.fromApi), and the proof that every Schema went through
 * the compile-time check against the generated types; and that a drift on either side fails.
 */
import Ajv2020 from "ajv/dist/2020.js"
import { Schema, SchemaAST } from "effect"
import { HttpApi, HttpApiEndpoint, HttpApiGroup } from "effect/http-api"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import ts from "typescript"
import { describe, expect, it } from "vitest"
import { parse } from "yaml"
import { BasaltApi } from "../src/Api.ts"
import { ContractChecked } from "../src/contract/Contract.ts"
import { contractDifferences } from "./support/contractDiff.ts"

const root = join(import.meta.dirname, "..")

describe("the served API against openapi.yaml", () => {
  it("serves exactly the documented operations, parameters, bodies and statuses", () => {
    expect(contractDifferences(BasaltApi)).toEqual([])
  })

  it("fails when a route is added to the code without the contract", () => {
    const extra = HttpApiGroup.make("extra").add(HttpApiEndpoint.get("getExtra", "/extra", { success: Schema.String }))
    const differences = contractDifferences(BasaltApi.add(extra))
    expect(differences).toContain("GET /extra is served but not in openapi.yaml")
  })

  it("fails when the contract documents a status the code cannot answer", () => {
    const contract = parse(readFileSync(join(root, "openapi.yaml"), "utf8"))
    contract.paths["/health"].get.responses["418"] = { description: "teapot" }
    expect(contractDifferences(BasaltApi, contract)).toEqual(["GET /health: statuses 200, 422, 500 served, 200, 418, 422, 500 documented"])
  })

  it("fails when the contract and the code disagree on refusing unknown query parameters", () => {
    const contract = parse(readFileSync(join(root, "openapi.yaml"), "utf8"))
    delete contract.paths["/api/v1/auth/oidc/callback"].get["x-unknown-query-parameters"]
    contract.paths["/api/v1/search"].post["x-unknown-query-parameters"] = "ignore"
    expect(contractDifferences(BasaltApi, contract)).toEqual([
      "GET /api/v1/auth/oidc/callback: unknown query parameters: ignore served, refuse documented",
      "POST /api/v1/search: unknown query parameters: refuse served, ignore documented"
    ])
  })

  it("checked every endpoint's request and response Schemas against the generated types", () => {
    const unchecked: Array<string> = []
    const checkedAgainst = SchemaAST.resolveAt<string>(ContractChecked)
    HttpApi.reflect(BasaltApi, {
      onGroup() {},
      onEndpoint({ endpoint, successes }) {
        // Checked against this very operation, not merely against some named schema.
        const requireCheck = (where: string, schema: Schema.Top | undefined) => {
          if (schema !== undefined && !checkedAgainst(schema.ast)?.startsWith(`${endpoint.identifier} `)) {
            unchecked.push(where)
          }
        }
        for (const [status, schemas] of successes) {
          for (const schema of schemas) requireCheck(`${endpoint.identifier} ${status}`, schema)
        }
        for (const [contentType, { schemas }] of endpoint.payload) {
          for (const schema of schemas) requireCheck(`${endpoint.identifier} body ${contentType}`, schema)
        }
        requireCheck(`${endpoint.identifier} path`, endpoint.params)
        requireCheck(`${endpoint.identifier} query`, endpoint.query)
        requireCheck(`${endpoint.identifier} headers`, endpoint.headers)
      }
    })
    expect(unchecked).toEqual([])
  })
})

describe("openapi.yaml for client generators", () => {
  const contract = parse(readFileSync(join(root, "openapi.yaml"), "utf8"))
  const schemas: Record<string, any> = contract.components.schemas
  const refTo = (name: string) => `#/components/schemas/${name}`
  const operations = Object.entries<any>(contract.paths).flatMap(([path, item]) =>
    Object.entries<any>(item)
      .filter(([, op]) => op?.operationId !== undefined)
      .map(([method, op]) => ({ path, method, op }))
  )
  const operation = (id: string) => operations.find(({ op }) => op.operationId === id)!.op

  it("names no schema after a global of JavaScript or a type of TypeScript's (a generated `Error` shadows the global)", () => {
    const typeScriptTypes = ["Record", "Partial", "Required", "Readonly", "Pick", "Omit", "Exclude", "Extract", "Awaited"]
    const taken = new Set([...Object.getOwnPropertyNames(globalThis), ...typeScriptTypes])
    expect(Object.keys(schemas).filter((name) => taken.has(name))).toEqual([])
  })

  it("types the event stream: each event (OpenAPI 3.2 itemSchema, and an x- map for 3.1 tools) links its data's schema", () => {
    const media = operation("documentEvents").responses["200"].content["text/event-stream"]
    expect(media.schema).toEqual({ type: "string" })
    const item = schemas[media.itemSchema.$ref.split("/").pop()]
    const byEvent = Object.fromEntries(
      item.oneOf.map((variant: any) => [variant.properties.event.const, variant.properties.data.contentSchema.$ref])
    )
    expect(byEvent).toEqual({ status: refTo("DocumentStatusEvent"), deleted: refTo("DocumentDeletedEvent") })
    expect(item.properties.data.contentMediaType).toBe("application/json")
    expect(Object.fromEntries(Object.entries<any>(media["x-sse-events"]).map(([event, schema]) => [event, schema.$ref]))).toEqual(byEvent)
  })

  it("discriminates the login answer by a property every member has", () => {
    const answer = operation("login").responses["200"].content["application/json"].schema
    const { propertyName, mapping } = answer.discriminator
    expect(Object.values(mapping).sort()).toEqual(answer.oneOf.map((member: any) => member.$ref).sort())
    for (const [value, ref] of Object.entries<string>(mapping)) {
      const member = schemas[ref.split("/").pop()!]
      expect(member.required).toContain(propertyName)
      expect(member.properties[propertyName].const).toBe(value)
    }
  })

  it("spells token_type one way, RFC 6750's, wherever a token is answered", () => {
    const spellings = Object.values(schemas).flatMap((schema: any) =>
      schema.properties?.token_type ? [schema.properties.token_type.const] : []
    )
    expect(spellings).toEqual(["Bearer", "Bearer"])
  })

  it("types the items of a batch", () => {
    expect(schemas.DocumentBatchRequest.properties.documents.items).toEqual({ $ref: refTo("CreateDocumentRequest") })
  })

  it("points the OAuth2 refreshUrl at an operation that takes the refresh grant", () => {
    const { password } = contract.components.securitySchemes.oauth2Password.flows
    expect(password.refreshUrl).toBe(password.tokenUrl)
    const token = operations.find(({ path, method }) => path === password.refreshUrl && method === "post")!.op
    const request = schemas[token.requestBody.content["application/x-www-form-urlencoded"].schema.$ref.split("/").pop()]
    const members = request.oneOf.map(({ $ref }: { $ref: string }) => schemas[$ref.split("/").pop()!])
    expect(members.some((member: any) => member.properties.grant_type.const === "refresh_token")).toBe(true)
  })

  // ajv as client generators' validators read the contract (its `u` flag on, as by default).
  const ajv = new Ajv2020.default({ strict: false })
  ajv.addSchema(contract, "openapi")
  const accepts = (pointer: string, value: unknown) => ajv.validate({ $ref: `openapi#/${pointer}` }, value)

  it("says per grant_type which fields the token request needs, and lets other fields through", () => {
    const token = schemas.TokenRequest
    expect(token.discriminator.propertyName).toBe("grant_type")
    for (const [grantType, ref] of Object.entries<string>(token.discriminator.mapping)) {
      expect(token.oneOf).toContainEqual({ $ref: ref })
      expect(schemas[ref.split("/").pop()!].properties.grant_type.const).toBe(grantType)
    }
    const form = "components/schemas/TokenRequest"
    expect(accepts(form, { grant_type: "password", username: "a@example.com", password: "x", extra: "y" })).toBe(true)
    expect(accepts(form, { grant_type: "password", username: "a@example.com" })).toBe(false)
    expect(accepts(form, { grant_type: "refresh_token", refresh_token: "bsr_x", scope: "all" })).toBe(true)
    expect(accepts(form, { grant_type: "refresh_token", username: "a@example.com", password: "x" })).toBe(false)
  })

  it("refuses text of only whitespace, as JavaScript's trim reads it, wherever the server trims before minLength 1", () => {
    const whitespace = Array.from({ length: 0x10000 }, (_, code) => String.fromCharCode(code)).filter((c) => c.trim() === "")
    expect(whitespace).toEqual(expect.arrayContaining(["\t", " ", "\u00a0", "\u2028", "\u2029", "\ufeff", "\u3000"]))
    const trimmed = [
      "components/schemas/CreateDocumentRequest/properties/title",
      "components/schemas/CreateDocumentRequest/properties/content",
      "components/schemas/CreateDocumentRequest/properties/external_id",
      "components/schemas/CreateDocumentRequest/properties/url",
      "components/schemas/UpdateDocumentRequest/properties/title",
      "components/schemas/UpdateDocumentRequest/properties/url",
      "components/schemas/DocumentTags/items",
      "components/schemas/CreateCollectionRequest/properties/name",
      "components/schemas/UpdateCollectionRequest/properties/name",
      "components/schemas/CreateApiKeyRequest/properties/name",
      "components/schemas/RegisterRequest/properties/display_name",
      "components/schemas/CreateUserRequest/properties/display_name",
      "components/schemas/UpdateCurrentUserRequest/properties/display_name",
      "components/schemas/SearchRequest/properties/query",
      "components/schemas/SearchFilters/properties/tags/items"
    ]
    const queryTags = ["listDocuments", "getIndexingProgress"].map((id) => {
      const parameters = [...(operation(id).parameters ?? [])]
      return parameters.find((parameter: any) => parameter.name === "tags").schema.items
    })
    for (const text of [" \t ", "\u2028\u2029", whitespace.join("")]) {
      for (const pointer of trimmed) expect(accepts(pointer, text), `${pointer} ${JSON.stringify(text)}`).toBe(false)
      for (const schema of queryTags) expect(ajv.validate(schema, text)).toBe(false)
    }
    // What trim keeps, the contract accepts (U+200B is not whitespace to either).
    for (const pointer of trimmed) expect(accepts(pointer, " \u200b "), pointer).toBe(true)
  })

  it("has one vocabulary: a list is named as in the bodies, and repeated in a query string", () => {
    const bodyLists = new Set(
      Object.values(schemas).flatMap((schema: any) =>
        Object.entries<any>(schema.properties ?? {}).flatMap(([name, property]) => (property.type === "array" ? [name] : []))
      )
    )
    const queryParameters = operations.flatMap(({ op }) => (op.parameters ?? []).filter((parameter: any) => parameter.in === "query"))
    const queryLists = queryParameters.filter((parameter: any) => parameter.schema?.type === "array")
    expect(queryLists.map((parameter: any) => parameter.name).sort()).toEqual([
      "collection_ids",
      "collection_ids",
      "sources",
      "sources",
      "tags",
      "tags"
    ])
    for (const parameter of queryLists) {
      expect(bodyLists.has(parameter.name), parameter.name).toBe(true)
      expect([parameter.style ?? "form", parameter.explode ?? true]).toEqual(["form", true])
    }
    const names = new Set([
      ...queryParameters.map((parameter: any) => parameter.name),
      ...Object.keys(schemas.SearchFilters.properties),
      ...bodyLists
    ])
    expect(["tag", "source", "collection_id", "collections"].filter((name) => names.has(name))).toEqual([])
  })
})

describe("compile-time contract check", () => {
  // Type-checks the project with openapi.gen.ts replaced by the types of a modified contract.
  const typecheckAgainst = async (mutate: (contract: any) => void): Promise<ReadonlyArray<string>> => {
    const { default: openapiTS, astToString } = await import("openapi-typescript")
    const contract = parse(readFileSync(join(root, "openapi.yaml"), "utf8"))
    mutate(contract)
    const generated = astToString(await openapiTS(contract, { immutable: true }))
    const configFile = ts.readConfigFile(join(root, "tsconfig.json"), ts.sys.readFile)
    const config = ts.parseJsonConfigFileContent(configFile.config, ts.sys, root)
    const host = ts.createCompilerHost(config.options)
    const generatedFile = join(root, "src/contract/openapi.gen.ts")
    const readFile = host.readFile
    host.readFile = (file) => (file === generatedFile ? generated : readFile(file))
    const program = ts.createProgram({ rootNames: [join(root, "src/main.ts")], options: config.options, host })
    return ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n"))
  }

  // Each type-checks the whole project: minutes on a busy machine.
  const timeout = 180_000

  it(
    "passes on the contract as it is",
    async () => {
      expect(await typecheckAgainst(() => {})).toEqual([])
    },
    timeout
  )

  it(
    "fails when a field's type changes in openapi.yaml and the code does not",
    async () => {
      const errors = await typecheckAgainst((contract) => {
        contract.components.schemas.DatabaseStatus.properties.migration_version = { type: "string" }
      })
      expect(errors.join("\n")).toMatch(/contractMismatch/)
    },
    timeout
  )

  it(
    "fails when an operation moves to another path in openapi.yaml",
    async () => {
      const errors = await typecheckAgainst((contract) => {
        contract.paths["/healthz"] = contract.paths["/health"]
        delete contract.paths["/health"]
      })
      expect(errors.join("\n")).toMatch(/getHealth is not GET \/health in openapi\.yaml/)
    },
    timeout
  )
})
