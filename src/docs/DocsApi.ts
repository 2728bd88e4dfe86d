import { HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { contractBody, contractPath, contractResponse, operation } from "../contract/Contract.ts"
import { ValidationFailed } from "../http/ApiError.ts"

export const DocsAsset = contractBody(
  "DocsAsset",
  Schema.Literal("swagger-ui.css", "swagger-ui-bundle.js", "redoc.standalone.js")
)
export type DocsAsset = typeof DocsAsset.Type

const html = (op: "getSwaggerUi" | "getRedoc") =>
  contractResponse(op, 200, "text/html", Schema.String.pipe(HttpApiSchema.withEncoding({ kind: "Text", contentType: "text/html" })))

export class DocsApi extends HttpApiGroup.make("documentation")
  .add(
    operation("getOpenApiJson").get("/openapi.json")
      .addSuccess(contractResponse("getOpenApiJson", 200, "application/json", Schema.Record({ key: Schema.String, value: Schema.Unknown })))
  )
  .add(
    operation("getOpenApiYaml").get("/openapi.yaml")
      .addSuccess(
        contractResponse(
          "getOpenApiYaml",
          200,
          "application/yaml",
          Schema.String.pipe(HttpApiSchema.withEncoding({ kind: "Text", contentType: "application/yaml" }))
        )
      )
  )
  .add(operation("getSwaggerUi").get("/docs").addSuccess(html("getSwaggerUi")))
  .add(operation("getRedoc").get("/redoc").addSuccess(html("getRedoc")))
  .add(
    operation("getDocsAsset").get("/docs/assets/:asset")
      .setPath(contractPath("getDocsAsset", Schema.Struct({ asset: DocsAsset })))
      .addSuccess(
        contractResponse(
          "getDocsAsset",
          200,
          "text/javascript",
          Schema.String.pipe(HttpApiSchema.withEncoding({ kind: "Text", contentType: "text/javascript" }))
        )
      )
      .addError(ValidationFailed)
  )
  .annotate(OpenApi.Title, "documentation")
{}
