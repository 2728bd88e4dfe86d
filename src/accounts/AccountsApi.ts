import { HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { AuditPage, AuditQuery } from "../audit/Audit.ts"
import { endpoint } from "../contract/Contract.ts"
import {
  Conflict,
  Forbidden,
  InvalidGrant,
  NotFound,
  Unauthorized,
  UnsupportedGrantType,
} from "../http/ApiError.ts"
import { withBody } from "../http/RequestBody.ts"
import { withPath, withQuery } from "../http/RequestParams.ts"
import { AuthRateLimit } from "../ratelimit/RateLimitApi.ts"
import {
  ApiKeyList,
  BrowserSession,
  ChangePasswordRequest,
  CreateApiKeyRequest,
  CreateUserRequest,
  CreatedApiKey,
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

export class AuthApi extends HttpApiGroup.make("auth")
  .add(endpoint("register", (op) =>
    op.post("/api/v1/auth/register").pipe(
      withBody(op.payload("application/json", RegisterRequest))
    )
      .middleware(AuthRateLimit)
      .addSuccess(op.response(201, "application/json", User), { status: 201 })
      .addError(Forbidden)
      .addError(Conflict)))
  .add(endpoint("login", (op) =>
    op.post("/api/v1/auth/login").pipe(withBody(op.payload("application/json", LoginRequest)))
      .middleware(AuthRateLimit)
      .addSuccess(op.response(200, "application/json", Schema.Union(TokenPair, BrowserSession)))
      .addError(Unauthorized)))
  .add(endpoint("issueToken", (op) =>
    op.post("/api/v1/auth/token").pipe(
      withBody(
        op.payload(
          "application/x-www-form-urlencoded",
          TokenRequest.pipe(HttpApiSchema.withEncoding({ kind: "UrlParams" }))
        ),
        { unknownFields: "ignore" }
      )
    )
      .middleware(AuthRateLimit)
      .addSuccess(op.response(200, "application/json", OAuthToken))
      .addError(InvalidGrant)
      .addError(UnsupportedGrantType)))
  .add(endpoint("refreshSession", (op) =>
    op.post("/api/v1/auth/refresh").pipe(
      withBody(op.payload("application/json", RefreshRequest))
    )
      .middleware(AuthRateLimit)
      .addSuccess(op.response(200, "application/json", TokenPair))
      .addError(Unauthorized)))
  .add(endpoint("logout", (op) =>
    op.post("/api/v1/auth/logout")
      .addSuccess(op.empty(204))
      .middleware(Authentication)))
  .annotate(OpenApi.Title, "auth")
{}

export class UsersApi extends HttpApiGroup.make("users")
  .add(endpoint("getCurrentUser", (op) =>
    op.get("/api/v1/users/me")
      .addSuccess(op.response(200, "application/json", User))))
  .add(endpoint("updateCurrentUser", (op) =>
    op.patch("/api/v1/users/me").pipe(
      withBody(op.payload("application/json", UpdateCurrentUserRequest))
    )
      .addSuccess(op.response(200, "application/json", User))))
  .add(endpoint("changePassword", (op) =>
    op.post("/api/v1/users/me/password").pipe(
      withBody(op.payload("application/json", ChangePasswordRequest))
    )
      .addSuccess(op.empty(204))
      .addError(Forbidden)))
  .middleware(Authentication)
  .annotate(OpenApi.Title, "users")
{}

export class AdminApi extends HttpApiGroup.make("admin")
  .add(endpoint("listUsers", (op) =>
    op.get("/api/v1/admin/users").pipe(withQuery(op.query(UserListQuery)))
      .addSuccess(op.response(200, "application/json", UserPage))))
  .add(endpoint("listAuditEvents", (op) =>
    op.get("/api/v1/admin/audit").pipe(withQuery(op.query(AuditQuery)))
      .addSuccess(op.response(200, "application/json", AuditPage))))
  .add(endpoint("createUser", (op) =>
    op.post("/api/v1/admin/users").pipe(
      withBody(op.payload("application/json", CreateUserRequest))
    )
      .addSuccess(op.response(201, "application/json", User), { status: 201 })
      .addError(Conflict)))
  .add(endpoint("updateUser", (op) =>
    op.patch("/api/v1/admin/users/:user_id").pipe(withPath(op.path(Schema.Struct({ user_id: Schema.UUID }))))
      .pipe(withBody(op.payload("application/json", UpdateUserRequest)))
      .addSuccess(op.response(200, "application/json", User))
      .addError(NotFound)
      .addError(Conflict)))
  .middleware(AdminAuthentication)
  .annotate(OpenApi.Title, "admin")
{}

export class ApiKeysApi extends HttpApiGroup.make("api-keys")
  .add(endpoint("createApiKey", (op) =>
    op.post("/api/v1/api-keys").pipe(
      withBody(op.payload("application/json", CreateApiKeyRequest))
    )
      .addSuccess(op.response(201, "application/json", CreatedApiKey), { status: 201 })
      .addError(Forbidden)))
  .add(endpoint("listApiKeys", (op) =>
    op.get("/api/v1/api-keys")
      .addSuccess(op.response(200, "application/json", ApiKeyList))))
  .add(endpoint("revokeApiKey", (op) =>
    op.del("/api/v1/api-keys/:key_id").pipe(withPath(op.path(Schema.Struct({ key_id: Schema.UUID }))))
      .addSuccess(op.empty(204))
      .addError(NotFound)))
  .middleware(Authentication)
  .annotate(OpenApi.Title, "api-keys")
{}
