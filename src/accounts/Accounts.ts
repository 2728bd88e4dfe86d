/** Accounts as the contract names them. */
import { Schema, SchemaTransformation } from "effect"
import { contractBody } from "../contract/Contract.ts"
import { DateTime, emailPattern, QueryInt } from "../contract/Formats.ts"
import { Uuid } from "../contract/Uuid.ts"
import { isMaxCharacters, Text, TrimmedText } from "../contract/Text.ts"

export const Role = contractBody("Role", Schema.Literals(["admin", "curator", "basic"]))
export type Role = typeof Role.Type

const PositiveInt = Schema.Int.check(Schema.isGreaterThan(0))

/**
 * Exactly what the contract's `format: email` accepts (a registration form must not refuse an
 * address its client validated, nor the server store one the contract would not return), and
 * lower-cased on the way in, so that one person has one account.
 */
export const Email = contractBody(
  "Email",
  Schema.String.check(
    isMaxCharacters(254),
    Schema.isPattern(emailPattern, { message: "Expected an email address, such as ada@example.com" })
  ).pipe(Schema.decodeTo(Schema.String, SchemaTransformation.toLowerCase()))
)

export const User = contractBody(
  "User",
  Schema.Struct({
    id: Uuid,
    email: Schema.String,
    display_name: Schema.String,
    role: Role,
    active: Schema.Boolean,
    created_at: Schema.DateFromString
  })
)
export type User = typeof User.Type

const Password = Text({ minLength: 8, maxLength: 128 })
const DisplayName = TrimmedText({ minLength: 1, maxLength: 100 })

export const RegisterRequest = contractBody(
  "RegisterRequest",
  Schema.Struct({
    email: Email,
    password: Password,
    display_name: DisplayName
  })
)

export const CreateUserRequest = contractBody(
  "CreateUserRequest",
  Schema.Struct({ email: Email, password: Password, display_name: DisplayName, role: Role })
)

export const ChangePasswordRequest = contractBody(
  "ChangePasswordRequest",
  Schema.Struct({ current_password: Text({ maxLength: 128 }), new_password: Password })
)

export const LoginRequest = contractBody(
  "LoginRequest",
  Schema.Struct({
    email: Text({ maxLength: 254 }),
    password: Text({ maxLength: 128 }),
    session_cookie: Schema.optionalKey(Schema.Boolean)
  })
)

export const RefreshRequest = contractBody("RefreshRequest", Schema.Struct({ refresh_token: Text({ maxLength: 256 }) }))

export const TokenPair = contractBody(
  "TokenPair",
  Schema.Struct({
    kind: Schema.Literal("token_pair"),
    access_token: Schema.String,
    token_type: Schema.Literal("Bearer"),
    expires_in: PositiveInt,
    refresh_token: Schema.String,
    user: User
  })
)
export type TokenPair = typeof TokenPair.Type

/** A login that asked for the session cookie: no token reaches the page's scripts. */
export const BrowserSession = contractBody(
  "BrowserSession",
  Schema.Struct({
    kind: Schema.Literal("browser_session"),
    csrf_token: Schema.String,
    expires_at: Schema.DateFromString,
    user: User
  })
)

export const UserPage = contractBody("UserPage", Schema.Struct({ items: Schema.Array(User), next_cursor: Schema.NullOr(Schema.String) }))

export const UpdateCurrentUserRequest = contractBody("UpdateCurrentUserRequest", Schema.Struct({ display_name: DisplayName }))

export const UpdateUserRequest = contractBody(
  "UpdateUserRequest",
  Schema.Struct({ role: Schema.optionalKey(Role), active: Schema.optionalKey(Schema.Boolean) }).pipe(
    Schema.check(
      Schema.makeFilter((change) => change.role !== undefined || change.active !== undefined, {
        message: "Give a role, active, or both"
      })
    )
  )
)

export const UserListQuery = Schema.Struct({
  email: Schema.optional(Text({ maxLength: 254 })),
  limit: Schema.optional(QueryInt.check(Schema.isBetween({ minimum: 1, maximum: 100 }))),
  cursor: Schema.optional(Text({ maxLength: 200 }))
})

/** Roles from least to most: a key may not be given more than its creator has. */
export const roleRank: Record<Role, number> = { basic: 0, curator: 1, admin: 2 }

export const ApiKey = contractBody(
  "ApiKey",
  Schema.Struct({
    id: Uuid,
    name: Schema.String,
    prefix: Schema.String,
    role: Role,
    expires_at: Schema.NullOr(Schema.DateFromString),
    last_used_at: Schema.NullOr(Schema.DateFromString),
    created_at: Schema.DateFromString
  })
)
export type ApiKey = typeof ApiKey.Type

export const CreatedApiKey = contractBody("CreatedApiKey", Schema.Struct({ key: ApiKey, secret: Schema.String }))

export const ApiKeyList = contractBody("ApiKeyList", Schema.Struct({ items: Schema.Array(ApiKey) }))

export const CreateApiKeyRequest = contractBody(
  "CreateApiKeyRequest",
  Schema.Struct({
    name: TrimmedText({ minLength: 1, maxLength: 100 }),
    role: Schema.optionalKey(Role),
    expires_at: Schema.optionalKey(DateTime)
  })
)

// Fields OAuth2 tools send that Basalt has no use for; any other unknown field is ignored too.
const ignoredGrantFields = {
  scope: Schema.optional(Schema.String),
  client_id: Schema.optional(Schema.String),
  client_secret: Schema.optional(Schema.String)
}

export const PasswordGrantRequest = contractBody(
  "PasswordGrantRequest",
  Schema.Struct({
    grant_type: Schema.Literal("password"),
    username: Text({ maxLength: 254 }),
    password: Text({ maxLength: 128 }),
    ...ignoredGrantFields
  })
)

export const RefreshTokenGrantRequest = contractBody(
  "RefreshTokenGrantRequest",
  Schema.Struct({
    grant_type: Schema.Literal("refresh_token"),
    refresh_token: Text({ maxLength: 256 }),
    ...ignoredGrantFields
  })
)

/** The grants supported; another `grant_type` is refused before decoding (TokenGrantType). */
export const supportedGrantTypes: ReadonlyArray<string> = ["password", "refresh_token"]

export const TokenRequest = contractBody("TokenRequest", Schema.Union([PasswordGrantRequest, RefreshTokenGrantRequest]))

export const OAuthToken = contractBody(
  "OAuthToken",
  Schema.Struct({
    access_token: Schema.String,
    token_type: Schema.Literal("Bearer"),
    expires_in: PositiveInt,
    refresh_token: Schema.String
  })
)
