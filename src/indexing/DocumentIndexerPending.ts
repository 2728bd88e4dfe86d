/**
 * PLACEHOLDER until the indexing work is merged: a DocumentIndexer that indexes nothing and only
 * logs the request at debug level. Documents stay `queued`. App.ts must provide the real Layer
 * (the @effect/cluster entity) instead of this one.
 */
import { Effect, Layer } from "effect"
import { DocumentIndexer } from "./DocumentIndexer.ts"

export const DocumentIndexerPending = Layer.succeed(DocumentIndexer, {
  submit: (request) =>
    Effect.logDebug("indexing not wired yet: document stays queued").pipe(
      Effect.annotateLogs({ document_id: request.documentId, revision: request.revision })
    )
})
