import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "effect/http-api"
import { endpoint } from "../contract/Contract.ts"
import { NotReady } from "../http/ApiError.ts"
import { Health, Readiness } from "./Health.ts"

export class HealthApi extends HttpApiGroup.make("operations")
  .add(
    endpoint("getHealth", (op) =>
      HttpApiEndpoint.get(op.name, "/health", {
        success: op.response(200, "application/json", Health)
      })
    )
  )
  .add(
    endpoint("getReadiness", (op) =>
      HttpApiEndpoint.get(op.name, "/ready", {
        success: op.response(200, "application/json", Readiness),
        error: NotReady
      })
    )
  )
  .annotate(OpenApi.Title, "operations") {}
