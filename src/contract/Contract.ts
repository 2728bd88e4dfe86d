/**
 * Ties the server's Schemas to openapi.yaml at compile time.
 *
 * openapi-typescript turns openapi.yaml into `openapi.gen.ts` (`npm run gen`). Every endpoint of
 * the HttpApi is declared through `endpoint(operationId, (op) => …)`, and every request and
 * response Schema through the operation's `op.path` / `op.query` / `op.payload` / `op.response` /
 * `op.empty`, or `contractBody` for a named schema: each demands that the Schema's Encoded type
 * equal the generated type, so a drift on either side is a tsc error. Each also annotates the Schema with what it was checked against, so the contract
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

// On the wire every query value is text: a Schema decodes `limit=20` from a string.
type QueryOnTheWire<T> = { readonly [K in keyof T]: T[K] extends number | boolean | undefined ? string : T[K] }

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
 * One operation of openapi.yaml, named once: its endpoint (the method and path must be the ones
 * the contract gives that operation, and its name is the operationId), and the checks of its
 * parameters, request body and responses, bound to it.
 */
export const operation = <Op extends OperationId & string>(op: Op) => ({
  get: <P extends HttpApiEndpoint.PathSegment>(path: P & OperationAt<Op, "get", P>) => HttpApiEndpoint.get(op, path),
  post: <P extends HttpApiEndpoint.PathSegment>(path: P & OperationAt<Op, "post", P>) => HttpApiEndpoint.post(op, path),
  put: <P extends HttpApiEndpoint.PathSegment>(path: P & OperationAt<Op, "put", P>) => HttpApiEndpoint.put(op, path),
  patch: <P extends HttpApiEndpoint.PathSegment>(path: P & OperationAt<Op, "patch", P>) =>
    HttpApiEndpoint.patch(op, path),
  del: <P extends HttpApiEndpoint.PathSegment>(path: P & OperationAt<Op, "delete", P>) => HttpApiEndpoint.del(op, path),
  path: <S extends Schema.Schema.Any>(
    schema: S & Matches<Schema.Schema.Encoded<S>, Params<Op, "path">, `${Op} path parameters`>
  ): S => annotate(schema, `${op} path`),
  query: <S extends Schema.Schema.Any>(
    schema: S & Matches<Schema.Schema.Encoded<S>, QueryOnTheWire<Params<Op, "query">>, `${Op} query parameters`>
  ): S => annotate(schema, `${op} query`),
  payload: <ContentType extends keyof RequestContent<Op> & string, S extends Schema.Schema.Any>(
    contentType: ContentType,
    schema: S & Matches<Schema.Schema.Encoded<S>, RequestContent<Op>[ContentType], `${Op} request body`>
  ): S => annotate(schema, `${op} body ${contentType}`),
  response: <
    Status extends keyof Responses<Op> & number,
    ContentType extends keyof ResponseContent<Op, Status> & string,
    S extends Schema.Schema.Any
  >(
    status: Status,
    contentType: ContentType,
    schema: S & Matches<Schema.Schema.Encoded<S>, ResponseContent<Op, Status>[ContentType], `${Op} ${Status}`>
  ): S => annotate(schema, `${op} ${status} ${contentType}`),
  empty: <Status extends keyof Responses<Op> & number>(
    status: Status &
      (Responses<Op>[Status] extends { readonly content?: never } ? unknown
        : { readonly contractMismatch: `${Op} ${Status} has a body in openapi.yaml` })
  ) => annotate(HttpApiSchema.Empty(status), `${op} ${status} (no body)`)
})

export type ContractOperation<Op extends OperationId & string> = ReturnType<typeof operation<Op>>

/**
 * An HttpApi endpoint for one operation of openapi.yaml, built by `build` from the operation:
 * `endpoint("getDocument", (op) => op.get("/api/v1/documents/:document_id").addSuccess(op.response(200, …)))`.
 */
export const endpoint = <Op extends OperationId & string, E>(op: Op, build: (operation: ContractOperation<Op>) => E): E =>
  build(operation(op))
