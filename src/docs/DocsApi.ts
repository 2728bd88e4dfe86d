import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "effect/http-api"
import { contractBody, endpoint } from "../contract/Contract.ts"
import { NotFound, ValidationFailed } from "../http/ApiError.ts"
import { withPath } from "../http/RequestParams.ts"

export const DocsAsset = contractBody("DocsAsset", Schema.Literals(["swagger-ui.css", "swagger-ui-bundle.js", "redoc.standalone.js"]))
export type DocsAsset = typeof DocsAsset.Type

export class DocsApi extends HttpApiGroup.make("documentation")
  .add(endpoint("getRoot", (op) => HttpApiEndpoint.get(op.name, "/", { success: op.empty(302) })))
  .add(
    endpoint("getOpenApiJson", (op) =>
      HttpApiEndpoint.get(op.name, "/openapi.json", {
        success: op.response(200, "application/json", Schema.Record(Schema.String, Schema.Unknown))
      })
    )
  )
  .add(
    endpoint("getOpenApiYaml", (op) =>
      HttpApiEndpoint.get(op.name, "/openapi.yaml", { success: op.text(200, "application/yaml", Schema.String) })
    )
  )
  .add(endpoint("getSwaggerUi", (op) => HttpApiEndpoint.get(op.name, "/docs", { success: op.text(200, "text/html", Schema.String) })))
  .add(endpoint("getRedoc", (op) => HttpApiEndpoint.get(op.name, "/redoc", { success: op.text(200, "text/html", Schema.String) })))
  .add(
    endpoint("getDocsAsset", (op) =>
      HttpApiEndpoint.get(op.name, "/docs/assets/:asset", {
        params: op.path(Schema.Struct({ asset: DocsAsset })),
        success: [op.text(200, "text/javascript", Schema.String), op.text(200, "text/css", Schema.String)],
        // A name longer than the router reads is no route at all.
        error: [ValidationFailed, NotFound]
      }).pipe(withPath)
    )
  )
  .annotate(OpenApi.Title, "documentation") {}
