/**
 * Endpoints that take path or query parameters: the Schema, and the 422 that a value breaking it
 * answers (a malformed id, an unknown filter), declared once here instead of by every endpoint.
 */
import type { HttpApiEndpoint } from "@effect/platform"
import type { HttpMethod } from "@effect/platform/HttpMethod"
import type { Schema } from "effect"
import { ValidationFailed } from "./ApiError.ts"

export const withPath = <S extends Schema.Schema.Any>(schema: S & HttpApiEndpoint.HttpApiEndpoint.ValidatePath<S>) =>
<Name extends string, Method extends HttpMethod, Path, UrlParams, Payload, Headers, Success, Error, R, RE>(
  endpoint: HttpApiEndpoint.HttpApiEndpoint<Name, Method, Path, UrlParams, Payload, Headers, Success, Error, R, RE>
) => endpoint.setPath(schema).addError(ValidationFailed)

export const withQuery = <S extends Schema.Schema.Any>(schema: S & HttpApiEndpoint.HttpApiEndpoint.ValidateUrlParams<S>) =>
<Name extends string, Method extends HttpMethod, Path, UrlParams, Payload, Headers, Success, Error, R, RE>(
  endpoint: HttpApiEndpoint.HttpApiEndpoint<Name, Method, Path, UrlParams, Payload, Headers, Success, Error, R, RE>
) => endpoint.setUrlParams(schema).addError(ValidationFailed)
