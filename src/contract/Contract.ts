/**
 * Ties the server's Schemas to openapi.yaml at compile time.
 *
 * openapi-typescript turns openapi.yaml into `openapi.gen.ts` (`npm run gen`). Every endpoint of
 * the HttpApi is declared through `endpoint(operationId, (op) => …)`, which demands that the
 * endpoint built have the operation's name, method and path, and every request and response
 * Schema goes through the operation's `op.path` / `op.query` / `op.payload` / `op.response` /
 * `op.empty`, or `contractBody` for a named schema: each demands that the Schema's Encoded type
 * equal the generated type, so a drift on either side is a tsc error. Each also annotates the
 * Schema with what it was checked against, so the contract test can prove that no endpoint
 * skipped the check.
 */
import { HttpApiSchema } from "effect/http-api"
import type { Schema } from "effect"
import { refusingUnstorableText } from "../http/StorableText.ts"
import type { components, operations, paths } from "./openapi.gen.ts"

export type OperationId = keyof operations

/** The annotation key under which a Schema records what it was checked against. */
export const ContractChecked = "basalt/contractChecked"

declare module "effect/Schema" {
  namespace Annotations {
    interface Annotations {
      readonly "basalt/contractChecked"?: string | undefined
    }
  }
}

// Readonly-ness and `| undefined` on optional keys are representation details of either side,
// not contract differences; everything else must match exactly.
type Normalize<T> = T extends string | number | boolean | bigint | null | undefined
  ? T
  : T extends ReadonlyArray<infer U>
    ? ReadonlyArray<Normalize<U>>
    : { readonly [K in keyof T]: Normalize<Exclude<T[K], undefined>> }

type Exact<A, B> = (<T>() => T extends Normalize<A> ? 1 : 2) extends <T>() => T extends Normalize<B> ? 1 : 2 ? true : false

/** Intersected with an argument's type: `unknown` when A and B match, an unsatisfiable shape naming both otherwise. */
export type Matches<Actual, Expected, Where extends string> =
  Exact<Actual, Expected> extends true
    ? unknown
    : { readonly contractMismatch: Where; readonly schemaEncodes: Actual; readonly contractSays: Expected }

type Operation<Op extends OperationId> = operations[Op]
type Responses<Op extends OperationId> = Operation<Op>["responses"]
type ResponseContent<Op extends OperationId, Status extends keyof Responses<Op>> = Responses<Op>[Status] extends {
  readonly content: infer C
}
  ? C
  : never

type RequestContent<Op extends OperationId> =
  Operation<Op> extends { readonly requestBody?: infer B } ? (NonNullable<B> extends { readonly content: infer C } ? C : never) : never

type Params<Op extends OperationId, In extends "path" | "query"> = Operation<Op>["parameters"] extends { readonly [K in In]?: infer P }
  ? NonNullable<P>
  : never

const annotate = <S extends Schema.Top>(schema: S, checkedAgainst: string): S["Rebuild"] =>
  schema.annotate({ [ContractChecked]: checkedAgainst })

/** A named schema of `components.schemas`. */
export const contractBody = <Name extends keyof components["schemas"], S extends Schema.Top>(
  name: Name,
  schema: S & Matches<S["Encoded"], components["schemas"][Name], `components.schemas.${Name}`>
): S["Rebuild"] => annotate(schema, `components.schemas.${name}`)

// On the wire every parameter is text. The endpoint's string codec writes a number or boolean as
// text, so a Schema may encode either to the contract's own type (`limit: Schema.Int`) or to the
// text itself (`limit: Schema.NumberFromString`); anything else is a mismatch.
type OnTheWire<T> = { readonly [K in keyof T]: T[K] extends number | boolean | undefined ? string : T[K] }

type MatchesParameters<Actual, Expected, Where extends string> =
  Exact<Actual, Expected> extends true ? unknown : Matches<Actual, OnTheWire<Expected>, Where>

/** `/documents/:id` → `/documents/{id}`, as openapi.yaml writes paths. */
export type OpenApiPath<P extends string> = P extends `${infer A}:${infer Param}/${infer Rest}`
  ? `${A}{${Param}}/${OpenApiPath<Rest>}`
  : P extends `${infer A}:${infer Param}`
    ? `${A}{${Param}}`
    : P

type MethodOf<Op extends OperationId, P extends string> =
  OpenApiPath<P> extends keyof paths
    ? {
        [M in keyof paths[OpenApiPath<P>]]: Exact<paths[OpenApiPath<P>][M], operations[Op]> extends true ? M : never
      }[keyof paths[OpenApiPath<P>]]
    : never

/** `unknown` when the endpoint is the operation `Op` of openapi.yaml: its name, method and path. */
export type OperationAt<Op extends OperationId, Name extends string, Method extends string, P extends string> = Name extends Op
  ? Lowercase<Method> extends MethodOf<Op, P>
    ? unknown
    : { readonly contractMismatch: `${Op} is not ${Uppercase<Method>} ${OpenApiPath<P>} in openapi.yaml` }
  : { readonly contractMismatch: `the endpoint of ${Op} is named ${Name}` }

// The contract's media type decides how a body is read; multipart is left to the Schema
// (`HttpApiSchema.asMultipartStream()` or `asMultipart()`), which also decides the handler's type,
// and its handler decodes the fields (`decodeInput`). Every other input refuses text Postgres
// cannot store (src/http/StorableText.ts).
const withPayloadEncoding = <S extends Schema.Top>(schema: S, contentType: string): S["Rebuild"] =>
  contentType === "multipart/form-data"
    ? schema
    : contentType === "application/x-www-form-urlencoded"
      ? HttpApiSchema.asFormUrlEncoded({ contentType })(refusingUnstorableText(schema))
      : HttpApiSchema.asJson({ contentType })(refusingUnstorableText(schema))

/**
 * The checks of one operation of openapi.yaml: its parameters, request body and responses, each
 * bound to it. `name` is the operationId, the name its endpoint must have.
 */
export const operation = <Op extends OperationId & string>(op: Op) => ({
  name: op,
  path: <S extends Schema.Top>(schema: S & MatchesParameters<S["Encoded"], Params<Op, "path">, `${Op} path parameters`>): S["Rebuild"] =>
    annotate(refusingUnstorableText(schema), `${op} path`),
  query: <S extends Schema.Top>(schema: S & MatchesParameters<S["Encoded"], Params<Op, "query">, `${Op} query parameters`>): S["Rebuild"] =>
    annotate(refusingUnstorableText(schema), `${op} query`),
  /** The request body, read as `contentType` says. */
  payload: <ContentType extends keyof RequestContent<Op> & string, S extends Schema.Top>(
    contentType: ContentType,
    schema: S & Matches<S["Encoded"], RequestContent<Op>[ContentType], `${Op} request body`>
  ): S["Rebuild"] => withPayloadEncoding(annotate(schema, `${op} body ${contentType}`), contentType),
  /** A JSON response, answered with `status`. */
  response: <
    Status extends keyof Responses<Op> & number,
    ContentType extends keyof ResponseContent<Op, Status> & `${string}json`,
    S extends Schema.Top
  >(
    status: Status,
    contentType: ContentType,
    schema: S & Matches<S["Encoded"], ResponseContent<Op, Status>[ContentType], `${Op} ${Status}`>
  ): S["Rebuild"] =>
    annotate(schema, `${op} ${status} ${contentType}`).pipe(HttpApiSchema.asJson({ contentType }), HttpApiSchema.status(status)),
  /** A text response (HTML, YAML, an event stream…), answered with `status`. */
  text: <
    Status extends keyof Responses<Op> & number,
    ContentType extends keyof ResponseContent<Op, Status> & string,
    S extends Schema.Top & { readonly Encoded: string }
  >(
    status: Status,
    contentType: ContentType,
    schema: S & Matches<S["Encoded"], ResponseContent<Op, Status>[ContentType], `${Op} ${Status}`>
  ): S["Rebuild"] =>
    annotate(schema.pipe(HttpApiSchema.asText({ contentType }), HttpApiSchema.status(status)), `${op} ${status} ${contentType}`),
  /** A response without a body, answered with `status`. */
  empty: <Status extends keyof Responses<Op> & number>(
    status: Status &
      (Responses<Op>[Status] extends { readonly content?: never }
        ? unknown
        : { readonly contractMismatch: `${Op} ${Status} has a body in openapi.yaml` })
  ): Schema.Void => annotate(HttpApiSchema.Empty(status), `${op} ${status} (no body)`)
})

export type ContractOperation<Op extends OperationId & string> = ReturnType<typeof operation<Op>>

/**
 * An HttpApi endpoint for one operation of openapi.yaml, built by `build` from the operation's
 * checks; the endpoint must carry the operation's name, method and path:
 * `endpoint("getDocument", (op) => HttpApiEndpoint.get(op.name, "/api/v1/documents/:document_id", { … }))`.
 */
export const endpoint = <
  Op extends OperationId & string,
  E extends { readonly identifier: string; readonly method: string; readonly path: string }
>(
  op: Op,
  build: (operation: ContractOperation<Op>) => E & OperationAt<Op, E["identifier"], E["method"], E["path"]>
): E => build(operation(op))
