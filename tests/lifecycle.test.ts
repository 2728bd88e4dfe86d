/**
 * The server as a process, started exactly like `npm start`: graceful shutdown on SIGTERM and
 * SIGINT, the BASALT_SHUTDOWN_GRACE bound, and refusing to start on bad configuration.
 */
import { readFileSync } from "node:fs"
import { createRequire } from "node:module"
import { connect, type Socket } from "node:net"
import { describe, expect, it } from "vitest"
import { latestMigrationId } from "../src/database/migrations/index.ts"
import { receive } from "./support/server.ts"
import { exitWithin, logEntries, processTimeout, type ServerProcess, startProcess, waitUntilHealthy } from "./support/serverProcess.ts"

const bundlePath = "/docs/assets/swagger-ui-bundle.js"
const bundle = readFileSync(createRequire(import.meta.url).resolve("swagger-ui-dist/swagger-ui-bundle.js"))

/**
 * How many copies of the bundle to ask for, pipelined on one connection, so that the server
 * cannot hand its responses to the kernel while the client does not read: one 1.7 MB response
 * fits in loopback socket buffers (the send buffer grows up to tcp_wmem's maximum, 4 MB by
 * default), and the process could exit with the bytes still deliverable. Twice the maximum plus
 * a margin leaves megabytes in the server process itself.
 */
const pipelinedCopies = (() => {
  let sendBufferMax = 4 * 1024 * 1024
  try {
    sendBufferMax = Number(readFileSync("/proc/sys/net/ipv4/tcp_wmem", "utf8").trim().split(/\s+/)[2]) || sendBufferMax
  } catch {
    // Not Linux: keep the default.
  }
  return Math.ceil((2 * sendBufferMax + 4 * 1024 * 1024) / bundle.length)
})()

/**
 * A raw connection that asks for the bundle `copies` times, pipelined, and does not read: the
 * server handles every request and is left holding the responses it cannot write.
 */
const pausedPipelinedDownload = (server: ServerProcess, copies: number) => {
  const socket: Socket = connect(server.port, "127.0.0.1")
  socket.pause()
  const chunks: Array<Buffer> = []
  socket.on("data", (chunk: Buffer) => chunks.push(chunk))
  const ended = new Promise<{ readonly error: Error | undefined }>((resolve) => {
    let error: Error | undefined
    socket.on("error", (cause) => {
      error = cause
    })
    socket.on("close", () => resolve({ error }))
  })
  const request = `GET ${bundlePath} HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\n\r\n`
  socket.write(request.repeat(copies))
  return { socket, ended, received: () => Buffer.concat(chunks) }
}

/** "connected", or the error code of a fresh TCP connection attempt to `port`. */
const connectionAttempt = (port: number) =>
  new Promise<string>((resolve) => {
    const socket = connect(port, "127.0.0.1")
    socket.once("connect", () => {
      socket.destroy()
      resolve("connected")
    })
    socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message))
  })

/** Splits an HTTP/1.1 byte stream into responses (Content-Length framed), each validated. */
const parseResponses = async (method: string, path: string, stream: Buffer) => {
  const responses: Array<{ readonly status: number; readonly body: Buffer }> = []
  let offset = 0
  while (offset < stream.length) {
    const headerEnd = stream.indexOf("\r\n\r\n", offset)
    if (headerEnd === -1) throw new Error(`truncated response head at byte ${offset} of ${stream.length}`)
    const [statusLine = "", ...headerLines] = stream.subarray(offset, headerEnd).toString("latin1").split("\r\n")
    const status = Number(statusLine.split(" ")[1])
    const headers = new Headers(
      headerLines.map((line) => {
        const colon = line.indexOf(":")
        return [line.slice(0, colon).trim(), line.slice(colon + 1).trim()] as [string, string]
      })
    )
    const length = Number(headers.get("content-length"))
    if (!Number.isInteger(length)) throw new Error(`response ${responses.length + 1} has no Content-Length`)
    const body = stream.subarray(headerEnd + 4, headerEnd + 4 + length)
    if (body.length < length) {
      throw new Error(`response ${responses.length + 1} is truncated: ${body.length} of ${length} body bytes`)
    }
    await receive(method, path, new Response(body, { status, headers }))
    responses.push({ status, body })
    offset = headerEnd + 4 + length
  }
  return responses
}

// Every request handled (and logged) before the signal: their responses are then in flight.
const waitForBundleRequests = (server: ServerProcess, copies: number) =>
  server.waitFor(
    () => logEntries(server).filter((entry) => entry["message"] === `GET ${bundlePath} 200`).length >= copies,
    `${copies} bundle requests`
  )

const isShutdownLine = (line: string) => line.includes("shutting down: waiting for")
const isGraceOverLine = (line: string) => line.includes("shutdown grace period over")

describe("graceful shutdown", () => {
  it("on SIGTERM stops accepting, finishes the responses in flight, then exits 0", { timeout: processTimeout }, async () => {
    const server = await startProcess({ BASALT_SHUTDOWN_GRACE: "60 seconds" })
    try {
      await waitUntilHealthy(server)
      const download = pausedPipelinedDownload(server, pipelinedCopies)
      await waitForBundleRequests(server, pipelinedCopies)

      server.child.kill("SIGTERM")
      await server.waitFor((lines) => lines.some(isShutdownLine), "the shutdown line")

      // The listener is closed: a new connection is refused, rather than accepted to answer
      // /ready with 503. (A fresh socket: fetch could reuse a pooled connection from the polling.)
      expect(await connectionAttempt(server.port)).toBe("ECONNREFUSED")
      // The client has read nothing yet, so the server must still be waiting for it.
      expect(server.child.exitCode).toBe(null)

      download.socket.resume()
      const { error } = await download.ended
      expect(error).toBeUndefined()
      const responses = await parseResponses("GET", bundlePath, download.received())
      expect(responses).toHaveLength(pipelinedCopies)
      for (const response of responses) {
        expect(response.status).toBe(200)
        expect(response.body.length).toBe(bundle.length)
        expect(response.body.equals(bundle)).toBe(true)
      }

      const exit = await exitWithin(server, 30_000, "its last response was read")
      expect(exit).toEqual({ code: 0, signal: null })
      // It exited because the drain finished, not because the grace period ran out.
      expect(server.stdoutLines().some(isGraceOverLine)).toBe(false)
      // The responses the server still held counted as in flight.
      expect(
        server
          .stdoutLines()
          .filter(isShutdownLine)
          .map((line) => JSON.parse(line).message)
      ).toEqual([expect.stringMatching(/^shutting down: waiting for [1-9]\d* in-flight request\(s\)$/)])
    } finally {
      server.child.kill("SIGKILL")
    }
  })

  it("BASALT_SHUTDOWN_GRACE bounds the wait for a client that never reads", { timeout: processTimeout }, async () => {
    const server = await startProcess({ BASALT_SHUTDOWN_GRACE: "1 second" })
    try {
      await waitUntilHealthy(server)
      const download = pausedPipelinedDownload(server, pipelinedCopies)
      await waitForBundleRequests(server, pipelinedCopies)

      server.child.kill("SIGTERM")
      const exit = await exitWithin(server, 20_000, "SIGTERM with a 1 second grace period")
      expect(exit).toEqual({ code: 0, signal: null })
      const lines = server.stdoutLines()
      const shutdownAt = lines.findIndex(isShutdownLine)
      const graceOverAt = lines.findIndex(isGraceOverLine)
      expect(shutdownAt).toBeGreaterThanOrEqual(0)
      expect(graceOverAt).toBeGreaterThan(shutdownAt)
      expect(JSON.parse(lines[graceOverAt]!)).toMatchObject({ level: "warn" })

      // The connection was cut: reading now yields less than was asked for.
      download.socket.resume()
      await download.ended
      expect(download.received().length).toBeLessThan(pipelinedCopies * bundle.length)
    } finally {
      server.child.kill("SIGKILL")
    }
  })

  it("on SIGINT shuts down the same way and exits 0", { timeout: processTimeout }, async () => {
    const server = await startProcess()
    try {
      await waitUntilHealthy(server)
      // The start line names where to begin: both documentation pages and the contract.
      const listening = logEntries(server).find((entry) => String(entry["message"]).startsWith("Basalt listening on"))
      const base = `http://127.0.0.1:${server.port}`
      for (const page of ["/docs", "/redoc", "/openapi.yaml"]) expect(listening?.["message"]).toContain(`${base}${page}`)
      server.child.kill("SIGINT")
      const exit = await exitWithin(server, 30_000, "SIGINT")
      expect(exit).toEqual({ code: 0, signal: null })
      expect(server.stdoutLines().filter(isShutdownLine)).toHaveLength(1)
      expect(server.stdoutLines().some(isGraceOverLine)).toBe(false)
      expect(server.stderr()).toBe("")
    } finally {
      server.child.kill("SIGKILL")
    }
  })
})

describe("startup configuration", () => {
  it.each([
    { variable: "PORT", value: "abc", problem: `Expected an integer value but received "abc"` },
    { variable: "BASALT_BODY_LIMIT", value: "lots", problem: `expected a size such as 1048576, 512kb or 1mb, got "lots"` }
  ])(
    "$variable=$value stops the process with one line on stderr naming it",
    { timeout: processTimeout },
    async ({ variable, value, problem }) => {
      const server = await startProcess({ [variable]: value })
      try {
        const exit = await exitWithin(server, 60_000, "starting with a bad configuration")
        expect(exit.code).not.toBe(0)
        expect(exit.code).not.toBe(null)
        expect(server.stderr()).toBe(`basalt: invalid configuration: ${variable}: ${problem}\n`)
      } finally {
        server.child.kill("SIGKILL")
      }
    }
  )
})

describe("restart", () => {
  it("reopens the same database after a clean stop: the data is there, no migration runs twice", { timeout: processTimeout }, async () => {
    const databaseReady = (server: ServerProcess) => logEntries(server).find((entry) => entry["message"] === "database ready")
    const first = await startProcess()
    await waitUntilHealthy(first)
    const firstStart = databaseReady(first)
    expect(firstStart?.["instance_id"]).toMatch(/^[0-9a-f-]{36}$/)
    first.child.kill("SIGTERM")
    expect(await exitWithin(first, 30_000, "SIGTERM")).toEqual({ code: 0, signal: null })

    const second = await startProcess({ BASALT_DATA_DIR: first.dataDir })
    await waitUntilHealthy(second)
    const secondStart = databaseReady(second)
    expect(secondStart?.["instance_id"]).toBe(firstStart?.["instance_id"])
    expect(secondStart?.["migrations_applied"]).toBe("")
    const ready = await receive("GET", "/ready", await fetch(`${second.url}/ready`))
    expect(ready.json().database.migration_version).toBe(latestMigrationId)
    second.child.kill("SIGTERM")
    expect(await exitWithin(second, 30_000, "SIGTERM")).toEqual({ code: 0, signal: null })
  })
})
