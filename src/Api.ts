/** The whole HTTP API: every group, and the errors any operation can answer. */
import { HttpApi, OpenApi } from "effect/http-api"
import { AdminApi, ApiKeysApi, AuthApi, UsersApi } from "./accounts/AccountsApi.ts"
import { ChatApi } from "./chat/ChatApi.ts"
import { SingleSignOnApi } from "./accounts/SingleSignOnApi.ts"
import { CollectionsApi } from "./collections/CollectionsApi.ts"
import { DocsApi } from "./docs/DocsApi.ts"
import { DocumentsApi } from "./documents/DocumentsApi.ts"
import { HealthApi } from "./health/HealthApi.ts"
import { Availability, ErrorResponse } from "./http/ErrorResponse.ts"
import { QueryParameters } from "./http/RequestParams.ts"
import { SearchApi } from "./search/SearchApi.ts"

export class BasaltApi extends HttpApi.make("basalt")
  // Every operation but liveness and readiness (added after) answers 503 while the server starts,
  // and those that use the database while it is unavailable.
  .add(DocsApi, AuthApi, SingleSignOnApi, UsersApi, AdminApi, ApiKeysApi, DocumentsApi, CollectionsApi, SearchApi, ChatApi)
  .middleware(Availability)
  .add(HealthApi)
  // Every operation refuses query parameters it does not declare.
  .middleware(QueryParameters)
  // Last, so that it wraps every endpoint's own middleware too; it declares the 500 any operation
  // can answer.
  .middleware(ErrorResponse)
  .annotate(OpenApi.Title, "Basalt API") {}
