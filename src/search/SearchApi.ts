import { HttpApiGroup, OpenApi } from "@effect/platform"
import { Authentication } from "../accounts/Authentication.ts"
import { endpoint } from "../contract/Contract.ts"
import { NotFound, } from "../http/ApiError.ts"
import { withBody } from "../http/RequestBody.ts"
import { SearchRequest, SearchResponse } from "./Search.ts"

export class SearchApi extends HttpApiGroup.make("search")
  .add(endpoint("search", (op) =>
    op.post("/api/v1/search").pipe(withBody(op.payload("application/json", SearchRequest)))
      .addSuccess(op.response(200, "application/json", SearchResponse))
      .addError(NotFound)))
  .middleware(Authentication)
  .annotate(OpenApi.Title, "search")
{}
