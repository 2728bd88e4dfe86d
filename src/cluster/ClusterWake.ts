/**
 * Has every runner read its message storage now, instead of at its next poll: what a sender
 * calls once the messages it stored are committed (inside the transaction, on Postgres, the wake
 * is delivered with the commit).
 */
import { Context, type Effect } from "effect"

export class ClusterWake extends Context.Service<ClusterWake, { readonly wake: Effect.Effect<void> }>()("basalt/ClusterWake") {}
