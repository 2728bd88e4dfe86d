import { HttpApiGroup, OpenApi } from "@effect/platform"
import { endpoint } from "../contract/Contract.ts"
import { NotReady } from "../http/ApiError.ts"
import { Health, Readiness } from "./Health.ts"

export class HealthApi extends HttpApiGroup.make("operations")
  .add(endpoint("getHealth", (op) =>
    op.get("/health")
      .addSuccess(op.response(200, "application/json", Health))))
  .add(endpoint("getReadiness", (op) =>
    op.get("/ready")
      .addSuccess(op.response(200, "application/json", Readiness))
      .addError(NotReady)))
  .annotate(OpenApi.Title, "operations")
{}
