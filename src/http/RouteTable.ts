/**
 * The API's routes as templates, to tell an unknown path (404) from a known path asked with the
 * wrong method (405 and Allow), and to name the route in metrics. Matched by the platform's own
 * router (FindMyWay, as HttpRouter configures it by default), so the table and the router always
 * agree on what a path is.
 */
import * as FindMyWay from "effect/http/FindMyWay"
import type { HttpMethod } from "effect/http/HttpMethod"
import { HttpApi, type HttpApiGroup } from "effect/http-api"

/** The path of a request target (`/a/b?x=1` → `/a/b`): Node gives the target as sent. */
export const pathOf = (url: string): string => {
  const query = url.indexOf("?")
  return query === -1 ? url : url.slice(0, query)
}

const methods: ReadonlyArray<HttpMethod> = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

export interface RouteTable {
  /** The route template that serves the request target `url` with `method`, if any. */
  readonly match: (method: string, url: string) => string | undefined
  /** The methods the path of `url` answers; empty when no route has that path. */
  readonly allowedMethods: (url: string) => ReadonlyArray<string>
}

export const RouteTable = {
  fromApi: <Id extends string, Groups extends HttpApiGroup.Constraint>(api: HttpApi.HttpApi<Id, Groups>): RouteTable => {
    const router = FindMyWay.make<string>()
    HttpApi.reflect(api, {
      onGroup() {},
      onEndpoint({ endpoint }) {
        router.on(endpoint.method, endpoint.path as FindMyWay.PathInput, endpoint.path)
      }
    })
    return {
      match: (method, url) => router.find(method, url)?.handler,
      allowedMethods: (url) => {
        const allowed = methods.filter((method) => router.find(method, url) !== undefined)
        // HEAD is answered wherever GET is (the router serves it).
        return allowed.includes("GET") ? [...allowed, "HEAD"] : allowed
      }
    }
  }
}
