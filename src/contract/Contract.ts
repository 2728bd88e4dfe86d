/**
 * Ties the server's Schemas to openapi.yaml at compile time.
 *
 * openapi-typescript turns openapi.yaml into `openapi.gen.ts` (`npm run gen`). Every endpoint of
 * the HttpApi is declared through `operation(...)`, and every request and response Schema through
 * `contractResponse` / `contractPayload` / `contractPath` / `contractQuery` / `contractBody`: each
 * demands that the Schema's Encoded type equal the generated type, so a drift on either side is a
 * tsc error. Each also annotates the Schema with what it was checked against, so the contract
 * test can prove that no endpoint skipped the check.
 */
import { HttpApiEndpoint, HttpApiSchema } from "@effect/platform"
import type { Schema } from "effect"
import type { components, operations, paths } from "./openapi.gen.ts"

export type OperationId = keyof operations

/** The annotation key under which a Schema records what it was checked against. */
export const ContractChecked: unique symbol = Symbol.for("basalt/ContractChecked")

// Readonly-ness and `| undefined` on optional keys are representation details of either side,
// not contract differences; everything else must match exactly.
type Normalize<T> = T extends string | number | boolean | bigint | null | undefined ? T
  : T extends ReadonlyArray<infer U> ? ReadonlyArray<Normalize<U>>
  : { readonly [K in keyof T]: Normalize<Exclude<T[K], undefined>> }

type Exact<A, B> = (<T>() => T extends Normalize<A> ? 1 : 2) extends (<T>() => T extends Normalize<B> ? 1 : 2)
  ? true
  : false

/** Intersected with an argument's type: `unknown` when A and B match, an unsatisfiable shape naming both otherwise. */
export type Matches<Actual, Expected, Where extends string> = Exact<Actual, Expected> extends true ? unknown
  : { readonly contractMismatch: Where; readonly schemaEncodes: Actual; readonly contractSays: Expected }

type Operation<Op extends OperationId> = operations[Op]
type Responses<Op extends OperationId> = Operation<Op>["responses"]
type ResponseContent<Op extends OperationId, Status extends keyof Responses<Op>> = Responses<Op>[Status] extends
  { readonly content: infer C } ? C
  : never

type RequestContent<Op extends OperationId> = Operation<Op> extends { readonly requestBody?: infer B } ?
  NonNullable<B> extends { readonly content: infer C } ? C : never
  : never

type Params<Op extends OperationId, In extends "path" | "query"> = Operation<Op>["parameters"] extends
  { readonly [K in In]?: infer P } ? NonNullable<P>
  : never

const annotate = <S extends Schema.Schema.Any>(schema: S, checkedAgainst: string): S =>
  schema.annotations({ [ContractChecked]: checkedAgainst }) as S

/** A named schema of `components.schemas`. */
export const contractBody = <Name extends keyof components["schemas"], S extends Schema.Schema.Any>(
  name: Name,
  schema: S & Matches<Schema.Schema.Encoded<S>, components["schemas"][Name], `components.schemas.${Name}`>
): S => annotate(schema, `components.schemas.${name}`)

/** The body of one response of one operation. */
export const contractResponse = <
  Op extends OperationId,
  Status extends keyof Responses<Op> & number,
  ContentType extends keyof ResponseContent<Op, Status> & string,
  S extends Schema.Schema.Any
>(
  op: Op,
  status: Status,
  contentType: ContentType,
  schema: S & Matches<Schema.Schema.Encoded<S>, ResponseContent<Op, Status>[ContentType], `${Op} ${Status}`>
): S => annotate(schema, `${op} ${status} ${contentType}`)

/** A response of one operation that has no body (204): the contract must declare none. */
export const contractEmpty = <Op extends OperationId, Status extends keyof Responses<Op> & number>(
  op: Op,
  status: Status & (Responses<Op>[Status] extends { readonly content?: never } ? unknown : { readonly contractMismatch: `${Op} ${Status} has a body in openapi.yaml` })
) => annotate(HttpApiSchema.Empty(status), `${op} ${status} (no body)`)

/** The request body of one operation. */
export const contractPayload = <
  Op extends OperationId,
  ContentType extends keyof RequestContent<Op> & string,
  S extends Schema.Schema.Any
>(
  op: Op,
  contentType: ContentType,
  schema: S & Matches<Schema.Schema.Encoded<S>, RequestContent<Op>[ContentType], `${Op} request body`>
): S => annotate(schema, `${op} body ${contentType}`)

/** The path parameters of one operation. */
export const contractPath = <Op extends OperationId, S extends Schema.Schema.Any>(
  op: Op,
  schema: S & Matches<Schema.Schema.Encoded<S>, Params<Op, "path">, `${Op} path parameters`>
): S => annotate(schema, `${op} path`)

// On the wire every query value is text: a Schema decodes `limit=20` from a string.
type QueryOnTheWire<T> = { readonly [K in keyof T]: T[K] extends number | boolean | undefined ? string : T[K] }

/** The query parameters of one operation (numbers and booleans arrive as strings). */
export const contractQuery = <Op extends OperationId, S extends Schema.Schema.Any>(
  op: Op,
  schema: S & Matches<Schema.Schema.Encoded<S>, QueryOnTheWire<Params<Op, "query">>, `${Op} query parameters`>
): S => annotate(schema, `${op} query`)

/** `/documents/:id` → `/documents/{id}`, as openapi.yaml writes paths. */
export type OpenApiPath<P extends string> = P extends `${infer A}:${infer Param}/${infer Rest}`
  ? `${A}{${Param}}/${OpenApiPath<Rest>}`
  : P extends `${infer A}:${infer Param}` ? `${A}{${Param}}`
  : P

type MethodOf<Op extends OperationId, P extends string> = OpenApiPath<P> extends keyof paths ? {
    [M in keyof paths[OpenApiPath<P>]]: Exact<paths[OpenApiPath<P>][M], operations[Op]> extends true ? M : never
  }[keyof paths[OpenApiPath<P>]]
  : never

type OperationAt<Op extends OperationId, M extends string, P extends string> = M extends MethodOf<Op, P> ? unknown
  : { readonly contractMismatch: `${Op} is not ${Uppercase<M>} ${OpenApiPath<P>} in openapi.yaml` }

/**
 * An HttpApi endpoint for one operation of openapi.yaml: its name is the operationId, and the
 * method and path must be the ones the contract gives that operation.
 */
export const operation = <Op extends OperationId & string>(op: Op) => ({
  get: <P extends HttpApiEndpoint.PathSegment>(path: P & OperationAt<Op, "get", P>) => HttpApiEndpoint.get(op, path),
  post: <P extends HttpApiEndpoint.PathSegment>(path: P & OperationAt<Op, "post", P>) => HttpApiEndpoint.post(op, path),
  put: <P extends HttpApiEndpoint.PathSegment>(path: P & OperationAt<Op, "put", P>) => HttpApiEndpoint.put(op, path),
  patch: <P extends HttpApiEndpoint.PathSegment>(path: P & OperationAt<Op, "patch", P>) =>
    HttpApiEndpoint.patch(op, path),
  del: <P extends HttpApiEndpoint.PathSegment>(path: P & OperationAt<Op, "delete", P>) => HttpApiEndpoint.del(op, path)
})
