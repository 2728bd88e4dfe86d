/**
 * The request id: the caller's `X-Request-ID` when well formed, otherwise a fresh UUID. It rides
 * in a FiberRef so the error renderer and the logger find it without threading it through.
 */
import { FiberRef } from "effect"

export const RequestIdHeader = "x-request-id"

// Same rule as components.schemas.RequestId: anything else could smuggle text into logs.
const wellFormed = /^[A-Za-z0-9._:-]{1,128}$/

export const requestIdFrom = (header: string | undefined): string =>
  header !== undefined && wellFormed.test(header) ? header : crypto.randomUUID()

export const CurrentRequestId: FiberRef.FiberRef<string> = FiberRef.unsafeMake("")
