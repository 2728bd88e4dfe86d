/** The whole HTTP API: every group, and the errors any operation can answer. */
import { HttpApi, OpenApi } from "effect/http-api"
import { AdminApi, ApiKeysApi, AuthApi, UsersApi } from "./accounts/AccountsApi.ts"
import { SingleSignOnApi } from "./accounts/SingleSignOnApi.ts"
import { CollectionsApi } from "./collections/CollectionsApi.ts"
import { DocsApi } from "./docs/DocsApi.ts"
import { DocumentsApi } from "./documents/DocumentsApi.ts"
import { HealthApi } from "./health/HealthApi.ts"
import { ErrorResponse } from "./http/ErrorResponse.ts"
import { SearchApi } from "./search/SearchApi.ts"

export class BasaltApi extends HttpApi.make("basalt")
  .add(HealthApi, DocsApi, AuthApi, SingleSignOnApi, UsersApi, AdminApi, ApiKeysApi, DocumentsApi, CollectionsApi, SearchApi)
  // Last, so that it wraps every endpoint's own middleware too; it declares the 500 any operation
  // can answer.
  .middleware(ErrorResponse)
  .annotate(OpenApi.Title, "Basalt API") {}
