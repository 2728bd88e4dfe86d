/**
 * The messages sent to a chat model: a system message that tells it to answer only from the
 * numbered sources and to cite them as [n], the sources themselves, then the conversation so far
 * and the question. And the prompt that makes a follow-up question standalone.
 */
import type { ConversationTurn, NumberedSource } from "./Answerer.ts"

export interface ChatMessage {
  readonly role: "system" | "user" | "assistant"
  readonly content: string
}

const instructions = [
  "You answer questions using only the numbered sources below, which were retrieved from the user's documents.",
  "Cite every statement with the number of the source it comes from, in square brackets right after it, e.g. [1] or [2][3].",
  "Cite only the numbers listed below. Do not use knowledge from outside the sources.",
  "If the sources do not contain the answer, say plainly that the documents do not answer the question, and cite nothing.",
  "Answer in the language of the question."
].join("\n")

/** `[2] Title (page 4)` then the text: the number is the one the model cites. */
export const formatSource = (source: NumberedSource): string => {
  const page = source.page === undefined ? "" : ` (page ${source.page})`
  return `[${source.n}] ${source.title}${page}\n${source.text.trim()}`
}

export const groundedMessages = (
  question: string,
  history: ReadonlyArray<ConversationTurn>,
  sources: ReadonlyArray<NumberedSource>
): Array<ChatMessage> => {
  const listed = sources.length === 0 ? "(no sources were found for this question)" : sources.map(formatSource).join("\n\n")
  return [
    { role: "system", content: `${instructions}\n\nSources:\n\n${listed}` },
    ...history.map((turn) => ({ role: turn.role, content: turn.text })),
    { role: "user", content: question }
  ]
}

const rewriteInstructions = [
  "Rewrite the user's last question so that it can be understood without the conversation before it:",
  "resolve pronouns and references such as 'it', 'that one' or 'and for Linux?' from the conversation.",
  "Keep its meaning and language. Reply with the rewritten question only, nothing else.",
  "If the question already stands on its own, reply with it unchanged."
].join(" ")

export const rewriteMessages = (history: ReadonlyArray<ConversationTurn>, question: string): Array<ChatMessage> => {
  const transcript = history.map((turn) => `${turn.role === "user" ? "User" : "Assistant"}: ${turn.text}`).join("\n")
  return [
    { role: "system", content: rewriteInstructions },
    { role: "user", content: `Conversation:\n${transcript}\n\nLast question: ${question}` }
  ]
}
