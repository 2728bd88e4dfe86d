/**
 * The runner transport: how Basalt processes send each other cluster messages and check that the
 * others are alive (the cluster package's HTTP runner protocol, RPC over HTTP in NDJSON).
 *
 * It is a route on the API's own server and router, at `/internal/cluster/`: each process has one
 * port to open, to advertise and to put behind TLS, and the runner routes go through the same
 * server middleware (request ids, logs, metrics, draining) as the API. Only Basalt processes may
 * use it: each request carries the key the processes share through their database
 * (SharedSecrets); to anyone else the path does not exist (404, as any path the contract does
 * not declare). A load balancer should not forward `/internal/` at all.
 */
import { Context, Effect, Layer } from "effect"
import { HttpRunner } from "effect/cluster"
import {
  FetchHttpClient,
  HttpClient,
  HttpClientError,
  HttpClientRequest,
  HttpRouter,
  HttpServerError,
  type HttpServerRequest
} from "effect/http"
import { RpcSerialization } from "effect/rpc"
import { createHash, timingSafeEqual } from "node:crypto"
import { sharedSecret } from "../database/SharedSecrets.ts"

// With its slash: the RPC client posts to its base URL's root (`…/cluster/`), and routing is exact.
export const clusterTransportPath = "/internal/cluster/"

/** The transport as the server's route table lists it, beside the contract's routes. */
export const clusterTransportRoute = { method: "POST", path: clusterTransportPath } as const

/**
 * The most a runner waits for another to start answering one RPC. Basalt's entities are told
 * of their messages (`discard`), which answer at once; a runner that takes longer is treated as
 * unavailable, and the message waits in storage for its shard's next owner.
 */
const requestTimeout = "10 seconds"

const digest = (text: string) => createHash("sha256").update(text).digest()

export class ClusterKey extends Context.Service<
  ClusterKey,
  {
    /** The Authorization header a runner request carries. */
    readonly authorization: string
    /** Whether `header` is that header (compared in constant time). */
    readonly accepts: (header: string | undefined) => boolean
  }
>()("basalt/ClusterKey") {
  static readonly layer = Layer.effect(
    ClusterKey,
    Effect.map(sharedSecret("cluster_transport"), (secret) => {
      const authorization = `Basalt-Runner ${secret}`
      const expected = digest(authorization)
      return ClusterKey.of({
        authorization,
        accepts: (header) => header !== undefined && timingSafeEqual(digest(header), expected)
      })
    })
  )
}

/** Serves the runner RPCs of this process's Sharding at `clusterTransportPath`, to holders of the key. */
export const ClusterTransportRouteLive = Layer.effectDiscard(
  Effect.gen(function* () {
    const router = yield* HttpRouter.HttpRouter
    const key = yield* ClusterKey
    const serve = yield* HttpRunner.toHttpEffect
    yield* router.add("POST", clusterTransportPath, (request: HttpServerRequest.HttpServerRequest) =>
      key.accepts(request.headers.authorization)
        ? serve
        : // The router's own failure for an unknown route, rendered by the server middleware as one.
          Effect.die(new HttpServerError.HttpServerError({ reason: new HttpServerError.RouteNotFound({ request }) }))
    )
  })
).pipe(Layer.provide(RpcSerialization.layerNdjson))

/** Runner RPCs to the other processes: each request with the key, and answered within `requestTimeout`. */
export const ClusterTransportClientLive = HttpRunner.layerClientProtocolHttp({ path: clusterTransportPath }).pipe(
  Layer.provide(
    Layer.effect(
      HttpClient.HttpClient,
      Effect.gen(function* () {
        const key = yield* ClusterKey
        const client = yield* HttpClient.HttpClient
        return client.pipe(
          HttpClient.mapRequest(HttpClientRequest.setHeader("authorization", key.authorization)),
          HttpClient.transform((response, request) =>
            Effect.timeoutOrElse(
              // Runner traffic (health pings every few seconds) is not traced, as on the serving side.
              Effect.provideService(response, HttpClient.TracerDisabledWhen, () => true),
              {
                duration: requestTimeout,
                orElse: () =>
                  Effect.fail(
                    new HttpClientError.HttpClientError({
                      reason: new HttpClientError.TransportError({ request, description: `no answer within ${requestTimeout}` })
                    })
                  )
              }
            )
          )
        )
      })
    ).pipe(Layer.provide(FetchHttpClient.layer))
  ),
  Layer.provide(RpcSerialization.layerNdjson)
)
