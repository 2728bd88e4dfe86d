import { HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
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
import { Forbidden, NotFound, PayloadTooLarge, UnsupportedMediaType, ValidationFailed } from "../http/ApiError.ts"
import { withBody } from "../http/RequestBody.ts"
import {
  ChunkPage,
  CreateDocumentRequest,
  Document,
  DocumentBatchRequest,
  DocumentBatchResult,
  DocumentList,
  DocumentListQuery,
  DocumentPage,
  DocumentUpload,
  PageQuery,
  UpdateDocumentRequest
} from "./Documents.ts"

const DocumentPath = Schema.Struct({ document_id: Schema.UUID })

export class DocumentsApi extends HttpApiGroup.make("documents")
  .add(
    operation("createDocument").post("/api/v1/documents").pipe(
      withBody(contractPayload("createDocument", "application/json", CreateDocumentRequest))
    )
      .addSuccess(contractResponse("createDocument", 200, "application/json", Document))
      .addSuccess(contractResponse("createDocument", 202, "application/json", Document), { status: 202 })
      .addError(Forbidden)
      .addError(NotFound)
  )
  .add(
    operation("listDocuments").get("/api/v1/documents")
      .setUrlParams(contractQuery("listDocuments", DocumentListQuery))
      .addSuccess(contractResponse("listDocuments", 200, "application/json", DocumentPage))
      .addError(ValidationFailed)
  )
  .add(
    operation("createDocumentsBatch").post("/api/v1/documents/batch").pipe(
      withBody(contractPayload("createDocumentsBatch", "application/json", DocumentBatchRequest))
    )
      .addSuccess(contractResponse("createDocumentsBatch", 207, "application/json", DocumentBatchResult), { status: 207 })
  )
  .add(
    operation("uploadDocuments").post("/api/v1/documents/upload").pipe(
      withBody(contractPayload("uploadDocuments", "multipart/form-data", HttpApiSchema.MultipartStream(DocumentUpload)))
    )
      .addSuccess(contractResponse("uploadDocuments", 202, "application/json", DocumentList), { status: 202 })
      .addError(NotFound)
      .addError(PayloadTooLarge)
      .addError(UnsupportedMediaType)
  )
  .add(
    operation("documentEvents").get("/api/v1/documents/events")
      .addSuccess(contractResponse(
        "documentEvents",
        200,
        "text/event-stream",
        Schema.String.pipe(HttpApiSchema.withEncoding({ kind: "Text", contentType: "text/event-stream" }))
      ))
  )
  .add(
    operation("getDocument").get("/api/v1/documents/:document_id")
      .setPath(contractPath("getDocument", DocumentPath))
      .addSuccess(contractResponse("getDocument", 200, "application/json", Document))
      .addError(NotFound)
      .addError(ValidationFailed)
  )
  .add(
    operation("updateDocument").patch("/api/v1/documents/:document_id")
      .setPath(contractPath("updateDocument", DocumentPath))
      .pipe(withBody(contractPayload("updateDocument", "application/json", UpdateDocumentRequest)))
      .addSuccess(contractResponse("updateDocument", 200, "application/json", Document))
      .addError(NotFound)
  )
  .add(
    operation("deleteDocument").del("/api/v1/documents/:document_id")
      .setPath(contractPath("deleteDocument", DocumentPath))
      .addSuccess(contractEmpty("deleteDocument", 204))
      .addError(NotFound)
      .addError(ValidationFailed)
  )
  .add(
    operation("listDocumentChunks").get("/api/v1/documents/:document_id/chunks")
      .setPath(contractPath("listDocumentChunks", DocumentPath))
      .setUrlParams(contractQuery("listDocumentChunks", PageQuery))
      .addSuccess(contractResponse("listDocumentChunks", 200, "application/json", ChunkPage))
      .addError(NotFound)
      .addError(ValidationFailed)
  )
  .middleware(Authentication)
  .annotate(OpenApi.Title, "documents")
{}
