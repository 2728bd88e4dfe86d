/**
 * The indexing actor: one `DocumentIndexing` entity per document (keyed by its id), whose
 * `Index { revision }` messages are persisted by the cluster's SQL message storage before
 * `submit` returns.
 *
 * What the runtime guarantees follows from that: messages survive a crash (a restart reads the
 * unprocessed ones back), one entity handles its messages one at a time and in order (a
 * document is never indexed twice at once), and a message's primary key is its revision, so a
 * second submission of a revision still pending is the same stored message, not a second run.
 */
import { Effect, Schema } from "effect"
import { ClusterSchema, Entity } from "effect/cluster"
import { Rpc } from "effect/rpc"
import { IndexingPipeline } from "./IndexingPipeline.ts"

export const Index = Rpc.make("Index", {
  payload: { revision: Schema.Int },
  primaryKey: ({ revision }) => String(revision)
})

export const DocumentIndexing = Entity.make("DocumentIndexing", [Index]).annotateRpcs(ClusterSchema.Persisted, true)

/** The entity's behaviour: index the revision; the outcome is the document's status, and the message always completes. */
export const DocumentIndexingLive = DocumentIndexing.toLayer(
  Effect.gen(function* () {
    const pipeline = yield* IndexingPipeline
    return DocumentIndexing.of({
      Index: (envelope) => Effect.asVoid(pipeline.index(envelope.address.entityId, envelope.payload.revision))
    })
  })
)
