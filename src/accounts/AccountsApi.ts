import { HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { AuditPage, AuditQuery } from "../audit/Audit.ts"
import {
  contractEmpty,
  contractPath,
  contractPayload,
  contractQuery,
  contractResponse,
  operation
} from "../contract/Contract.ts"
import {
  Conflict,
  Forbidden,
  InvalidGrant,
  NotFound,
  Unauthorized,
  UnsupportedGrantType,
  ValidationFailed
} from "../http/ApiError.ts"
import { withBody } from "../http/RequestBody.ts"
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
  .add(
    operation("register").post("/api/v1/auth/register").pipe(
      withBody(contractPayload("register", "application/json", RegisterRequest))
    )
      .middleware(AuthRateLimit)
      .addSuccess(contractResponse("register", 201, "application/json", User), { status: 201 })
      .addError(Forbidden)
      .addError(Conflict)
  )
  .add(
    operation("login").post("/api/v1/auth/login").pipe(withBody(contractPayload("login", "application/json", LoginRequest)))
      .middleware(AuthRateLimit)
      .addSuccess(contractResponse("login", 200, "application/json", Schema.Union(TokenPair, BrowserSession)))
      .addError(Unauthorized)
  )
  .add(
    operation("issueToken").post("/api/v1/auth/token").pipe(
      withBody(
        contractPayload(
          "issueToken",
          "application/x-www-form-urlencoded",
          TokenRequest.pipe(HttpApiSchema.withEncoding({ kind: "UrlParams" }))
        ),
        { unknownFields: "ignore" }
      )
    )
      .middleware(AuthRateLimit)
      .addSuccess(contractResponse("issueToken", 200, "application/json", OAuthToken))
      .addError(InvalidGrant)
      .addError(UnsupportedGrantType)
  )
  .add(
    operation("refreshSession").post("/api/v1/auth/refresh").pipe(
      withBody(contractPayload("refreshSession", "application/json", RefreshRequest))
    )
      .middleware(AuthRateLimit)
      .addSuccess(contractResponse("refreshSession", 200, "application/json", TokenPair))
      .addError(Unauthorized)
  )
  .add(
    operation("logout").post("/api/v1/auth/logout")
      .addSuccess(contractEmpty("logout", 204))
      .middleware(Authentication)
  )
  .annotate(OpenApi.Title, "auth")
{}

export class UsersApi extends HttpApiGroup.make("users")
  .add(
    operation("getCurrentUser").get("/api/v1/users/me")
      .addSuccess(contractResponse("getCurrentUser", 200, "application/json", User))
  )
  .add(
    operation("updateCurrentUser").patch("/api/v1/users/me").pipe(
      withBody(contractPayload("updateCurrentUser", "application/json", UpdateCurrentUserRequest))
    )
      .addSuccess(contractResponse("updateCurrentUser", 200, "application/json", User))
  )
  .add(
    operation("changePassword").post("/api/v1/users/me/password").pipe(
      withBody(contractPayload("changePassword", "application/json", ChangePasswordRequest))
    )
      .addSuccess(contractEmpty("changePassword", 204))
      .addError(Forbidden)
  )
  .middleware(Authentication)
  .annotate(OpenApi.Title, "users")
{}

export class AdminApi extends HttpApiGroup.make("admin")
  .add(
    operation("listUsers").get("/api/v1/admin/users")
      .setUrlParams(contractQuery("listUsers", UserListQuery))
      .addSuccess(contractResponse("listUsers", 200, "application/json", UserPage))
      .addError(ValidationFailed)
  )
  .add(
    operation("listAuditEvents").get("/api/v1/admin/audit")
      .setUrlParams(contractQuery("listAuditEvents", AuditQuery))
      .addSuccess(contractResponse("listAuditEvents", 200, "application/json", AuditPage))
      .addError(ValidationFailed)
  )
  .add(
    operation("createUser").post("/api/v1/admin/users").pipe(
      withBody(contractPayload("createUser", "application/json", CreateUserRequest))
    )
      .addSuccess(contractResponse("createUser", 201, "application/json", User), { status: 201 })
      .addError(Conflict)
  )
  .add(
    operation("updateUser").patch("/api/v1/admin/users/:user_id")
      .setPath(contractPath("updateUser", Schema.Struct({ user_id: Schema.UUID })))
      .pipe(withBody(contractPayload("updateUser", "application/json", UpdateUserRequest)))
      .addSuccess(contractResponse("updateUser", 200, "application/json", User))
      .addError(NotFound)
      .addError(Conflict)
  )
  .middleware(AdminAuthentication)
  .annotate(OpenApi.Title, "admin")
{}

export class ApiKeysApi extends HttpApiGroup.make("api-keys")
  .add(
    operation("createApiKey").post("/api/v1/api-keys").pipe(
      withBody(contractPayload("createApiKey", "application/json", CreateApiKeyRequest))
    )
      .addSuccess(contractResponse("createApiKey", 201, "application/json", CreatedApiKey), { status: 201 })
      .addError(Forbidden)
      .addError(ValidationFailed)
  )
  .add(
    operation("listApiKeys").get("/api/v1/api-keys")
      .addSuccess(contractResponse("listApiKeys", 200, "application/json", ApiKeyList))
  )
  .add(
    operation("revokeApiKey").del("/api/v1/api-keys/:key_id")
      .setPath(contractPath("revokeApiKey", Schema.Struct({ key_id: Schema.UUID })))
      .addSuccess(contractEmpty("revokeApiKey", 204))
      .addError(NotFound)
      .addError(ValidationFailed)
  )
  .middleware(Authentication)
  .annotate(OpenApi.Title, "api-keys")
{}
