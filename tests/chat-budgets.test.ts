/**
 * Daily token budgets of chat, per user and per API key (BASALT_CHAT_USER_DAILY_TOKENS,
 * BASALT_CHAT_API_KEY_DAILY_TOKENS): checked before each question; over one, 429 in the one error
 * shape with Retry-After until the day (UTC) ends and the time the budget renews. An API key's
 * budget is its own; its questions count toward its owner's budget too.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Person, person, signUp } from "./support/people.ts"
import { startServer, type TestServer } from "./support/server.ts"

describe("chat token budgets", () => {
  let server: TestServer
  let alice: Person
  let bob: Person

  beforeAll(async () => {
    server = await startServer(
      { BASALT_ALLOW_SIGNUP: "true", BASALT_CHAT_USER_DAILY_TOKENS: "1000", BASALT_CHAT_API_KEY_DAILY_TOKENS: "1" },
      { emptyDatabase: true }
    )
    alice = await signUp(server, "alice")
    bob = await signUp(server, "bob")
  })
  afterAll(() => server?.stop())

  const ask = async (who: Person, message = "What is the travel policy?") => {
    const session = await server.request("/api/v1/chat/sessions", who.json("POST", {}))
    expect(session.status, session.text).toBe(201)
    return server.request(`/api/v1/chat/sessions/${session.json().id}/messages`, who.json("POST", { message, stream: false }))
  }

  /** The seconds until midnight UTC, as the server counts them (give or take the test's own time). */
  const untilMidnight = () => {
    const now = new Date()
    return (Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1) - now.getTime()) / 1000
  }

  it("an API key over its budget gets 429 with Retry-After until the day ends; its owner, as a user, does not", async () => {
    const created = await server.request("/api/v1/api-keys", alice.json("POST", { name: "chat bot" }))
    expect(created.status, created.text).toBe(201)
    const key = person(server, alice.id, created.json().secret)

    const first = await ask(key)
    expect(first.status, first.text).toBe(200)
    expect(first.json().answer.usage.prompt_tokens + first.json().answer.usage.completion_tokens).toBeGreaterThan(1)

    const refused = await ask(key)
    expect(refused.status, refused.text).toBe(429)
    expect(refused.json()).toMatchObject({ error: "rate_limited" })
    expect(refused.json().message).toMatch(
      /daily chat budget of 1 tokens for this API key is used up .*renews at \d{4}-\d\d-\d\dT00:00:00Z/
    )
    const retryAfter = Number(refused.headers.get("retry-after"))
    expect(Math.abs(retryAfter - untilMidnight())).toBeLessThan(60)
    // The headers name the budget that refused, not the request rate limit the request was within.
    expect(refused.headers.get("ratelimit-policy")).toBe('"tokens";q=1;w=86400')
    expect(refused.headers.get("ratelimit")).toMatch(/^"tokens";r=0;t=\d+$/)

    // Alice herself is within her own budget (the key's answer counts toward it, 1,000 is far off).
    expect((await ask(alice)).status).toBe(200)
  })

  it("a user over the day's budget gets 429; another user does not", async () => {
    await server.query(
      `UPDATE chat_messages SET usage = '{"prompt_tokens": 600, "completion_tokens": 400}'::jsonb
       WHERE role = 'assistant' AND session_id IN (SELECT id FROM chat_sessions WHERE owner_id = $1)`,
      [alice.id]
    )
    const refused = await ask(alice)
    expect(refused.status, refused.text).toBe(429)
    expect(refused.json().message).toMatch(/daily chat budget of 1000 tokens for this user is used up/)
    expect((await ask(bob)).status).toBe(200)
  })

  it("answers from earlier days do not count", async () => {
    await server.query(
      `UPDATE chat_messages SET created_at = now() - interval '2 days'
       WHERE session_id IN (SELECT id FROM chat_sessions WHERE owner_id = $1)`,
      [alice.id]
    )
    expect((await ask(alice)).status).toBe(200)
  })
})
