/**
 * The request id: the caller's `X-Request-ID` when well formed, otherwise a fresh UUID. It rides
 * in a Reference so the error renderer (and any handler) finds it without threading it through.
 */
import { Context } from "effect"

export const RequestIdHeader = "x-request-id"

// Same rule as components.schemas.RequestId: anything else could smuggle text into logs.
const wellFormed = /^[A-Za-z0-9._:-]{1,128}$/

export const requestIdFrom = (header: string | undefined): string =>
  header !== undefined && wellFormed.test(header) ? header : crypto.randomUUID()

/** The id of the request being served; empty outside a request. */
export const CurrentRequestId = Context.Reference<string>("basalt/CurrentRequestId", { defaultValue: () => "" })
