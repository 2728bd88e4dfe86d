/** The shared response validator must refuse what openapi.yaml does not allow, or it proves nothing. */
import { describe, expect, it } from "vitest"
import { ContractViolation, validateResponse, validateStreamEvent } from "./support/contract.ts"

const headers = (extra: Record<string, string> = {}) =>
  new Headers({ "content-type": "application/json", "x-request-id": "abc", "x-process-time": "1.25", ...extra })

const check =
  (method: string, path: string, status: number, body: unknown, h = headers()) =>
  () =>
    validateResponse(method, path, { status, headers: h, text: typeof body === "string" ? body : JSON.stringify(body) })

describe("validateResponse", () => {
  it("accepts a response the contract allows", () => {
    expect(check("GET", "/health", 200, { status: "ok" })).not.toThrow()
  })

  it.each([
    ["an undeclared status", check("GET", "/health", 201, { status: "ok" })],
    ["a body off the schema", check("GET", "/health", 200, { status: "fine" })],
    ["an extra field", check("GET", "/health", 200, { status: "ok", extra: 1 })],
    ["a wrong content type", check("GET", "/health", 200, "ok", headers({ "content-type": "text/plain" }))],
    [
      "a missing X-Request-ID",
      check("GET", "/health", 200, { status: "ok" }, new Headers({ "content-type": "application/json", "x-process-time": "1" }))
    ],
    ["a malformed X-Process-Time", check("GET", "/health", 200, { status: "ok" }, headers({ "x-process-time": "soon" }))],
    ["an error off the one shape", check("GET", "/ready", 503, { message: "down" })],
    ["a 200 for an unknown path", check("GET", "/nowhere", 200, { status: "ok" })],
    [
      "a 404 for a known path with the wrong method",
      check("DELETE", "/health", 404, { error: "not_found", message: "x", request_id: "abc" })
    ],
    ["a 405 without Allow", check("DELETE", "/health", 405, { error: "method_not_allowed", message: "x", request_id: "abc" })]
  ])("refuses %s", (_, validate) => {
    expect(validate).toThrow(ContractViolation)
  })
})

describe("validateStreamEvent", () => {
  const status = {
    id: "MTc2NDc1MjQwMDAwMDox",
    event: "status",
    data: JSON.stringify({
      document_id: "0b9f5f4e-4a51-4c1a-9a59-3f2f1d7b6c11",
      status: "indexed",
      error: null,
      chunk_count: 1,
      revision: 1,
      changed_at: "2026-11-21T10:00:00.000Z"
    })
  }
  const deleted = {
    id: "MTc2NDc1MjQwMDAwMDoy",
    event: "deleted",
    data: JSON.stringify({ document_id: "0b9f5f4e-4a51-4c1a-9a59-3f2f1d7b6c11", revision: 3, deleted_at: "2026-11-21T10:00:00.000Z" })
  }
  const event = (fields: Record<string, string>) => () => validateStreamEvent("GET", "/api/v1/documents/events", fields)

  it("accepts the events the stream's itemSchema allows", () => {
    expect(event(status)).not.toThrow()
    expect(event(deleted)).not.toThrow()
  })

  it.each([
    ["an unknown event", { ...status, event: "renamed" }],
    ["an event without an id", { event: status.event, data: status.data }],
    ["data that is not JSON", { ...status, data: "indexed" }],
    ["a status event with a deletion's data", { ...status, data: deleted.data }],
    ["a deletion with a status's data", { ...deleted, data: status.data }],
    ["data off its schema", { ...status, data: JSON.stringify({ ...JSON.parse(status.data), status: "done" }) }]
  ])("refuses %s", (_, fields) => {
    expect(event(fields)).toThrow(ContractViolation)
  })
})
