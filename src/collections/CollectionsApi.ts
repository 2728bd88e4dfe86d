import { HttpApiGroup, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Authentication } from "../accounts/Authentication.ts"
import {
  contractEmpty,
  contractPath,
  contractPayload,
  contractQuery,
  contractResponse,
  operation
} from "../contract/Contract.ts"
import { PageQuery } from "../documents/Documents.ts"
import { Conflict, Forbidden, NotFound, ValidationFailed } from "../http/ApiError.ts"
import { withBody } from "../http/RequestBody.ts"
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
  .add(
    operation("createCollection").post("/api/v1/collections").pipe(
      withBody(contractPayload("createCollection", "application/json", CreateCollectionRequest))
    )
      .addSuccess(contractResponse("createCollection", 201, "application/json", Collection), { status: 201 })
  )
  .add(
    operation("listCollections").get("/api/v1/collections")
      .setUrlParams(contractQuery("listCollections", PageQuery))
      .addSuccess(contractResponse("listCollections", 200, "application/json", CollectionPage))
      .addError(ValidationFailed)
  )
  .add(
    operation("getCollection").get("/api/v1/collections/:collection_id")
      .setPath(contractPath("getCollection", CollectionPath))
      .addSuccess(contractResponse("getCollection", 200, "application/json", Collection))
      .addError(NotFound)
      .addError(ValidationFailed)
  )
  .add(
    operation("updateCollection").patch("/api/v1/collections/:collection_id")
      .setPath(contractPath("updateCollection", CollectionPath))
      .pipe(withBody(contractPayload("updateCollection", "application/json", UpdateCollectionRequest)))
      .addSuccess(contractResponse("updateCollection", 200, "application/json", Collection))
      .addError(NotFound)
      .addError(Forbidden)
  )
  .add(
    operation("deleteCollection").del("/api/v1/collections/:collection_id")
      .setPath(contractPath("deleteCollection", CollectionPath))
      .addSuccess(contractEmpty("deleteCollection", 204))
      .addError(NotFound)
      .addError(Forbidden)
      .addError(ValidationFailed)
  )
  .add(
    operation("listCollectionMembers").get("/api/v1/collections/:collection_id/members")
      .setPath(contractPath("listCollectionMembers", CollectionPath))
      .addSuccess(contractResponse("listCollectionMembers", 200, "application/json", CollectionMemberList))
      .addError(NotFound)
      .addError(ValidationFailed)
  )
  .add(
    operation("setCollectionMember").put("/api/v1/collections/:collection_id/members/:user_id")
      .setPath(contractPath("setCollectionMember", MemberPath))
      .pipe(withBody(contractPayload("setCollectionMember", "application/json", SetCollectionMemberRequest)))
      .addSuccess(contractResponse("setCollectionMember", 200, "application/json", CollectionMember))
      .addError(NotFound)
      .addError(Forbidden)
      .addError(Conflict)
  )
  .add(
    operation("removeCollectionMember").del("/api/v1/collections/:collection_id/members/:user_id")
      .setPath(contractPath("removeCollectionMember", MemberPath))
      .addSuccess(contractEmpty("removeCollectionMember", 204))
      .addError(NotFound)
      .addError(Forbidden)
      .addError(Conflict)
      .addError(ValidationFailed)
  )
  .add(
    operation("addCollectionDocument").post("/api/v1/collections/:collection_id/documents/:document_id")
      .setPath(contractPath("addCollectionDocument", CollectionDocumentPath))
      .addSuccess(contractEmpty("addCollectionDocument", 204))
      .addError(NotFound)
      .addError(Forbidden)
      .addError(ValidationFailed)
  )
  .add(
    operation("removeCollectionDocument").del("/api/v1/collections/:collection_id/documents/:document_id")
      .setPath(contractPath("removeCollectionDocument", CollectionDocumentPath))
      .addSuccess(contractEmpty("removeCollectionDocument", 204))
      .addError(NotFound)
      .addError(Forbidden)
      .addError(ValidationFailed)
  )
  .middleware(Authentication)
  .annotate(OpenApi.Title, "collections")
{}
