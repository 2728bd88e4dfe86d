import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "effect/http-api"
import { Authentication } from "../accounts/Authentication.ts"
import { endpoint } from "../contract/Contract.ts"
import { NotFound, ValidationFailed } from "../http/ApiError.ts"
import { withBody } from "../http/RequestBody.ts"
import { SearchRequest, SearchResponse } from "./Search.ts"

export class SearchApi extends HttpApiGroup.make("search")
  .add(
    endpoint("search", (op) =>
      HttpApiEndpoint.post(op.name, "/api/v1/search", {
        payload: op.payload("application/json", SearchRequest),
        success: op.response(200, "application/json", SearchResponse),
        error: [NotFound, ValidationFailed]
      }).pipe(withBody())
    )
  )
  .middleware(Authentication)
  .annotate(OpenApi.Title, "search") {}
