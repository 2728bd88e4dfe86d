/**
 * The embedded answerer, `basalt-extractive-v1`: no model, no network, deterministic. It answers
 * with the sources' own sentences that best match the question, each followed by the [n] of the
 * source it was taken from, and when no sentence matches well enough it says plainly that the
 * documents do not answer the question (citing nothing).
 *
 * How a sentence is picked: the sources are cut into sentences (headings and fragments of fewer
 * than three words left out), the question and each sentence into terms (lower-cased, accents
 * removed, English stop words and question words dropped, suffixes folded), and each sentence is
 * scored with BM25 over the sentences as the collection. A sentence qualifies when it holds at
 * least half of the question's distinct terms (so a question about something the sources never
 * name finds nothing, while one extra word in the question does not sink a good match; weighting
 * this by idf was tried and was too strict: over a few dozen sentences, a question's incidental
 * word that no sentence holds outweighed all the others). The best three qualifying sentences
 * are the answer, the best first; a sentence repeated by overlapping chunks is taken once.
 *
 * What it is not: it does not paraphrase, summarise, reason, or join facts from two sentences
 * into one; it does not know synonyms. It is the offline default; a real model goes through the
 * OpenAI-compatible answerer.
 */
import { Effect, Stream } from "effect"
import { countTokens } from "../indexing/Chunker.ts"
import { englishStopWords, foldInflections } from "../search/EnglishWords.ts"
import { type AnswererShape, type AnswerPart, type AnswerRequest, type NumberedSource, ProviderRejected, textDelta } from "./Answerer.ts"

export const extractiveModel = "basalt-extractive-v1"

/** The answer when no sentence qualifies. */
export const noAnswerText = "The documents I can search do not answer this question."

const maxSentences = 3
const minimumCoverage = 0.5
const bm25 = { k1: 1.2, b: 0.75 }

// Besides the usual stop words, words that ask rather than say what is asked about.
const stopWords = new Set([...englishStopWords, ..."please tell explain describe know anyone someone something way ways".split(" ")])

const combiningDiacritics = /[\u0300-\u036f]/g

// rotate, rotated, rotating, rotation → rot: the verb and its noun meet.
const foldedSuffixes = ["ations", "ation", "ating", "ated", "ates", "ate", "ments", "ment", "ings", "ing", "ed", "ly", "er"]

/** The terms of a text, in order, repeats kept. */
export const terms = (text: string): Array<string> => {
  const normalised = text.normalize("NFKD").replace(combiningDiacritics, "").toLowerCase()
  const words = normalised.match(/[\p{L}\p{N}]+/gu) ?? []
  return words.filter((word) => !stopWords.has(word)).map((word) => foldInflections(word, foldedSuffixes))
}

interface Sentence {
  readonly source: NumberedSource
  /** Its place among all sentences, sources in the order given: the tie-break. */
  readonly position: number
  readonly text: string
  readonly terms: ReadonlyArray<string>
}

const headingLine = /^\s{0,3}#{1,6}\s/
const listMarker = /^\s*(?:[-*+•]|\d{1,3}[.)])\s+/
// A sentence ends at . ! ? (or their CJK forms) followed by a space and what can start the next one.
const sentenceEnd = /(?<=[.!?。！？])\s+(?=["'“‘([]?[\p{Lu}\p{N}])/u

/** A source's sentences, in order: lines first (paragraphs, list items), then sentence ends inside them. */
const sentencesOf = (source: NumberedSource): Array<string> =>
  source.text
    .split(/\r?\n/)
    .filter((line) => !headingLine.test(line) && !/^\s*\|.*\|\s*$/.test(line))
    .map((line) => line.replace(listMarker, "").trim())
    .filter((line) => line !== "")
    .flatMap((line) => line.split(sentenceEnd))
    .map((sentence) => sentence.trim())
    .filter((sentence) => (sentence.match(/[\p{L}\p{N}]+/gu) ?? []).length >= 3)

/** `Keys rotate every 90 days.` with source 2 → `Keys rotate every 90 days [2].` */
const cite = (sentence: string, n: number): string => {
  const match = /[.!?。！？]+["'”’)]*$/u.exec(sentence)
  return match === null ? `${sentence} [${n}]` : `${sentence.slice(0, match.index)} [${n}]${match[0]}`
}

export interface ExtractiveAnswer {
  readonly text: string
  /** The numbers cited, in the order of the answer; empty when nothing matched. */
  readonly cited: ReadonlyArray<number>
}

/** The answer to `question` from `sources`: pure and deterministic. */
export const composeAnswer = (question: string, sources: ReadonlyArray<NumberedSource>): ExtractiveAnswer => {
  const queryTerms = [...new Set(terms(question))]
  const sentences: Array<Sentence> = []
  for (const source of sources) {
    for (const text of sentencesOf(source)) sentences.push({ source, position: sentences.length, text, terms: terms(text) })
  }
  if (queryTerms.length === 0 || sentences.length === 0) return { text: noAnswerText, cited: [] }

  const documentFrequency = new Map<string, number>()
  for (const sentence of sentences)
    for (const term of new Set(sentence.terms)) documentFrequency.set(term, (documentFrequency.get(term) ?? 0) + 1)
  const count = sentences.length
  const idf = (term: string) => {
    const df = documentFrequency.get(term) ?? 0
    return Math.log(1 + (count - df + 0.5) / (df + 0.5))
  }
  const averageLength = sentences.reduce((sum, sentence) => sum + sentence.terms.length, 0) / count

  const scored = sentences.flatMap((sentence) => {
    const frequencies = new Map<string, number>()
    for (const term of sentence.terms) frequencies.set(term, (frequencies.get(term) ?? 0) + 1)
    let score = 0
    let matched = 0
    for (const term of queryTerms) {
      const tf = frequencies.get(term) ?? 0
      if (tf === 0) continue
      const weight = idf(term)
      matched++
      score += (weight * tf * (bm25.k1 + 1)) / (tf + bm25.k1 * (1 - bm25.b + (bm25.b * sentence.terms.length) / averageLength))
    }
    return score > 0 && matched / queryTerms.length >= minimumCoverage ? [{ sentence, score }] : []
  })
  scored.sort((a, b) => b.score - a.score || a.sentence.position - b.sentence.position)

  const chosen: Array<Sentence> = []
  const seen = new Set<string>()
  for (const { sentence } of scored) {
    const key = sentence.terms.join(" ")
    if (seen.has(key)) continue
    seen.add(key)
    chosen.push(sentence)
    if (chosen.length === maxSentences) break
  }
  if (chosen.length === 0) return { text: noAnswerText, cited: [] }
  return {
    text: chosen.map((sentence) => cite(sentence.text, sentence.source.n)).join(" "),
    cited: chosen.map((sentence) => sentence.source.n)
  }
}

/** The answer as a model would stream it: a word and the space before it per delta, then the Finish. */
const partsOf = (request: AnswerRequest, answer: string): Array<AnswerPart> => {
  const maxTokens = request.options?.maxTokens
  const promptTokens = countTokens(request.question) + request.sources.reduce((sum, source) => sum + countTokens(source.text), 0)
  const parts: Array<AnswerPart> = []
  let completionTokens = 0
  for (const word of answer.match(/\s*\S+/g) ?? []) {
    const tokens = countTokens(word)
    if (maxTokens !== undefined && completionTokens + tokens > maxTokens) {
      parts.push({ _tag: "Finish", reason: "length", model: extractiveModel, usage: { promptTokens, completionTokens } })
      return parts
    }
    completionTokens += tokens
    parts.push(textDelta(word))
  }
  parts.push({ _tag: "Finish", reason: "stop", model: extractiveModel, usage: { promptTokens, completionTokens } })
  return parts
}

export const make: AnswererShape = {
  models: [extractiveModel],
  answer: (request) => {
    const model = request.options?.model ?? extractiveModel
    if (model !== extractiveModel) {
      return Stream.fail(new ProviderRejected({ reason: `the model "${model}" is not one of the configured models (${extractiveModel})` }))
    }
    return Stream.suspend(() => Stream.fromIterable(partsOf(request, composeAnswer(request.question, request.sources).text)))
  },
  // Without a model there is nothing to rewrite with: retrieval gets the question as asked.
  rewriteQuestion: (_history, question) => Effect.succeed(question)
}
