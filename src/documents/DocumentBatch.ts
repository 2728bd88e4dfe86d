/**
 * A batch of documents, each item with its own validation, rights and status, so one bad item
 * never fails the others. An item that breaks the CreateDocumentRequest schema is a 422 result
 * with the same details a single request would get, its paths prefixed with the item's position
 * (`documents.3.title`); one refused (a collection it may not change, making it public) is that
 * item's 404 or 403. The rest are stored together in one transaction (DocumentIngestion).
 */
import { Effect, Result } from "effect"
import type { Caller } from "../accounts/SessionsRepo.ts"
import { type ApiError, errorCode, errorStatus } from "../http/ApiError.ts"
import { decodeInput } from "../http/IssueDetails.ts"
import { CurrentRequestId } from "../http/RequestId.ts"
import type { DocumentIngestion } from "./DocumentIngestion.ts"
import { CreateDocumentRequest, type DocumentBatchResult } from "./Documents.ts"

type ItemResult = DocumentBatchResult["results"][number]

const decodeItem = decodeInput(CreateDocumentRequest)

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

export const ingestBatch = (ingestion: DocumentIngestion["Service"], caller: Caller, items: ReadonlyArray<unknown>) =>
  Effect.gen(function* () {
    const requestId = yield* CurrentRequestId
    const decodedItems = items.map((item, index) => decodeItem(item, { prefix: ["documents", index], subject: `Item ${index}` }))
    const valid = decodedItems.flatMap((decoded, index) => (Result.isSuccess(decoded) ? [{ index, request: decoded.success }] : []))
    const outcomes = yield* ingestion.ingestEach(
      caller,
      valid.map((item) => item.request)
    )
    const outcomeOf = new Map(valid.map(({ index }, position) => [index, outcomes[position]!]))
    const results = decodedItems.map((decoded, index): ItemResult => {
      if (Result.isFailure(decoded)) return failed(index, decoded.failure, requestId)
      const outcome = outcomeOf.get(index)!
      return Result.isFailure(outcome)
        ? failed(index, outcome.failure, requestId)
        : { index, status: outcome.success.outcome === "queued" ? 202 : 200, document: outcome.success.document }
    })
    const succeeded = results.filter((result) => result.document !== undefined).length
    return { results, succeeded, failed: results.length - succeeded }
  })
