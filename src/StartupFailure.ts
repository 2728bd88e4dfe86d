/**
 * Why the server could not start, as the one line main.ts writes on stderr (`basalt: …`, exit
 * code 1), like a bad configuration: a port in use, a data directory that is taken or does not
 * open, a database that cannot be used. Any other failure is a bug, and is logged in full.
 */
import { Cause, Config, Data } from "effect"
import { ServeError } from "effect/http/HttpServerError"
import { SqlError } from "effect/sql"
import { describeConfigError } from "./config/AppConfig.ts"

/** A start-up failure whose message is the whole line to show (no secret in it). */
export class StartupError extends Data.TaggedError("StartupError")<{ readonly message: string }> {}

const oneLine = (text: string) => text.replace(/\s*\n\s*/g, " ").trim()

const errorField = (error: unknown, field: "code" | "message" | "address" | "port"): string | undefined => {
  if (typeof error !== "object" || error === null || !(field in error)) return undefined
  const value = (error as Record<string, unknown>)[field]
  return typeof value === "string" || typeof value === "number" ? String(value) : undefined
}

const listenProblems: Record<string, string> = {
  EADDRINUSE: "the port is in use by another process (set PORT to another one, or 0 for any free port)",
  EACCES: "permission denied (ports below 1024 need privileges)",
  EADDRNOTAVAIL: "HOST is not an address of this machine",
  ENOTFOUND: "HOST is not a known host name"
}

const describeServeError = (error: ServeError): string => {
  const code = errorField(error.cause, "code")
  const where = `${errorField(error.cause, "address") ?? "HOST"}:${errorField(error.cause, "port") ?? "PORT"}`
  const problem = (code === undefined ? undefined : listenProblems[code]) ?? errorField(error.cause, "message") ?? "unknown error"
  return `cannot listen on ${where}: ${problem}`
}

/**
 * The database refusing or not being there, as opposed to a statement failing: connection (08),
 * credentials (28), an unknown database (3D000), the server starting or stopping (57P).
 */
const describeSqlError = (error: SqlError.SqlError): string | undefined => {
  const code = errorField(error.reason.cause, "code")
  const refused =
    error.reason._tag === "ConnectionError" ||
    error.reason._tag === "AuthenticationError" ||
    (code !== undefined && (/^(08|28|57P)/.test(code) || code === "3D000"))
  if (!refused) return undefined
  // The server's own words (`database "x" does not exist`) or the socket's (`connect ECONNREFUSED …`);
  // never the URL, which may hold a password.
  const cause = errorField(error.reason.cause, "message") ?? error.message
  return `cannot use the database of DATABASE_URL: ${oneLine(cause)}`
}

/** The line for a start-up failure Basalt knows, or undefined for anything else (a bug). */
export const describeStartupFailure = (cause: Cause.Cause<unknown>): string | undefined => {
  const reason = cause.reasons.find(Cause.isFailReason)
  if (reason === undefined) return undefined
  const error = reason.error
  if (error instanceof Config.ConfigError) return `invalid configuration: ${describeConfigError(error)}`
  if (error instanceof StartupError) return oneLine(error.message)
  if (error instanceof ServeError) return describeServeError(error)
  if (SqlError.isSqlError(error)) return describeSqlError(error)
  return undefined
}
