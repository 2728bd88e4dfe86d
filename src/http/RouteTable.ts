/**
 * The API's routes as templates, to tell an unknown path (404) from a known path asked with the
 * wrong method (405 and Allow), and to name the route in metrics.
 */
import { HttpApi } from "@effect/platform"
import { Context, Layer } from "effect"

/** The path of a request target (`/a/b?x=1` → `/a/b`): Node gives the target as sent. */
export const pathOf = (url: string): string => {
  const query = url.indexOf("?")
  return query === -1 ? url : url.slice(0, query)
}

interface Route {
  readonly template: string
  readonly pattern: RegExp
  readonly methods: Set<string>
}

export class RouteTable extends Context.Tag("basalt/RouteTable")<RouteTable, {
  /** The route template that serves `path` with `method`, if any. */
  readonly match: (method: string, path: string) => string | undefined
  /** The methods `path` answers; empty when no route has that path. */
  readonly allowedMethods: (path: string) => ReadonlyArray<string>
}>() {
  static readonly fromApi = (api: HttpApi.HttpApi.Any): Layer.Layer<RouteTable> =>
    Layer.sync(RouteTable, () => {
      const routes = new Map<string, Route>()
      HttpApi.reflect(api as HttpApi.HttpApi.AnyWithProps, {
        onGroup() {},
        onEndpoint({ endpoint }) {
          const route = routes.get(endpoint.path) ?? {
            template: endpoint.path,
            pattern: new RegExp(`^${endpoint.path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/:\w+/g, "[^/]+")}$`),
            methods: new Set<string>()
          }
          route.methods.add(endpoint.method)
          routes.set(endpoint.path, route)
        }
      })
      const find = (path: string) => {
        for (const route of routes.values()) if (route.pattern.test(path)) return route
        return undefined
      }
      return {
        match: (method, path) => {
          const route = find(path)
          return route?.methods.has(method) ? route.template : undefined
        },
        allowedMethods: (path) => {
          const methods = find(path)?.methods
          // HEAD is answered wherever GET is (the router serves it).
          return methods === undefined ? [] : [...methods, ...(methods.has("GET") ? ["HEAD"] : [])]
        }
      }
    })
}
