/**
 * The API's routes as templates, to tell an unknown path (404) from a known path asked with the
 * wrong method (405 and Allow), and to name the route in metrics. Matched by the platform's own
 * router (FindMyWay, configured as the server's router is, `exactRouting`), so the table and the
 * router agree on what a path is.
 *
 * Matching is exact: a path is served only as its template spells it, case-sensitive, without a
 * trailing slash, an empty segment or a `;` parameter. FindMyWay's defaults would serve
 * `/API/V1/DOCUMENTS`, `/health/` and `/api/v1//documents` as their canonical routes, and it always
 * ends a path at `;` (`/health;x` is `/health`): two spellings of one resource that caches, proxies'
 * rules and audit logs would tell apart.
 *
 * A path is the most specific template it matches, whatever the method (a literal segment before a
 * parameter): `/documents/batch` is the batch route, so DELETE on it is 405, not the DELETE of
 * `/documents/{id}` with `batch` for an id.
 */
import * as FindMyWay from "effect/http/FindMyWay"
import { HttpApi, type HttpApiGroup } from "effect/http-api"

/** The path of a request target (`/a/b?x=1` → `/a/b`): Node gives the target as sent. */
export const pathOf = (url: string): string => {
  const query = url.indexOf("?")
  return query === -1 ? url : url.slice(0, query)
}

/** The router's configuration, for the server's router and this table alike. */
export const exactRouting = { ignoreTrailingSlash: false, ignoreDuplicateSlashes: false, caseSensitive: true } as const

/** Spellings FindMyWay would still normalise under `exactRouting`: empty segments, `;` and `#`. */
const isCanonical = (path: string): boolean => path === "/" || (!/\/\/|[;#]/.test(path) && !path.endsWith("/"))

const methodOrder = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

/** A route served beside the contract's, to other Basalt processes only (it is not in openapi.yaml). */
export interface InternalRoute {
  readonly method: string
  readonly path: string
}

export interface RouteTable {
  /** The route template that serves the request target `url` with `method`, if any. */
  readonly match: (method: string, url: string) => string | undefined
  /** The methods the path of `url` answers; empty when no route has that path. */
  readonly allowedMethods: (url: string) => ReadonlyArray<string>
  /**
   * Whether `method` and `url` name an internal route. To anyone else it does not exist: its
   * handler answers 404 unless the caller proves to be a Basalt process, and no Allow reveals it.
   */
  readonly isInternal: (method: string, url: string) => boolean
}

export const RouteTable = {
  fromApi: <Id extends string, Groups extends HttpApiGroup.Constraint>(
    api: HttpApi.HttpApi<Id, Groups>,
    internal: ReadonlyArray<InternalRoute> = []
  ): RouteTable => {
    // Every template once, under one method, so that the router's precedence alone picks it.
    const templates = FindMyWay.make<string>(exactRouting)
    const methodsOf = new Map<string, Array<string>>()
    HttpApi.reflect(api, {
      onGroup() {},
      onEndpoint({ endpoint }) {
        const methods = methodsOf.get(endpoint.path)
        if (methods !== undefined) methods.push(endpoint.method)
        else {
          methodsOf.set(endpoint.path, [endpoint.method])
          templates.on("GET", endpoint.path as FindMyWay.PathInput, endpoint.path)
        }
      }
    })
    // Computed once: both are asked on every request.
    const allowedOf = new Map<string, ReadonlyArray<string>>()
    for (const [template, served] of methodsOf) {
      const allowed = methodOrder.filter((method) => served.includes(method))
      // HEAD is answered wherever GET is (the router serves it).
      allowedOf.set(template, allowed.includes("GET") ? [...allowed, "HEAD"] : allowed)
    }
    const templateOf = (url: string) => (isCanonical(pathOf(url)) ? templates.find("GET", url)?.handler : undefined)
    const isInternal = (method: string, url: string) => internal.some((route) => route.method === method && route.path === pathOf(url))
    return {
      match: (method, url) => {
        if (isInternal(method, url)) return pathOf(url)
        const template = templateOf(url)
        return template !== undefined && allowedOf.get(template)?.includes(method) ? template : undefined
      },
      isInternal,
      allowedMethods: (url) => {
        const template = templateOf(url)
        return (template !== undefined && allowedOf.get(template)) || []
      }
    }
  }
}
