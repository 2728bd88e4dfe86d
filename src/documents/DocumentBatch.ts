/**
 * A batch of documents, each item on its own: its own validation, transaction and status, so one
 * bad item never fails the others. An item that breaks the CreateDocumentRequest schema is a 422
 * result with the same details a single request would get, its paths prefixed with the item's
 * position (`documents.3.title`).
 */
import { Cause, Effect, FiberRef, ParseResult, Schema } from "effect"
import type { Caller } from "../accounts/SessionsRepo.ts"
import { type ApiError, errorCode, errorStatus, InternalError, isApiError, ValidationFailed } from "../http/ApiError.ts"
import { CurrentRequestId } from "../http/RequestId.ts"
import type { DocumentIngestion } from "./DocumentIngestion.ts"
import { CreateDocumentRequest, type DocumentBatchResult } from "./Documents.ts"

type ItemResult = DocumentBatchResult["results"][number]

const decodeItem = Schema.decodeUnknownEither(CreateDocumentRequest, { errors: "all", onExcessProperty: "error" })

const invalidItem = (index: number, error: ParseResult.ParseError) =>
  new ValidationFailed({
    message: "The item does not match the CreateDocumentRequest schema",
    details: ParseResult.ArrayFormatter.formatErrorSync(error).map((issue) => ({
      path: ["documents", index, ...issue.path].map(String).join("."),
      message: issue.message
    }))
  })

const failed = (index: number, error: ApiError, requestId: string): ItemResult => ({
  index,
  status: errorStatus(error),
  error: {
    error: errorCode(error._tag),
    message: error.message,
    ...(error.details !== undefined && error.details.length > 0 ? { details: error.details } : {}),
    request_id: requestId
  }
})

export const ingestBatch = (ingestion: DocumentIngestion, caller: Caller, items: ReadonlyArray<unknown>) =>
  Effect.gen(function*() {
    const requestId = yield* FiberRef.get(CurrentRequestId)
    const results = yield* Effect.forEach(items, (item, index) => {
      const decoded = decodeItem(item)
      if (decoded._tag === "Left") return Effect.succeed(failed(index, invalidItem(index, decoded.left), requestId))
      return ingestion.ingest(caller, decoded.right).pipe(
        Effect.map(({ document, outcome }): ItemResult => ({ index, status: outcome === "queued" ? 202 : 200, document })),
        // An unexpected failure of one item is logged and reported for that item alone.
        Effect.catchAllCause((cause) => {
          const failure = Cause.failureOption(cause)
          if (failure._tag === "Some" && isApiError(failure.value)) {
            return Effect.succeed(failed(index, failure.value, requestId))
          }
          return Effect.as(
            Effect.logError("batch item failed", cause),
            failed(index, new InternalError({ message: "An unexpected error occurred; it has been logged under this request_id" }), requestId)
          )
        })
      )
    })
    const succeeded = results.filter((result) => result.document !== undefined).length
    return { results, succeeded, failed: results.length - succeeded }
  })
