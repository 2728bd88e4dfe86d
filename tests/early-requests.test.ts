/**
 * The platform listens a moment before it attaches the app's handler; a request accepted in
 * between must be answered once the handler is there, not left hanging.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { describe, expect, it } from "vitest"
import { holdEarlyRequests } from "../layers/HttpServerLive.ts"

describe("requests that arrive before the app is attached", () => {
  it("are held, then answered by the app once it is attached", async () => {
    const server = createServer()
    const release = holdEarlyRequests(server)
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    const { port } = server.address() as AddressInfo
    try {
      const early = fetch(`http://127.0.0.1:${port}/early`).then(async (response) => [response.status, await response.text()])
      // Let the request reach the server while no app listens.
      await new Promise((resolve) => setTimeout(resolve, 100))
      server.on("request", (request: IncomingMessage, response: ServerResponse) => {
        response.writeHead(200, { "content-type": "text/plain" }).end(`answered ${request.url}`)
      })
      release()
      expect(await early).toEqual([200, "answered /early"])
      const later = await fetch(`http://127.0.0.1:${port}/later`)
      expect(await later.text()).toBe("answered /later")
    } finally {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    }
  })
})
