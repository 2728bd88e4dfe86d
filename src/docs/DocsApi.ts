import { HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { contractBody, endpoint } from "../contract/Contract.ts"
import { withPath } from "../http/RequestParams.ts"

export const DocsAsset = contractBody(
  "DocsAsset",
  Schema.Literal("swagger-ui.css", "swagger-ui-bundle.js", "redoc.standalone.js")
)
export type DocsAsset = typeof DocsAsset.Type

/** A text body of the given media type. */
const text = (contentType: string) => Schema.String.pipe(HttpApiSchema.withEncoding({ kind: "Text", contentType }))

export class DocsApi extends HttpApiGroup.make("documentation")
  .add(endpoint("getOpenApiJson", (op) =>
    op.get("/openapi.json")
      .addSuccess(op.response(200, "application/json", Schema.Record({ key: Schema.String, value: Schema.Unknown })))))
  .add(endpoint("getOpenApiYaml", (op) =>
    op.get("/openapi.yaml").addSuccess(op.response(200, "application/yaml", text("application/yaml")))))
  .add(endpoint("getSwaggerUi", (op) => op.get("/docs").addSuccess(op.response(200, "text/html", text("text/html")))))
  .add(endpoint("getRedoc", (op) => op.get("/redoc").addSuccess(op.response(200, "text/html", text("text/html")))))
  .add(endpoint("getDocsAsset", (op) =>
    op.get("/docs/assets/:asset").pipe(withPath(op.path(Schema.Struct({ asset: DocsAsset }))))
      .addSuccess(op.response(200, "text/javascript", text("text/javascript")))))
  .annotate(OpenApi.Title, "documentation")
{}
