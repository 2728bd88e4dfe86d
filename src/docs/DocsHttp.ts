import { Effect } from "effect"
import { HttpServerResponse } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import { readFile } from "node:fs/promises"
import { createRequire } from "node:module"
import { parse } from "yaml"
import { BasaltApi } from "../Api.ts"
import type { DocsAsset } from "./DocsApi.ts"
import { redocPage, swaggerUiPage } from "./DocsPages.ts"

const contractFile = new URL("../../openapi.yaml", import.meta.url)

const require = createRequire(import.meta.url)

// ReDoc's sidebar shows Redocly's logo from their CDN: an empty image instead keeps the page
// offline (the "API docs by Redocly" link stays).
const redocLogo = "https://cdn.redoc.ly/redoc/logo-mini.svg"
const emptyImage = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='0' height='0'/%3E"
const offlineRedoc = (bundle: Buffer) => Buffer.from(bundle.toString("utf8").replaceAll(redocLogo, emptyImage))

const assets: Record<DocsAsset, { readonly file: string; readonly contentType: string; readonly adapt?: (body: Buffer) => Buffer }> = {
  "swagger-ui.css": { file: "swagger-ui-dist/swagger-ui.css", contentType: "text/css; charset=utf-8" },
  "swagger-ui-bundle.js": { file: "swagger-ui-dist/swagger-ui-bundle.js", contentType: "text/javascript; charset=utf-8" },
  "redoc.standalone.js": {
    file: "redoc/bundles/redoc.standalone.js",
    contentType: "text/javascript; charset=utf-8",
    adapt: offlineRedoc
  }
}

export const DocsHttpLive = HttpApiBuilder.group(BasaltApi, "documentation", (handlers) =>
  Effect.gen(function* () {
    // The contract is served as shipped: the YAML byte for byte, the JSON parsed from it.
    const yaml = yield* Effect.promise(() => readFile(contractFile, "utf8"))
    const json = parse(yaml) as Record<string, unknown>
    // Assets are read on first request, not at start: most servers never serve them.
    const assetBodies = Object.fromEntries(
      yield* Effect.forEach(Object.entries(assets), ([name, { file, adapt }]) =>
        Effect.map(
          Effect.cached(Effect.promise(() => readFile(require.resolve(file)).then((body) => adapt?.(body) ?? body))),
          (body) => [name, body] as const
        )
      )
    ) as Record<DocsAsset, Effect.Effect<Buffer>>

    return handlers
      .handle("getRoot", () => Effect.succeed(HttpServerResponse.empty({ status: 302, headers: { location: "./docs" } })))
      .handle("getOpenApiJson", () => Effect.succeed(json))
      .handle("getOpenApiYaml", () => Effect.succeed(yaml))
      .handle("getSwaggerUi", () => Effect.succeed(swaggerUiPage))
      .handle("getRedoc", () => Effect.succeed(redocPage))
      .handle("getDocsAsset", ({ params }) =>
        Effect.map(assetBodies[params.asset], (body) =>
          HttpServerResponse.uint8Array(body, {
            contentType: assets[params.asset].contentType,
            headers: { "cache-control": "public, max-age=86400" }
          })
        )
      )
  })
)
