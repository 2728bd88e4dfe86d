/**
 * The server is checked against openapi.yaml, never the reverse: the routes it serves, their
 * parameters, bodies, statuses and media types (from OpenApi.fromApi), and the proof that every Schema went through
 * the compile-time check against the generated types; and that a drift on either side fails.
 */
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
    expect(contractDifferences(BasaltApi, contract)).toEqual(["GET /health: statuses 200, 500 served, 200, 418, 500 documented"])
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
