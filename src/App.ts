/** The whole server as one Layer: the API served over HTTP, on its database, with telemetry. */
import { Layer } from "effect"
import { AppConfigLive } from "../layers/AppConfigLive.ts"
import { DatabaseLive } from "../layers/DatabaseLive.ts"
import { EmbedderLive } from "../layers/EmbedderLive.ts"
import { listen, serveApi } from "../layers/HttpServerLive.ts"
import { IndexingLive } from "../layers/IndexingLive.ts"
import { LanguageModelLive } from "../layers/LanguageModelLive.ts"
import { OidcProviderLive } from "../layers/OidcProviderLive.ts"
import { LoggerLive, TelemetryLive } from "../layers/TelemetryLive.ts"
import { AccessTokens } from "./accounts/AccessTokens.ts"
import { AdminHttpLive, ApiKeysHttpLive, AuthHttpLive, UsersHttpLive } from "./accounts/AccountsHttp.ts"
import { AdminAuthentication, Authentication, Authenticator } from "./accounts/Authentication.ts"
import { CallerCache } from "./accounts/CallerCache.ts"
import { PasswordHasher } from "./accounts/PasswordHasher.ts"
import { SingleSignOnHttpLive } from "./accounts/SingleSignOnHttp.ts"
import { BasaltApi } from "./Api.ts"
import { ChatConversationLive } from "./chat/ChatConversation.ts"
import { ChatHttpLive } from "./chat/ChatHttp.ts"
import { ChatRunner } from "./chat/ChatRunner.ts"
import { RunEvents } from "./chat/RunEvents.ts"
import { ClusterTransportRouteLive, clusterTransportRoute } from "./cluster/ClusterTransport.ts"
import { CollectionsHttpLive } from "./collections/CollectionsHttp.ts"
import { DocsHttpLive } from "./docs/DocsHttp.ts"
import { DocumentDeletionsPruningLive } from "./documents/DocumentEvents.ts"
import { DocumentsHttpLive } from "./documents/DocumentsHttp.ts"
import { UploadSpoolSweepLive } from "./documents/UploadSpool.ts"
import { HealthHttpLive } from "./health/HealthHttp.ts"
import { ServerLifecycle } from "./http/ServerLifecycle.ts"
import { AuthRateLimitLive } from "./ratelimit/RateLimitHttp.ts"
import { RateLimiter } from "./ratelimit/RateLimiter.ts"
import { SearchHttpLive } from "./search/SearchHttp.ts"
import { SearchStatisticsLive } from "./search/SearchStatistics.ts"

const AccountsLive = Layer.mergeAll(AccessTokens.layer, PasswordHasher.layer, CallerCache.layer, OidcProviderLive)

const HandlersLive = Layer.mergeAll(
  HealthHttpLive,
  DocsHttpLive,
  AuthHttpLive,
  SingleSignOnHttpLive,
  UsersHttpLive,
  AdminHttpLive,
  ApiKeysHttpLive,
  DocumentsHttpLive,
  CollectionsHttpLive,
  SearchHttpLive,
  ChatHttpLive
).pipe(
  Layer.provide([Authentication.layer, AdminAuthentication.layer, AuthRateLimitLive]),
  // The middleware and the event streams (which re-check their request) identify callers alike.
  Layer.provide(Authenticator.layer),
  Layer.provide([AccountsLive, RateLimiter.layer])
)

// Indexing (and the DocumentIndexer the handlers submit to, and the cluster under it) runs as long as the server; merged
// so that the database and the indexer are reachable from the runtime (tests, scripts). One
// embedder serves indexing and search alike.
// The conversation entity: each session's answers, generated in order by whichever process holds its shard.
const ChatConversationsLive = ChatConversationLive.pipe(Layer.provide(ChatRunner.layer))

const ServedLive = Layer.mergeAll(
  HandlersLive,
  ChatConversationsLive,
  ClusterTransportRouteLive,
  SearchStatisticsLive,
  DocumentDeletionsPruningLive,
  UploadSpoolSweepLive
)

export const AppLive = serveApi(BasaltApi, ServedLive, [clusterTransportRoute]).pipe(
  Layer.provideMerge(IndexingLive),
  // Chat runs' events: one per process (its wakes are in-process), reachable from the runtime.
  Layer.provideMerge(RunEvents.layer),
  // One answerer for every chat, from configuration.
  Layer.provideMerge(LanguageModelLive),
  Layer.provideMerge(EmbedderLive),
  Layer.provideMerge(DatabaseLive),
  // First: the port is bound, and /health and /ready answer, while the database is awaited.
  Layer.provideMerge(listen(BasaltApi, [clusterTransportRoute])),
  Layer.provide(ServerLifecycle.layer),
  Layer.provide(TelemetryLive),
  Layer.provide(LoggerLive),
  Layer.provide(AppConfigLive)
)
