/**
 * Browser sessions: the session cookie (HttpOnly, Secure, SameSite=Lax) and its CSRF token.
 *
 * The CSRF token is derived from the cookie's secret (double submit, bound to the session): a
 * page on another site can make the browser send the cookie, but cannot read it nor the token,
 * so it cannot send the matching X-CSRF-Token header. Nothing extra is stored.
 */
import type { Duration } from "effect"
import { HttpServerResponse } from "effect/http"
import { createHash, randomBytes, timingSafeEqual } from "node:crypto"

export const sessionCookieName = "basalt_session"
/** Readable by the frontend's scripts, so it can echo the token in the header. */
export const csrfCookieName = "basalt_csrf"
export const csrfHeaderName = "x-csrf-token"

export const newSessionCookieToken = () => `bsc_${randomBytes(32).toString("base64url")}`

export const csrfTokenOf = (cookieToken: string) => createHash("sha256").update(`basalt-csrf:${cookieToken}`).digest("base64url")

export const csrfTokenMatches = (cookieToken: string, presented: string | undefined) => {
  if (presented === undefined) return false
  const expected = Buffer.from(csrfTokenOf(cookieToken))
  const given = Buffer.from(presented)
  return given.length === expected.length && timingSafeEqual(given, expected)
}

/** Methods that change something: a cookie alone does not authorise them. */
export const needsCsrfToken = (method: string) => method !== "GET" && method !== "HEAD" && method !== "OPTIONS"

const attributes = { path: "/", secure: true, sameSite: "lax" } as const

/** The response with the session's cookies set for `lifetime`. */
export const withSessionCookies = (response: HttpServerResponse.HttpServerResponse, cookieToken: string, lifetime: Duration.Duration) =>
  HttpServerResponse.setCookiesUnsafe(response, [
    [sessionCookieName, cookieToken, { ...attributes, httpOnly: true, maxAge: lifetime }],
    [csrfCookieName, csrfTokenOf(cookieToken), { ...attributes, maxAge: lifetime }]
  ])

/** The response with the session's cookies removed from the browser. */
export const withoutSessionCookies = (response: HttpServerResponse.HttpServerResponse) =>
  HttpServerResponse.expireCookieUnsafe(
    HttpServerResponse.expireCookieUnsafe(response, sessionCookieName, { ...attributes, httpOnly: true }),
    csrfCookieName,
    attributes
  )
