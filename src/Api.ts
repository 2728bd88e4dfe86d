/** The whole HTTP API: every group, and the errors any operation can answer. */
import { HttpApi, HttpApiError, OpenApi } from "@effect/platform"
import { Schema, SchemaAST } from "effect"
import { AdminApi, ApiKeysApi, AuthApi, UsersApi } from "./accounts/AccountsApi.ts"
import { SingleSignOnApi } from "./accounts/SingleSignOnApi.ts"
import { CollectionsApi } from "./collections/CollectionsApi.ts"
import { DocsApi } from "./docs/DocsApi.ts"
import { DocumentsApi } from "./documents/DocumentsApi.ts"
import { HealthApi } from "./health/HealthApi.ts"
import { InternalError } from "./http/ApiError.ts"
import { SearchApi } from "./search/SearchApi.ts"

export class BasaltApi extends HttpApi.make("basalt")
  .add(HealthApi)
  .add(DocsApi)
  .add(AuthApi)
  .add(SingleSignOnApi)
  .add(UsersApi)
  .add(AdminApi)
  .add(ApiKeysApi)
  .add(DocumentsApi)
  .add(CollectionsApi)
  .add(SearchApi)
  .addError(InternalError)
  .annotate(OpenApi.Title, "Basalt API")
{}

const withoutDecodeError = (schema: Schema.Schema.All): Schema.Schema.All => {
  const decodeError = HttpApiError.HttpApiDecodeError.ast
  const members = SchemaAST.isUnion(schema.ast) ? schema.ast.types : [schema.ast]
  return Schema.make(SchemaAST.Union.make(members.filter((member) => member !== decodeError)))
}

/**
 * The API as clients see it. The framework declares its own schema-decode error (400) on every
 * endpoint, but ErrorResponse always re-renders that failure as 422 `validation_failed`, which the
 * endpoints taking input declare; so the framework's declaration is not part of the contract.
 */
export const servedApi = <A extends HttpApi.HttpApi.Any>(api: A): A => {
  const props = api as unknown as HttpApi.HttpApi.AnyWithProps
  return Object.assign(Object.create(Object.getPrototypeOf(api)), props, {
    errorSchema: withoutDecodeError(props.errorSchema)
  })
}
