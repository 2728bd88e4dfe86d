import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "effect/http-api"
import { Authentication } from "../accounts/Authentication.ts"
import { endpoint } from "../contract/Contract.ts"
import { PageQuery } from "../documents/Documents.ts"
import { Conflict, Forbidden, NotFound, ValidationFailed } from "../http/ApiError.ts"
import { withBody } from "../http/RequestBody.ts"
import { withPath, withQuery } from "../http/RequestParams.ts"
import {
  AddCollectionMemberRequest,
  Collection,
  CollectionMember,
  CollectionMemberList,
  CollectionPage,
  CreateCollectionRequest,
  SetCollectionMemberRequest,
  UpdateCollectionRequest
} from "./Collections.ts"
import { Uuid } from "../contract/Uuid.ts"

const CollectionPath = Schema.Struct({ collection_id: Uuid })
const MemberPath = Schema.Struct({ collection_id: Uuid, user_id: Uuid })
const CollectionDocumentPath = Schema.Struct({ collection_id: Uuid, document_id: Uuid })

export class CollectionsApi extends HttpApiGroup.make("collections")
  .add(
    endpoint("createCollection", (op) =>
      HttpApiEndpoint.post(op.name, "/api/v1/collections", {
        payload: op.payload("application/json", CreateCollectionRequest),
        success: op.response(201, "application/json", Collection),
        error: ValidationFailed
      }).pipe(withBody())
    )
  )
  .add(
    endpoint("listCollections", (op) =>
      HttpApiEndpoint.get(op.name, "/api/v1/collections", {
        query: op.query(PageQuery),
        success: op.response(200, "application/json", CollectionPage),
        error: ValidationFailed
      }).pipe(withQuery())
    )
  )
  .add(
    endpoint("getCollection", (op) =>
      HttpApiEndpoint.get(op.name, "/api/v1/collections/:collection_id", {
        params: op.path(CollectionPath),
        success: op.response(200, "application/json", Collection),
        error: [NotFound, ValidationFailed]
      }).pipe(withPath)
    )
  )
  .add(
    endpoint("updateCollection", (op) =>
      HttpApiEndpoint.patch(op.name, "/api/v1/collections/:collection_id", {
        params: op.path(CollectionPath),
        payload: op.payload("application/json", UpdateCollectionRequest),
        success: op.response(200, "application/json", Collection),
        error: [NotFound, Forbidden, ValidationFailed]
      }).pipe(withPath, withBody())
    )
  )
  .add(
    endpoint("deleteCollection", (op) =>
      HttpApiEndpoint.delete(op.name, "/api/v1/collections/:collection_id", {
        params: op.path(CollectionPath),
        success: op.empty(204),
        error: [NotFound, Forbidden, ValidationFailed]
      }).pipe(withPath)
    )
  )
  .add(
    endpoint("listCollectionMembers", (op) =>
      HttpApiEndpoint.get(op.name, "/api/v1/collections/:collection_id/members", {
        params: op.path(CollectionPath),
        success: op.response(200, "application/json", CollectionMemberList),
        error: [NotFound, ValidationFailed]
      }).pipe(withPath)
    )
  )
  .add(
    endpoint("addCollectionMember", (op) =>
      HttpApiEndpoint.post(op.name, "/api/v1/collections/:collection_id/members", {
        params: op.path(CollectionPath),
        payload: op.payload("application/json", AddCollectionMemberRequest),
        success: op.response(200, "application/json", CollectionMember),
        error: [NotFound, Forbidden, Conflict, ValidationFailed]
      }).pipe(withPath, withBody())
    )
  )
  .add(
    endpoint("setCollectionMember", (op) =>
      HttpApiEndpoint.put(op.name, "/api/v1/collections/:collection_id/members/:user_id", {
        params: op.path(MemberPath),
        payload: op.payload("application/json", SetCollectionMemberRequest),
        success: op.response(200, "application/json", CollectionMember),
        error: [NotFound, Forbidden, Conflict, ValidationFailed]
      }).pipe(withPath, withBody())
    )
  )
  .add(
    endpoint("removeCollectionMember", (op) =>
      HttpApiEndpoint.delete(op.name, "/api/v1/collections/:collection_id/members/:user_id", {
        params: op.path(MemberPath),
        success: op.empty(204),
        error: [NotFound, Forbidden, Conflict, ValidationFailed]
      }).pipe(withPath)
    )
  )
  .add(
    endpoint("addCollectionDocument", (op) =>
      HttpApiEndpoint.post(op.name, "/api/v1/collections/:collection_id/documents/:document_id", {
        params: op.path(CollectionDocumentPath),
        success: op.empty(204),
        error: [NotFound, Forbidden, ValidationFailed]
      }).pipe(withPath)
    )
  )
  .add(
    endpoint("removeCollectionDocument", (op) =>
      HttpApiEndpoint.delete(op.name, "/api/v1/collections/:collection_id/documents/:document_id", {
        params: op.path(CollectionDocumentPath),
        success: op.empty(204),
        error: [NotFound, Forbidden, ValidationFailed]
      }).pipe(withPath)
    )
  )
  .middleware(Authentication)
  .annotate(OpenApi.Title, "collections") {}
