/**
 * The server listens long before it attaches the app's handler (the database is awaited and
 * migrated in between): a request accepted before then is answered at once by the start-up
 * responder, one after by the app alone, and none is left hanging or answered twice.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { describe, expect, it } from "vitest"
import { answerUntilAttached } from "../layers/HttpServerLive.ts"

describe("requests that arrive before the app is attached", () => {
  it("are answered by the start-up responder, then by the app alone once it is attached", async () => {
    const server = createServer()
    answerUntilAttached(server, (request, response) => {
      response.writeHead(503, { "content-type": "text/plain" }).end(`starting ${request.url}`)
    })
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    const { port } = server.address() as AddressInfo
    const get = (path: string) =>
      fetch(`http://127.0.0.1:${port}${path}`).then(async (response) => [response.status, await response.text()])
    try {
      expect(await get("/early")).toEqual([503, "starting /early"])
      server.on("request", (request: IncomingMessage, response: ServerResponse) => {
        response.writeHead(200, { "content-type": "text/plain" }).end(`answered ${request.url}`)
      })
      // Answered twice, Node would throw on the second writeHead (ERR_HTTP_HEADERS_SENT).
      expect(await get("/later")).toEqual([200, "answered /later"])
      expect(await get("/again")).toEqual([200, "answered /again"])
    } finally {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    }
  })
})
