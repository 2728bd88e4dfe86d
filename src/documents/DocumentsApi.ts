import { HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Authentication } from "../accounts/Authentication.ts"
import { endpoint } from "../contract/Contract.ts"
import { Forbidden, NotFound, PayloadTooLarge, UnsupportedMediaType } from "../http/ApiError.ts"
import { withBody } from "../http/RequestBody.ts"
import { withPath, withQuery } from "../http/RequestParams.ts"
import {
  ChunkPage,
  CreateDocumentRequest,
  Document,
  DocumentBatchRequest,
  DocumentBatchResult,
  DocumentList,
  DocumentListQuery,
  DocumentPage,
  DocumentProgressQuery,
  DocumentUpload,
  IndexingProgress,
  PageQuery,
  UpdateDocumentRequest
} from "./Documents.ts"

const DocumentPath = Schema.Struct({ document_id: Schema.UUID })

export class DocumentsApi extends HttpApiGroup.make("documents")
  .add(endpoint("createDocument", (op) =>
    op.post("/api/v1/documents").pipe(withBody(op.payload("application/json", CreateDocumentRequest)))
      .addSuccess(op.response(200, "application/json", Document))
      .addSuccess(op.response(202, "application/json", Document), { status: 202 })
      .addError(Forbidden)
      .addError(NotFound)))
  .add(endpoint("listDocuments", (op) =>
    op.get("/api/v1/documents").pipe(withQuery(op.query(DocumentListQuery)))
      .addSuccess(op.response(200, "application/json", DocumentPage))))
  .add(endpoint("getIndexingProgress", (op) =>
    op.get("/api/v1/documents/progress").pipe(withQuery(op.query(DocumentProgressQuery)))
      .addSuccess(op.response(200, "application/json", IndexingProgress))))
  .add(endpoint("createDocumentsBatch", (op) =>
    op.post("/api/v1/documents/batch").pipe(withBody(op.payload("application/json", DocumentBatchRequest)))
      .addSuccess(op.response(207, "application/json", DocumentBatchResult), { status: 207 })))
  .add(endpoint("uploadDocuments", (op) =>
    op.post("/api/v1/documents/upload").pipe(
      withBody(op.payload("multipart/form-data", HttpApiSchema.MultipartStream(DocumentUpload)))
    )
      .addSuccess(op.response(202, "application/json", DocumentList), { status: 202 })
      .addError(NotFound)
      .addError(PayloadTooLarge)
      .addError(UnsupportedMediaType)))
  .add(endpoint("documentEvents", (op) =>
    op.get("/api/v1/documents/events").addSuccess(op.response(
      200,
      "text/event-stream",
      Schema.String.pipe(HttpApiSchema.withEncoding({ kind: "Text", contentType: "text/event-stream" }))
    ))))
  .add(endpoint("getDocument", (op) =>
    op.get("/api/v1/documents/:document_id").pipe(withPath(op.path(DocumentPath)))
      .addSuccess(op.response(200, "application/json", Document))
      .addError(NotFound)))
  .add(endpoint("updateDocument", (op) =>
    op.patch("/api/v1/documents/:document_id").pipe(
      withPath(op.path(DocumentPath)),
      withBody(op.payload("application/json", UpdateDocumentRequest))
    )
      .addSuccess(op.response(200, "application/json", Document))
      .addError(NotFound)))
  .add(endpoint("deleteDocument", (op) =>
    op.del("/api/v1/documents/:document_id").pipe(withPath(op.path(DocumentPath)))
      .addSuccess(op.empty(204))
      .addError(NotFound)))
  .add(endpoint("listDocumentChunks", (op) =>
    op.get("/api/v1/documents/:document_id/chunks").pipe(withPath(op.path(DocumentPath)), withQuery(op.query(PageQuery)))
      .addSuccess(op.response(200, "application/json", ChunkPage))
      .addError(NotFound)))
  .middleware(Authentication)
  .annotate(OpenApi.Title, "documents")
{}
