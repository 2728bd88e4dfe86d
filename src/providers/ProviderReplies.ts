/**
 * Reading the answers of model providers speaking OpenAI's HTTP APIs (OpenAI, Ollama, vLLM,
 * llama.cpp, TEI), for the embedder and the chat answerer alike: when to retry, and what went
 * wrong in words fit for a log line or a document's failure reason (never a key or a query).
 */
/** Seconds or an HTTP date, as RFC 9110 allows; undefined when absent or unreadable. */
export const retryAfterMs = (header: string | undefined, now: number): number | undefined => {
  if (header === undefined || header.trim() === "") return undefined
  const seconds = Number(header)
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000)
  const date = Date.parse(header)
  return Number.isNaN(date) ? undefined : Math.max(0, date - now)
}

/** The provider's own words, from the error shapes of OpenAI, Ollama, vLLM and TEI. */
export const providerMessage = (body: string): string => {
  let message = body
  try {
    const parsed: any = JSON.parse(body)
    const candidate = parsed?.error?.message ?? parsed?.error ?? parsed?.message ?? parsed?.detail
    // JSON with nothing readable in it says nothing.
    message = typeof candidate === "string" ? candidate : ""
  } catch {
    // Not JSON: the text itself is the message.
  }
  message = message.replace(/\s+/g, " ").trim()
  return message.length > 300 ? `${message.slice(0, 300)}…` : message
}

/** What failed underneath a transport error (ECONNREFUSED, ENOTFOUND, …), in a few words. */
export const describeCause = (cause: unknown): string => {
  const parts: Array<string> = []
  for (let current: any = cause, depth = 0; current !== undefined && current !== null && depth < 4; depth++) {
    const part = typeof current?.code === "string" ? current.code : typeof current?.message === "string" ? current.message : undefined
    if (part !== undefined && !parts.includes(part)) parts.push(part)
    current = current?.cause
  }
  return parts.length > 0 ? parts.join(": ") : "connection failed"
}

/** The base URL without credentials or query, fit for an error message. */
export const describeUrl = (url: string): string => {
  try {
    const parsed = new URL(url)
    return `${parsed.protocol}//${parsed.host}${parsed.pathname}`
  } catch {
    return "(an invalid URL)"
  }
}
