/**
 * A document whose indexing failed is retried by sending it again, unchanged: through the API,
 * with an embeddings provider (a local fake speaking OpenAI's protocol) that refuses the key once.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Person, settled, signUp } from "./support/people.ts"
import { type FakeEmbeddingsServer, startFakeEmbeddingsServer } from "./support/fakeEmbeddingsServer.ts"
import { startServer, type TestServer } from "./support/server.ts"

// The provider is only called where vectors are kept: the local Postgres has no pgvector, so
// nothing there can make this document's indexing fail.
const pgvector = !process.env.DATABASE_URL

describe.skipIf(!pgvector)("retrying a failed document", () => {
  let provider: FakeEmbeddingsServer
  let server: TestServer
  let ada: Person

  beforeAll(async () => {
    provider = await startFakeEmbeddingsServer()
    server = await startServer(
      {
        BASALT_ALLOW_SIGNUP: "true",
        BASALT_EMBEDDINGS_URL: provider.baseUrl,
        BASALT_EMBEDDINGS_MODEL: "fake-embedding-model",
        BASALT_EMBEDDINGS_DIMENSIONS: "8",
        BASALT_EMBEDDINGS_API_KEY: "sk-test-key"
      },
      { emptyDatabase: true }
    )
    ada = await signUp(server, "ada")
  })
  afterAll(async () => {
    await server?.stop()
    await provider?.close()
  })

  it("queues an unchanged document again when its last indexing failed, and not when it succeeded", async () => {
    const body = { title: "Runbook", content: "Restart the service, then check the logs.", source: "api", external_id: "RB-1" }
    provider.queue({ status: 401, body: JSON.stringify({ error: { message: "Incorrect API key provided" } }) })
    const first = await server.request("/api/v1/documents", ada.json("POST", body))
    expect(first.status).toBe(202)
    const failed = await settled(ada, first.json().id)
    expect(failed).toMatchObject({ status: "failed", revision: 1 })
    expect(failed.error).toContain("401")

    const retried = await server.request("/api/v1/documents", ada.json("POST", body))
    expect(retried.status).toBe(202)
    expect(retried.json()).toMatchObject({ id: failed.id, revision: 2, status: "queued", error: null })
    expect(await settled(ada, failed.id)).toMatchObject({ status: "indexed", revision: 2, chunk_count: 1, error: null })

    const again = await server.request("/api/v1/documents", ada.json("POST", body))
    expect(again.status).toBe(200)
    expect(again.json()).toMatchObject({ revision: 2, status: "indexed" })
  })
})
