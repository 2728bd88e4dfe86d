import { HttpApiGroup, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Authentication } from "../accounts/Authentication.ts"
import { endpoint } from "../contract/Contract.ts"
import { PageQuery } from "../documents/Documents.ts"
import { Conflict, Forbidden, NotFound, } from "../http/ApiError.ts"
import { withBody } from "../http/RequestBody.ts"
import { withPath, withQuery } from "../http/RequestParams.ts"
import {
  Collection,
  CollectionMember,
  CollectionMemberList,
  CollectionPage,
  CreateCollectionRequest,
  SetCollectionMemberRequest,
  UpdateCollectionRequest
} from "./Collections.ts"

const CollectionPath = Schema.Struct({ collection_id: Schema.UUID })
const MemberPath = Schema.Struct({ collection_id: Schema.UUID, user_id: Schema.UUID })
const CollectionDocumentPath = Schema.Struct({ collection_id: Schema.UUID, document_id: Schema.UUID })

export class CollectionsApi extends HttpApiGroup.make("collections")
  .add(endpoint("createCollection", (op) =>
    op.post("/api/v1/collections").pipe(
      withBody(op.payload("application/json", CreateCollectionRequest))
    )
      .addSuccess(op.response(201, "application/json", Collection), { status: 201 })))
  .add(endpoint("listCollections", (op) =>
    op.get("/api/v1/collections").pipe(withQuery(op.query(PageQuery)))
      .addSuccess(op.response(200, "application/json", CollectionPage))))
  .add(endpoint("getCollection", (op) =>
    op.get("/api/v1/collections/:collection_id").pipe(withPath(op.path(CollectionPath)))
      .addSuccess(op.response(200, "application/json", Collection))
      .addError(NotFound)))
  .add(endpoint("updateCollection", (op) =>
    op.patch("/api/v1/collections/:collection_id").pipe(withPath(op.path(CollectionPath)))
      .pipe(withBody(op.payload("application/json", UpdateCollectionRequest)))
      .addSuccess(op.response(200, "application/json", Collection))
      .addError(NotFound)
      .addError(Forbidden)))
  .add(endpoint("deleteCollection", (op) =>
    op.del("/api/v1/collections/:collection_id").pipe(withPath(op.path(CollectionPath)))
      .addSuccess(op.empty(204))
      .addError(NotFound)
      .addError(Forbidden)))
  .add(endpoint("listCollectionMembers", (op) =>
    op.get("/api/v1/collections/:collection_id/members").pipe(withPath(op.path(CollectionPath)))
      .addSuccess(op.response(200, "application/json", CollectionMemberList))
      .addError(NotFound)))
  .add(endpoint("setCollectionMember", (op) =>
    op.put("/api/v1/collections/:collection_id/members/:user_id").pipe(withPath(op.path(MemberPath)))
      .pipe(withBody(op.payload("application/json", SetCollectionMemberRequest)))
      .addSuccess(op.response(200, "application/json", CollectionMember))
      .addError(NotFound)
      .addError(Forbidden)
      .addError(Conflict)))
  .add(endpoint("removeCollectionMember", (op) =>
    op.del("/api/v1/collections/:collection_id/members/:user_id").pipe(withPath(op.path(MemberPath)))
      .addSuccess(op.empty(204))
      .addError(NotFound)
      .addError(Forbidden)
      .addError(Conflict)))
  .add(endpoint("addCollectionDocument", (op) =>
    op.post("/api/v1/collections/:collection_id/documents/:document_id").pipe(withPath(op.path(CollectionDocumentPath)))
      .addSuccess(op.empty(204))
      .addError(NotFound)
      .addError(Forbidden)))
  .add(endpoint("removeCollectionDocument", (op) =>
    op.del("/api/v1/collections/:collection_id/documents/:document_id").pipe(withPath(op.path(CollectionDocumentPath)))
      .addSuccess(op.empty(204))
      .addError(NotFound)
      .addError(Forbidden)))
  .middleware(Authentication)
  .annotate(OpenApi.Title, "collections")
{}
