/**
 * Endpoints that take path or query parameters. The parameter Schemas are the endpoint's own
 * (`params`, `query`); these demand that the endpoint declare the 422 a value breaking them
 * answers (a malformed id, an unknown filter), and say how strictly a query is decoded.
 *
 * One rule for every operation: a query parameter the operation does not declare is refused (422
 * naming it), by `QueryParameters`, which the API declares once for all its endpoints. A misspelt
 * filter must not silently widen a list, nor a parameter be taken that the contract never promised.
 */
import { Context, Effect, Layer, type Schema, SchemaAST } from "effect"
import { HttpServerRequest } from "effect/http"
import { HttpApi, type HttpApiEndpoint, HttpApiMiddleware, OpenApi } from "effect/http-api"
import type { HttpMethod } from "effect/http/HttpMethod"
import { ValidationFailed } from "./ApiError.ts"
import { escapesNotUtf8, inputParseOptions } from "./IssueDetails.ts"
import { fieldEscapedNotUtf8 } from "./StorableText.ts"

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
) => endpoint.annotate(HttpApi.ParamsParseOptions, inputParseOptions)

/**
 * Whether an endpoint refuses query parameters it does not declare. Only a protocol that demands
 * otherwise may ignore them: an OAuth 2.0 client must ignore unrecognised parameters of the
 * authorization response (RFC 6749, 4.1.2), which identity providers add (`iss`, `session_state`).
 */
export const UnknownQueryParameters = Context.Reference<"refuse" | "ignore">("basalt/UnknownQueryParameters", {
  defaultValue: () => "refuse"
})

/** The OpenAPI extension by which openapi.yaml marks an operation that ignores unknown query parameters. */
export const ignoresUnknownQueryParameters = "x-unknown-query-parameters"

/**
 * An endpoint that takes a query: every problem is reported at once. `unknownParams: "ignore"`
 * is for the exception above only; it is written into the derived OpenAPI document, so the
 * contract test holds openapi.yaml to it.
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
  ) => {
    const decoded = endpoint.annotate(HttpApi.QueryParseOptions, { ...inputParseOptions, onExcessProperty: "ignore" })
    return options.unknownParams === "refuse"
      ? decoded
      : decoded.annotate(UnknownQueryParameters, "ignore").annotate(OpenApi.Override, { [ignoresUnknownQueryParameters]: "ignore" })
  }

/** The query parameter names an endpoint declares; `undefined` when its Schema takes any name. */
const declaredNames = (endpoint: HttpApiEndpoint.Top): ReadonlyArray<string> | undefined => {
  if (endpoint.query === undefined) return []
  const ast = SchemaAST.toEncoded(endpoint.query.ast)
  if (!SchemaAST.isObjects(ast) || ast.indexSignatures.length > 0) return undefined
  return ast.propertySignatures.map((property) => String(property.name))
}

// A name is quoted up to this length, and this many unknown names are listed (the rest counted).
const maxQuotedName = 64
const maxListed = 10

const quoted = (name: string) => (name.length > maxQuotedName ? `${name.slice(0, maxQuotedName)}…` : name)

const unknownParameters = (unknown: ReadonlyArray<string>, declared: ReadonlyArray<string>) => {
  const listed = unknown.slice(0, maxListed)
  const more = unknown.length - listed.length
  const takes = declared.length === 0 ? "this operation takes no query parameters" : `this operation takes ${declared.join(", ")}`
  return new ValidationFailed({
    message: `Unknown query parameter${unknown.length === 1 ? "" : "s"} ${listed.map(quoted).join(", ")}${more > 0 ? ` and ${more} more` : ""}; ${takes}`,
    details: listed.map((name) => ({ path: quoted(name), message: `Unknown query parameter; ${takes}` }))
  })
}

/**
 * Refuses query parameters an endpoint does not declare. Declared once on the API, so it holds for
 * every operation (and its 422 is in every operation's derived contract). It runs before
 * authentication: like an unknown path (404) or method (405), an unknown name is the request's
 * shape, the same for every caller; the values are the endpoint's Schemas' to decode.
 */
export class QueryParameters extends HttpApiMiddleware.Service<QueryParameters>()("basalt/QueryParameters", {
  error: ValidationFailed
}) {}

export const queryParametersLayer = Layer.succeed(QueryParameters, (httpEffect, { endpoint }) => {
  if (Context.get(endpoint.annotations, UnknownQueryParameters) === "ignore") return httpEffect
  const declared = declaredNames(endpoint)
  if (declared === undefined) return httpEffect
  return Effect.gen(function* () {
    // Before the parsed names: parsing has already turned escapes that are not UTF-8 into U+FFFD.
    const { url } = yield* HttpServerRequest.HttpServerRequest
    const notUtf8 = url.includes("?") ? fieldEscapedNotUtf8(url.slice(url.indexOf("?") + 1)) : undefined
    if (notUtf8 !== undefined) return yield* escapesNotUtf8("The query", notUtf8)
    const unknown = Object.keys(yield* HttpServerRequest.ParsedSearchParams).filter((name) => !declared.includes(name))
    if (unknown.length > 0) return yield* unknownParameters(unknown, declared)
    return yield* httpEffect
  })
})
