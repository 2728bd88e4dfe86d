import { HttpApiGroup, OpenApi } from "@effect/platform"
import { Authentication } from "../accounts/Authentication.ts"
import { contractPayload, contractResponse, operation } from "../contract/Contract.ts"
import { NotFound, ValidationFailed } from "../http/ApiError.ts"
import { withBody } from "../http/RequestBody.ts"
import { SearchRequest, SearchResponse } from "./Search.ts"

export class SearchApi extends HttpApiGroup.make("search")
  .add(
    operation("search").post("/api/v1/search").pipe(withBody(contractPayload("search", "application/json", SearchRequest)))
      .addSuccess(contractResponse("search", 200, "application/json", SearchResponse))
      .addError(NotFound)
      .addError(ValidationFailed)
  )
  .middleware(Authentication)
  .annotate(OpenApi.Title, "search")
{}
