/** POST /api/v1/search: the caller's search, run by Retrieval. */
import { Effect, Layer } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { CurrentUser } from "../accounts/Authentication.ts"
import { BasaltApi } from "../Api.ts"
import { Retrieval } from "./Retrieval.ts"

export const SearchHttpLive = HttpApiBuilder.group(BasaltApi, "search", (handlers) =>
  Effect.gen(function* () {
    const retrieval = yield* Retrieval
    return handlers.handle("search", ({ payload }) => Effect.flatMap(CurrentUser, (caller) => retrieval.search(caller, payload)))
  })
).pipe(Layer.provide(Retrieval.layer))
