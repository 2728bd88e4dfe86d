import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, HttpApiMiddleware, OpenApi } from "effect/http-api"
import { AuditPage, AuditQuery } from "../audit/Audit.ts"
import { endpoint } from "../contract/Contract.ts"
import { Conflict, Forbidden, InvalidGrant, NotFound, Unauthorized, UnsupportedGrantType, ValidationFailed } from "../http/ApiError.ts"
import { withBody } from "../http/RequestBody.ts"
import { withPath, withQuery } from "../http/RequestParams.ts"
import { AuthRateLimit } from "../ratelimit/RateLimitApi.ts"
import {
  ApiKeyList,
  BrowserSession,
  ChangePasswordRequest,
  CreateApiKeyRequest,
  CreatedApiKey,
  CreateUserRequest,
  LoginRequest,
  OAuthToken,
  RefreshRequest,
  RegisterRequest,
  TokenPair,
  TokenRequest,
  UpdateCurrentUserRequest,
  UpdateUserRequest,
  User,
  UserListQuery,
  UserPage
} from "./Accounts.ts"
import { AdminAuthentication, Authentication } from "./Authentication.ts"
import { Uuid } from "../contract/Uuid.ts"

/**
 * A token request's `grant_type` that no grant has is RFC 6749's 400 `unsupported_grant_type`
 * (section 5.2), told before the body is decoded, where it would fit no member of TokenRequest (422).
 */
export class TokenGrantType extends HttpApiMiddleware.Service<TokenGrantType>()("basalt/TokenGrantType", {
  error: UnsupportedGrantType
}) {}

export class AuthApi extends HttpApiGroup.make("auth")
  .add(
    endpoint("register", (op) =>
      HttpApiEndpoint.post(op.name, "/api/v1/auth/register", {
        payload: op.payload("application/json", RegisterRequest),
        success: op.response(201, "application/json", User),
        error: [Forbidden, Conflict, ValidationFailed]
      })
        .pipe(withBody())
        .middleware(AuthRateLimit)
    )
  )
  .add(
    endpoint("login", (op) =>
      HttpApiEndpoint.post(op.name, "/api/v1/auth/login", {
        payload: op.payload("application/json", LoginRequest),
        success: op.response(200, "application/json", Schema.Union([TokenPair, BrowserSession])),
        error: [Unauthorized, ValidationFailed]
      })
        .pipe(withBody())
        .middleware(AuthRateLimit)
    )
  )
  .add(
    endpoint("issueToken", (op) =>
      HttpApiEndpoint.post(op.name, "/api/v1/auth/token", {
        payload: op.payload("application/x-www-form-urlencoded", TokenRequest),
        success: op.response(200, "application/json", OAuthToken),
        error: [InvalidGrant, UnsupportedGrantType, ValidationFailed]
      })
        .pipe(withBody({ unknownFields: "ignore" }))
        .middleware(AuthRateLimit)
        .middleware(TokenGrantType)
    )
  )
  .add(
    endpoint("refreshSession", (op) =>
      HttpApiEndpoint.post(op.name, "/api/v1/auth/refresh", {
        payload: op.payload("application/json", RefreshRequest),
        success: op.response(200, "application/json", TokenPair),
        error: [Unauthorized, ValidationFailed]
      })
        .pipe(withBody())
        .middleware(AuthRateLimit)
    )
  )
  .add(
    endpoint("logout", (op) => HttpApiEndpoint.post(op.name, "/api/v1/auth/logout", { success: op.empty(204) }).middleware(Authentication))
  )
  .annotate(OpenApi.Title, "auth") {}

export class UsersApi extends HttpApiGroup.make("users")
  .add(
    endpoint("getCurrentUser", (op) =>
      HttpApiEndpoint.get(op.name, "/api/v1/users/me", { success: op.response(200, "application/json", User) })
    )
  )
  .add(
    endpoint("updateCurrentUser", (op) =>
      HttpApiEndpoint.patch(op.name, "/api/v1/users/me", {
        payload: op.payload("application/json", UpdateCurrentUserRequest),
        success: op.response(200, "application/json", User),
        error: ValidationFailed
      }).pipe(withBody())
    )
  )
  .add(
    endpoint("changePassword", (op) =>
      HttpApiEndpoint.post(op.name, "/api/v1/users/me/password", {
        payload: op.payload("application/json", ChangePasswordRequest),
        success: op.empty(204),
        error: [Forbidden, ValidationFailed]
      }).pipe(withBody())
    )
  )
  .middleware(Authentication)
  .annotate(OpenApi.Title, "users") {}

const UserPath = Schema.Struct({ user_id: Uuid })

export class AdminApi extends HttpApiGroup.make("admin")
  .add(
    endpoint("listUsers", (op) =>
      HttpApiEndpoint.get(op.name, "/api/v1/admin/users", {
        query: op.query(UserListQuery),
        success: op.response(200, "application/json", UserPage),
        error: ValidationFailed
      }).pipe(withQuery())
    )
  )
  .add(
    endpoint("listAuditEvents", (op) =>
      HttpApiEndpoint.get(op.name, "/api/v1/admin/audit", {
        query: op.query(AuditQuery),
        success: op.response(200, "application/json", AuditPage),
        error: ValidationFailed
      }).pipe(withQuery())
    )
  )
  .add(
    endpoint("createUser", (op) =>
      HttpApiEndpoint.post(op.name, "/api/v1/admin/users", {
        payload: op.payload("application/json", CreateUserRequest),
        success: op.response(201, "application/json", User),
        error: [Conflict, ValidationFailed]
      }).pipe(withBody())
    )
  )
  .add(
    endpoint("updateUser", (op) =>
      HttpApiEndpoint.patch(op.name, "/api/v1/admin/users/:user_id", {
        params: op.path(UserPath),
        payload: op.payload("application/json", UpdateUserRequest),
        success: op.response(200, "application/json", User),
        error: [NotFound, Conflict, ValidationFailed]
      }).pipe(withPath, withBody())
    )
  )
  .middleware(AdminAuthentication)
  .annotate(OpenApi.Title, "admin") {}

const KeyPath = Schema.Struct({ key_id: Uuid })

export class ApiKeysApi extends HttpApiGroup.make("api-keys")
  .add(
    endpoint("createApiKey", (op) =>
      HttpApiEndpoint.post(op.name, "/api/v1/api-keys", {
        payload: op.payload("application/json", CreateApiKeyRequest),
        success: op.response(201, "application/json", CreatedApiKey),
        error: [Forbidden, ValidationFailed]
      }).pipe(withBody())
    )
  )
  .add(
    endpoint("listApiKeys", (op) =>
      HttpApiEndpoint.get(op.name, "/api/v1/api-keys", { success: op.response(200, "application/json", ApiKeyList) })
    )
  )
  .add(
    endpoint("revokeApiKey", (op) =>
      HttpApiEndpoint.delete(op.name, "/api/v1/api-keys/:key_id", {
        params: op.path(KeyPath),
        success: op.empty(204),
        error: [NotFound, ValidationFailed]
      }).pipe(withPath)
    )
  )
  .middleware(Authentication)
  .annotate(OpenApi.Title, "api-keys") {}
