import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"
import { Authentication } from "../accounts/Authentication.ts"
import { endpoint } from "../contract/Contract.ts"
import {
  Forbidden,
  MalformedBody,
  NotFound,
  PayloadTooLarge,
  RequestTimeout,
  UnsupportedMediaType,
  ValidationFailed
} from "../http/ApiError.ts"
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
import { Uuid } from "../contract/Uuid.ts"

const DocumentPath = Schema.Struct({ document_id: Uuid })

export class DocumentsApi extends HttpApiGroup.make("documents")
  .add(
    endpoint("createDocument", (op) =>
      HttpApiEndpoint.post(op.name, "/api/v1/documents", {
        payload: op.payload("application/json", CreateDocumentRequest),
        success: [op.response(200, "application/json", Document), op.response(202, "application/json", Document)],
        error: [Forbidden, NotFound, ValidationFailed]
      }).pipe(withBody())
    )
  )
  .add(
    endpoint("listDocuments", (op) =>
      HttpApiEndpoint.get(op.name, "/api/v1/documents", {
        query: op.query(DocumentListQuery),
        success: op.response(200, "application/json", DocumentPage),
        error: ValidationFailed
      }).pipe(withQuery())
    )
  )
  .add(
    endpoint("getIndexingProgress", (op) =>
      HttpApiEndpoint.get(op.name, "/api/v1/documents/progress", {
        query: op.query(DocumentProgressQuery),
        success: op.response(200, "application/json", IndexingProgress),
        error: ValidationFailed
      }).pipe(withQuery())
    )
  )
  .add(
    endpoint("createDocumentsBatch", (op) =>
      HttpApiEndpoint.post(op.name, "/api/v1/documents/batch", {
        payload: op.payload("application/json", DocumentBatchRequest),
        success: op.response(207, "application/json", DocumentBatchResult),
        error: ValidationFailed
      }).pipe(withBody())
    )
  )
  .add(
    endpoint("uploadDocuments", (op) =>
      HttpApiEndpoint.post(op.name, "/api/v1/documents/upload", {
        payload: op.payload("multipart/form-data", DocumentUpload.pipe(HttpApiSchema.asMultipartStream())),
        success: op.response(202, "application/json", DocumentList),
        error: [MalformedBody, NotFound, RequestTimeout, PayloadTooLarge, UnsupportedMediaType, ValidationFailed]
      }).pipe(withBody())
    )
  )
  .add(
    endpoint("documentEvents", (op) =>
      HttpApiEndpoint.get(op.name, "/api/v1/documents/events", {
        success: op.text(200, "text/event-stream", Schema.String)
      })
    )
  )
  .add(
    endpoint("getDocument", (op) =>
      HttpApiEndpoint.get(op.name, "/api/v1/documents/:document_id", {
        params: op.path(DocumentPath),
        success: op.response(200, "application/json", Document),
        error: [NotFound, ValidationFailed]
      }).pipe(withPath)
    )
  )
  .add(
    endpoint("updateDocument", (op) =>
      HttpApiEndpoint.patch(op.name, "/api/v1/documents/:document_id", {
        params: op.path(DocumentPath),
        payload: op.payload("application/json", UpdateDocumentRequest),
        success: op.response(200, "application/json", Document),
        error: [NotFound, ValidationFailed]
      }).pipe(withPath, withBody())
    )
  )
  .add(
    endpoint("deleteDocument", (op) =>
      HttpApiEndpoint.delete(op.name, "/api/v1/documents/:document_id", {
        params: op.path(DocumentPath),
        success: op.empty(204),
        error: [NotFound, ValidationFailed]
      }).pipe(withPath)
    )
  )
  .add(
    endpoint("listDocumentChunks", (op) =>
      HttpApiEndpoint.get(op.name, "/api/v1/documents/:document_id/chunks", {
        params: op.path(DocumentPath),
        query: op.query(PageQuery),
        success: op.response(200, "application/json", ChunkPage),
        error: [NotFound, ValidationFailed]
      }).pipe(withPath, withQuery())
    )
  )
  .middleware(Authentication)
  .annotate(OpenApi.Title, "documents") {}
