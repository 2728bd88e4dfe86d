/**
 * Single sign-on end to end against a real OpenID Connect provider (`oidc-provider`) on loopback:
 * discovery, the authorization code flow with PKCE through the provider's own login and consent
 * pages, the callback, ID token and userinfo checks, account matching and creation, and what an
 * attacker tries: a wrong or replayed state, a state from another browser, a tampered ID token,
 * an unverified email, a domain that is not allowed.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { exportJWK, generateKeyPair, SignJWT } from "jose"
import Provider from "oidc-provider"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { receive, startServer, type TestResponse, type TestServer } from "./support/server.ts"

/** Basalt's public callback, as registered with the provider; the test maps it to the server. */
const publicOrigin = "https://basalt.example.test"
const clientId = "basalt"
const clientSecret = "basalt-client-secret-for-tests"

interface Person {
  readonly email: string
  readonly verified: boolean
  readonly name: string
}

const people: Record<string, Person> = {
  "grace-sub": { email: "Grace@Corp.example", verified: true, name: "Grace Hopper" },
  "linus-sub": { email: "linus@corp.example", verified: true, name: "Linus" },
  "unverified-sub": { email: "mallory@corp.example", verified: false, name: "Mallory" },
  "outsider-sub": { email: "eve@elsewhere.example", verified: true, name: "Eve" },
  "ada-sub": { email: "ada@corp.example", verified: true, name: "Ada (SSO)" },
  // Verified, but not what the contract's `format: email` accepts (no account could return it).
  "unicode-sub": { email: "jürgen@corp.example", verified: true, name: "Jürgen" }
}

/** The provider, with a switch that rewrites the ID token of the next token response. */
const startProvider = async () => {
  // The provider's signing key, known to the test so it can sign tokens the provider never issued.
  const { privateKey } = await generateKeyPair("RS256", { extractable: true })
  const signingKey = { ...(await exportJWK(privateKey)), kid: "test-key", alg: "RS256", use: "sig" }
  let provider: Provider | undefined
  let tamper: ((idToken: string) => string | Promise<string>) | undefined
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const rewrite = tamper
    if (rewrite !== undefined && req.method === "POST" && req.url?.startsWith("/token")) {
      tamper = undefined
      const end = res.end.bind(res) as (chunk: unknown) => ServerResponse
      res.end = ((chunk: Buffer | string) => {
        const body = JSON.parse(chunk.toString())
        void Promise.resolve(rewrite(body.id_token)).then((idToken) => {
          const text = JSON.stringify({ ...body, id_token: idToken })
          res.setHeader("content-length", Buffer.byteLength(text))
          end(text)
        })
        return res
      }) as typeof res.end
    }
    provider!.callback()(req, res)
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: [`${publicOrigin}/api/v1/auth/oidc/callback`],
        grant_types: ["authorization_code"],
        response_types: ["code"],
        token_endpoint_auth_method: "client_secret_basic"
      }
    ],
    pkce: { required: () => true },
    claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"] },
    cookies: { keys: ["provider-cookie-key-for-tests"] },
    jwks: { keys: [signingKey] },
    features: { devInteractions: { enabled: true } },
    findAccount: (_ctx, id) => ({
      accountId: id,
      claims: () => {
        const person = people[id]
        return { sub: id, email: person?.email, email_verified: person?.verified, name: person?.name }
      }
    })
  })
  return {
    issuer,
    tamperNextIdToken: (rewrite: (idToken: string) => string | Promise<string>) => (tamper = rewrite),
    /** Signs claims with the provider's own key: a token as valid as the provider's, but not issued by it. */
    sign: (claims: Record<string, unknown>) => new SignJWT(claims).setProtectedHeader({ alg: "RS256", kid: "test-key" }).sign(privateKey),
    stop: () => {
      server.closeAllConnections()
      return new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

/** A browser: one cookie jar per origin, redirects followed by hand so each hop can be seen. */
const browser = () => {
  const jars = new Map<string, Map<string, string>>()
  const jar = (origin: string) => jars.get(origin) ?? jars.set(origin, new Map()).get(origin)!
  const send = async (url: string, init: RequestInit = {}) => {
    const { origin } = new URL(url)
    const cookies = [...jar(origin)].map(([name, value]) => `${name}=${value}`).join("; ")
    const response = await fetch(url, {
      ...init,
      redirect: "manual",
      headers: { ...(init.headers as Record<string, string>), ...(cookies ? { cookie: cookies } : {}) }
    })
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(";")
      const name = pair!.slice(0, pair!.indexOf("="))
      const value = pair!.slice(pair!.indexOf("=") + 1)
      if (/max-age=0|expires=thu, 01 jan 1970/i.test(line)) jar(origin).delete(name)
      else jar(origin).set(name, value)
    }
    return response
  }
  return { send, cookie: (origin: string, name: string) => jar(origin).get(name), jar }
}

/** Every input of the provider's interaction form, as the browser would submit it. */
const formFields = (html: string) =>
  Object.fromEntries(
    [...html.matchAll(/<input[^>]*>/g)].flatMap(([tag]) => {
      const name = /name="([^"]*)"/.exec(tag)?.[1]
      const value = /value="([^"]*)"/.exec(tag)?.[1] ?? ""
      return name === undefined ? [] : [[name, value]]
    })
  )

describe("single sign-on with OpenID Connect", () => {
  let provider: Awaited<ReturnType<typeof startProvider>>
  let server: TestServer

  beforeAll(async () => {
    provider = await startProvider()
    server = await startServer(
      {
        BASALT_OIDC_ISSUER: provider.issuer,
        BASALT_OIDC_CLIENT_ID: clientId,
        BASALT_OIDC_CLIENT_SECRET: clientSecret,
        BASALT_OIDC_REDIRECT_URL: `${publicOrigin}/api/v1/auth/oidc/callback`,
        BASALT_OIDC_ALLOWED_DOMAINS: "corp.example"
      },
      { emptyDatabase: true }
    )
    // An account with a password exists before anyone signs on: the first, so the admin.
    const registered = await server.request("/api/v1/auth/register", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: "ada@corp.example", password: "ada password long", display_name: "Ada" })
    })
    expect(registered.status).toBe(201)
  })
  afterAll(async () => {
    await server?.stop()
    await provider?.stop()
  })

  /** Basalt's URL for a path, and the response validated against openapi.yaml. */
  const basalt = async (b: ReturnType<typeof browser>, pathAndQuery: string): Promise<TestResponse> => {
    const response = await b.send(`${server.url}${pathAndQuery}`)
    return receive("GET", pathAndQuery, response)
  }

  /** Up to the provider's redirect back to Basalt: the callback's path and query. */
  const throughProvider = async (b: ReturnType<typeof browser>, account: string, returnTo = "/search") => {
    const start = await basalt(b, `/api/v1/auth/oidc/authorize?return_to=${encodeURIComponent(returnTo)}`)
    expect(start.status).toBe(302)
    let location = start.headers.get("location")!
    expect(location.startsWith(`${provider.issuer}/`)).toBe(true)
    const authorize = new URL(location)
    expect(authorize.searchParams.get("code_challenge_method")).toBe("S256")
    expect(authorize.searchParams.get("code_challenge")).toMatch(/^[\w-]{43}$/)
    expect(authorize.searchParams.get("nonce")).toMatch(/^[\w-]{43}$/)
    for (let hop = 0; hop < 10; hop++) {
      if (location.startsWith(publicOrigin)) {
        const back = new URL(location)
        return `${back.pathname}${back.search}`
      }
      const url = new URL(location, provider.issuer).toString()
      let response = await b.send(url)
      if (response.status === 200) {
        // The provider's login or consent page: submit its form.
        const fields = formFields(await response.text())
        if (fields.prompt === "login") Object.assign(fields, { login: account, password: "any" })
        response = await b.send(url, {
          method: "POST",
          headers: { "content-type": "application/x-www-form-urlencoded" },
          body: new URLSearchParams(fields).toString()
        })
      }
      expect([302, 303]).toContain(response.status)
      location = response.headers.get("location")!
    }
    throw new Error("the provider never redirected back")
  }

  const signOn = async (account: string, returnTo = "/search") => {
    const b = browser()
    const callback = await throughProvider(b, account, returnTo)
    return { b, response: await basalt(b, callback), callback }
  }

  it("signs a new person on: creates a basic account from the verified email and starts a browser session", async () => {
    const { b, response } = await signOn("grace-sub")
    expect(response.status).toBe(303)
    expect(response.headers.get("location")).toBe("/search")
    const session = b.cookie(new URL(server.url).origin, "basalt_session")
    expect(session).toMatch(/^bsc_/)
    expect(b.cookie(new URL(server.url).origin, "basalt_oidc_state")).toBeUndefined()
    const me = await basalt(b, "/api/v1/users/me")
    expect(me.status).toBe(200)
    expect(me.json()).toMatchObject({ email: "grace@corp.example", display_name: "Grace Hopper", role: "basic", active: true })
  })

  it("signs the same person on again into the same account, by the provider's subject", async () => {
    const first = await signOn("linus-sub")
    const again = await signOn("linus-sub")
    const [one, two] = await Promise.all([basalt(first.b, "/api/v1/users/me"), basalt(again.b, "/api/v1/users/me")])
    expect(one.json().id).toBe(two.json().id)
  })

  it("links an existing password account with the same email, keeping its role", async () => {
    const { b, response } = await signOn("ada-sub")
    expect(response.status).toBe(303)
    const me = await basalt(b, "/api/v1/users/me")
    expect(me.json()).toMatchObject({ email: "ada@corp.example", role: "admin", display_name: "Ada" })
  })

  it("refuses a callback whose state is not the one this browser started (401), and the state cannot be replayed", async () => {
    const b = browser()
    const callback = await throughProvider(b, "grace-sub")
    const wrongState = callback.replace(/state=[^&]+/, "state=not-the-state")
    const wrong = await basalt(b, wrongState)
    expect(wrong.status).toBe(401)
    expect(wrong.json().error).toBe("unauthorized")
    // Another browser (no state cookie) presenting the real callback: refused too.
    const stranger = await basalt(browser(), callback)
    expect(stranger.status).toBe(401)
    // The state was used up by those attempts: even the right browser cannot complete it now.
    const replay = await basalt(b, callback)
    expect(replay.status).toBe(401)
    expect(replay.json().message).toMatch(/expired or was already completed/)
  })

  const claimsOf = (idToken: string) => JSON.parse(Buffer.from(idToken.split(".")[1]!, "base64url").toString())

  /** Through the provider as `account`, with the ID token of the code exchange rewritten. */
  const signOnWithIdToken = async (account: string, rewrite: (idToken: string) => string | Promise<string>) => {
    const b = browser()
    const callback = await throughProvider(b, account)
    provider.tamperNextIdToken(rewrite)
    return { b, response: await basalt(b, callback) }
  }

  it("refuses a tampered ID token (401) and starts no session", async () => {
    const { b, response } = await signOnWithIdToken("grace-sub", (idToken) => {
      const [header, , signature] = idToken.split(".")
      const claims = { ...claimsOf(idToken), sub: "ada-sub" }
      return `${header}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.${signature}`
    })
    expect(response.status).toBe(401)
    expect(response.json().message).toMatch(/ID token is not valid/)
    expect(b.cookie(new URL(server.url).origin, "basalt_session")).toBeUndefined()
  })

  it.each([
    ["whose nonce is another sign-in's", { nonce: "another-sign-in" }, /nonce/],
    ["issued to another client", { aud: "someone-else" }, /ID token is not valid/]
  ])("refuses an ID token, signed with the provider's own key, %s (401)", async (_, change, message) => {
    const { response } = await signOnWithIdToken("grace-sub", (idToken) => provider.sign({ ...claimsOf(idToken), ...change }))
    expect(response.status).toBe(401)
    expect(response.json().message).toMatch(message)
  })

  it("accepts a token re-signed with the provider's key when nothing else changed (the checks above are not signature-only)", async () => {
    const { response } = await signOnWithIdToken("linus-sub", (idToken) => provider.sign(claimsOf(idToken)))
    expect(response.status).toBe(303)
  })

  it("refuses an email the provider did not verify (403)", async () => {
    const { response } = await signOn("unverified-sub")
    expect(response.status).toBe(403)
    expect(response.json().message).toMatch(/did not vouch/)
  })

  it("refuses an email the contract's format does not accept (403)", async () => {
    const { response } = await signOn("unicode-sub")
    expect(response.status).toBe(403)
    expect(response.json().message).toMatch(/email address is not one this server accepts/)
  })

  it("refuses a domain that is not allowed (403)", async () => {
    const { response } = await signOn("outsider-sub")
    expect(response.status).toBe(403)
    expect(response.json().message).toMatch(/elsewhere\.example/)
  })

  it("passes on the provider's refusal as 401", async () => {
    const b = browser()
    await basalt(b, "/api/v1/auth/oidc/authorize")
    const state = b.cookie(new URL(server.url).origin, "basalt_oidc_state")!
    const response = await basalt(b, `/api/v1/auth/oidc/callback?error=access_denied&error_description=User%20cancelled&state=${state}`)
    expect(response.status).toBe(401)
    expect(response.json().message).toMatch(/access_denied/)
  })

  it("refuses a return_to that leaves the site (422)", async () => {
    for (const target of ["https://evil.example/", "//evil.example/", "/\\evil.example"]) {
      const response = await basalt(browser(), `/api/v1/auth/oidc/authorize?return_to=${encodeURIComponent(target)}`)
      expect(response.status).toBe(422)
    }
  })

  it("records single sign-ons and their refusals in the audit log", async () => {
    const login = await server.request("/api/v1/auth/login", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: "ada@corp.example", password: "ada password long" })
    })
    const token = login.json().access_token
    const failed = await server.request("/api/v1/admin/audit?action=sign_in_failed", { headers: { authorization: `Bearer ${token}` } })
    const reasons = failed.json().items.map((event: { details: { reason?: string } }) => event.details.reason)
    expect(reasons).toEqual(expect.arrayContaining(["state_mismatch", "email_unverified", "domain_not_allowed"]))
    const succeeded = await server.request("/api/v1/admin/audit?action=sign_in_succeeded", {
      headers: { authorization: `Bearer ${token}` }
    })
    expect(succeeded.json().items.some((event: { details: { method?: string } }) => event.details.method === "oidc")).toBe(true)
  })
})

describe("single sign-on, not configured", () => {
  let server: TestServer
  beforeAll(async () => {
    server = await startServer()
  })
  afterAll(() => server.stop())

  it("answers 404 on both routes", async () => {
    for (const path of ["/api/v1/auth/oidc/authorize", "/api/v1/auth/oidc/callback?code=x&state=y"]) {
      const response = await server.request(path)
      expect(response.status).toBe(404)
      expect(response.json().message).toMatch(/not configured/)
    }
  })
})

describe("single sign-on, provider unreachable", () => {
  let server: TestServer
  beforeAll(async () => {
    // A port that was just free: nothing answers there.
    const probe = createServer()
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve))
    const port = (probe.address() as AddressInfo).port
    await new Promise<void>((resolve) => probe.close(() => resolve()))
    server = await startServer({
      BASALT_OIDC_ISSUER: `http://127.0.0.1:${port}`,
      BASALT_OIDC_CLIENT_ID: clientId,
      BASALT_OIDC_CLIENT_SECRET: clientSecret,
      BASALT_OIDC_REDIRECT_URL: `${publicOrigin}/api/v1/auth/oidc/callback`
    })
  })
  afterAll(() => server.stop())

  it("answers 502 without leaking more than the reason", async () => {
    const response = await server.request("/api/v1/auth/oidc/authorize")
    expect(response.status).toBe(502)
    expect(response.json().error).toBe("bad_gateway")
    expect(response.text).not.toMatch(/at .*\.ts:\d+/)
  })
})
