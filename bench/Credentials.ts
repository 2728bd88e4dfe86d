/** The first account of a fresh Basalt (an admin), signed in, and an API key of it. */
export const credentialsOn = async (baseUrl: string): Promise<{ jwt: string; apiKey: string }> => {
  const post = async (path: string, body: unknown, token?: string) => {
    const response = await fetch(baseUrl + path, {
      method: "POST",
      headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body)
    })
    if (!response.ok) throw new Error(`POST ${path} answered ${response.status}: ${await response.text()}`)
    return response.json() as Promise<Record<string, any>>
  }
  const account = { email: "bench@example.com", password: "bench password long" }
  await post("/api/v1/auth/register", { ...account, display_name: "Bench" })
  const { access_token } = await post("/api/v1/auth/login", account)
  const { secret } = await post("/api/v1/api-keys", { name: "bench" }, access_token)
  return { jwt: access_token, apiKey: secret }
}
