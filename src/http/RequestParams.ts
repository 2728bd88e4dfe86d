/**
 * Endpoints that take path or query parameters. The parameter Schemas are the endpoint's own
 * (`params`, `query`); these demand that the endpoint declare the 422 a value breaking them
 * answers (a malformed id, an unknown filter), and say how strictly a query is decoded.
 */
import type { Schema } from "effect"
import { HttpApi, type HttpApiEndpoint } from "effect/http-api"
import type { HttpMethod } from "effect/http/HttpMethod"
import type { ValidationFailed } from "./ApiError.ts"

/** The error Schemas an endpoint declares (the framework wraps them in one JSON codec). */
type DeclaredErrors<Error> = Error extends Schema.toCodecJson<infer S> ? S : Error

/** `unknown` when the endpoint declares ValidationFailed, an unsatisfiable shape naming what is missing otherwise. */
export type DeclaresValidationFailed<Name extends string, Error> =
  typeof ValidationFailed extends DeclaredErrors<Error>
    ? unknown
    : { readonly missingError: `${Name} takes input, so it must declare ValidationFailed (422)` }

type Takes<Name extends string, Input, What extends string> = [Input] extends [never]
  ? { readonly missingInput: `${Name} declares no ${What}` }
  : unknown

export const withPath = <
  Name extends string,
  Method extends HttpMethod,
  Path extends string,
  Params extends Schema.Top,
  Query extends Schema.Top,
  Payload extends Schema.Top,
  Headers extends Schema.Top,
  Success extends Schema.Top,
  Error extends Schema.Top,
  M,
  MR
>(
  endpoint: HttpApiEndpoint.HttpApiEndpoint<Name, Method, Path, Params, Query, Payload, Headers, Success, Error, M, MR> &
    Takes<Name, Params, "path parameters"> &
    DeclaresValidationFailed<Name, Error>
) => endpoint

/**
 * A filtering query refuses unknown parameters, reporting every problem at once: a misspelt
 * filter must not silently widen a list. Other queries (an identity provider's redirect carries
 * parameters of its own) ignore them.
 */
export const withQuery =
  (options: { readonly unknownParams: "refuse" | "ignore" } = { unknownParams: "refuse" }) =>
  <
    Name extends string,
    Method extends HttpMethod,
    Path extends string,
    Params extends Schema.Top,
    Query extends Schema.Top,
    Payload extends Schema.Top,
    Headers extends Schema.Top,
    Success extends Schema.Top,
    Error extends Schema.Top,
    M,
    MR
  >(
    endpoint: HttpApiEndpoint.HttpApiEndpoint<Name, Method, Path, Params, Query, Payload, Headers, Success, Error, M, MR> &
      Takes<Name, Query, "query parameters"> &
      DeclaresValidationFailed<Name, Error>
  ) =>
    endpoint.annotate(HttpApi.QueryParseOptions, options.unknownParams === "refuse" ? { errors: "all", onExcessProperty: "error" } : {})
