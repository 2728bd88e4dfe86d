/**
 * The baseline for bench/http.ts: plain node:http answering the same body Basalt's /health
 * does, with no framework. Run in its own process (PORT and HOST from the environment) so it
 * has an event loop to itself, as Basalt does.
 */
import { createServer } from "node:http"

const body = JSON.stringify({ status: "ok" })

const server = createServer((_request, response) => {
  response.writeHead(200, { "content-type": "application/json" })
  response.end(body)
})

server.listen(Number(process.env["PORT"]), process.env["HOST"] ?? "127.0.0.1")

process.on("SIGTERM", () => {
  server.close(() => process.exit(0))
  // Keep-alive connections a client still holds would otherwise keep close() waiting.
  server.closeAllConnections()
})
