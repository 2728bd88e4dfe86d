/**
 * A batch of documents, each item on its own: its own validation, transaction and status, so one
 * bad item never fails the others. An item that breaks the CreateDocumentRequest schema is a 422
 * result with the same details a single request would get, its paths prefixed with the item's
 * position (`documents.3.title`).
 */
import { Cause, Effect, Either, FiberRef, ParseResult, Schema } from "effect"
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

/** Batch items stored at once. */
const itemConcurrency = 8

/**
 * The items' positions, grouped by the document they name ((source, external_id); an item
 * without external_id is always a new document), each group in batch order.
 */
const groupBySameDocument = (
  decoded: ReadonlyArray<Either.Either<CreateDocumentRequest, unknown>>
): ReadonlyArray<ReadonlyArray<number>> => {
  const groups = new Map<string, Array<number>>()
  const alone: Array<Array<number>> = []
  decoded.forEach((item, index) => {
    if (Either.isLeft(item) || item.right.external_id === undefined) {
      alone.push([index])
      return
    }
    const key = JSON.stringify([item.right.source, item.right.external_id])
    const group = groups.get(key)
    if (group === undefined) groups.set(key, [index])
    else group.push(index)
  })
  return [...groups.values(), ...alone]
}

export const ingestBatch = (ingestion: DocumentIngestion, caller: Caller, items: ReadonlyArray<unknown>) =>
  Effect.gen(function*() {
    const requestId = yield* FiberRef.get(CurrentRequestId)
    const decodedItems = items.map((item) => decodeItem(item))
    const one = (index: number): Effect.Effect<ItemResult> => {
      const decoded = decodedItems[index]!
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
    }
    // Items run a few at once (each its own transaction: their round trips and commits overlap),
    // but the items naming one document run one after the other, in the batch's order, so the
    // last of them wins as it would one request after the other.
    const results = new Array<ItemResult>(items.length)
    yield* Effect.forEach(
      groupBySameDocument(decodedItems),
      (indexes) => Effect.forEach(indexes, (index) => Effect.map(one(index), (result) => (results[index] = result))),
      { concurrency: itemConcurrency, discard: true }
    )
    const succeeded = results.filter((result) => result.document !== undefined).length
    return { results, succeeded, failed: results.length - succeeded }
  })
