import { HttpApiGroup, OpenApi } from "@effect/platform"
import { contractResponse, operation } from "../contract/Contract.ts"
import { NotReady } from "../http/ApiError.ts"
import { Health, Readiness } from "./Health.ts"

export class HealthApi extends HttpApiGroup.make("operations")
  .add(
    operation("getHealth").get("/health")
      .addSuccess(contractResponse("getHealth", 200, "application/json", Health))
  )
  .add(
    operation("getReadiness").get("/ready")
      .addSuccess(contractResponse("getReadiness", 200, "application/json", Readiness))
      .addError(NotReady)
  )
  .annotate(OpenApi.Title, "operations")
{}
