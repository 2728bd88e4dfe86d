/**
 * One chat turn, generated: the question made standalone with the conversation so far, the
 * chunks retrieved under the caller's access rule and the session's scope (numbered 1..k in the
 * order the model is shown them), the answer streamed as the Answerer writes it, and each `[n]`
 * of it checked and mapped to a two-sided citation as soon as its sentence is complete.
 *
 * The events are what the SSE and WebSocket streams carry (`_tag` is the event name, `data` its
 * JSON): message_start, token…, citation…, then exactly one of message_end or error. Recording
 * the turn (ChatTurnRepo.finish) and replaying it are the caller's: it has every event.
 *
 * A citation: the answer sentence carrying the marker (UTF-16 offsets, end exclusive; the marker
 * inside the range) and the sentence of the cited chunk with the most terms in common with it
 * (for the extractive answerer, the very sentence it copied). A marker whose number was not shown
 * (`[0]`, `[9]` of three sources) is no citation; it is counted in `invalid_citations`.
 */
import { Context, Effect, Layer, Stream } from "effect"
import type { Caller } from "../accounts/SessionsRepo.ts"
import { type ChunkPages, pageInChunk } from "../documents/Pages.ts"
import type { SearchFilters } from "../search/Search.ts"
import { Retrieval } from "../search/Retrieval.ts"
import {
  type AnswerOptions,
  Answerer,
  type AnswerPart,
  type ConversationTurn,
  type FinishReason,
  type NumberedSource,
  ProviderProtocol
} from "./Answerer.ts"
import type { ChatScope, Citation } from "./Chat.ts"
import type { ChatErrorCode } from "./ChatAnswers.ts"
import { terms } from "./ExtractiveAnswerer.ts"

/** How many chunks the model is shown at most. */
export const maxSources = 8

/** A source as numbered for the model, with the text its citations quote. */
export interface CitableSource {
  readonly number: number
  readonly document_id: string
  readonly chunk_id: string
  readonly revision: number
  readonly content: string
  /** Null when the document has no pages. */
  readonly pages: ChunkPages | null
}

export interface RetrievedSource {
  readonly number: number
  readonly document_id: string
  readonly chunk_id: string
  readonly revision: number
  readonly title: string
  readonly url: string | null
  /** The page the chunk begins on, when its document has pages. */
  readonly page: number | null
}

export interface MessageEnd {
  readonly content: string
  readonly finish_reason: FinishReason
  readonly usage: { readonly prompt_tokens: number; readonly completion_tokens: number }
  readonly model: string
  readonly invalid_citations: number
}

export interface TurnError {
  readonly code: ChatErrorCode
  readonly message: string
  readonly retryable: boolean
}

export type TurnEvent =
  | { readonly _tag: "message_start"; readonly data: { readonly retrieved: ReadonlyArray<RetrievedSource> } }
  | { readonly _tag: "token"; readonly data: { readonly text: string } }
  | { readonly _tag: "citation"; readonly data: Citation }
  | { readonly _tag: "message_end"; readonly data: MessageEnd }
  | { readonly _tag: "error"; readonly data: TurnError }

export interface TurnInput {
  readonly caller: Caller
  readonly scope: ChatScope
  readonly question: string
  readonly history: ReadonlyArray<ConversationTurn>
  readonly options: AnswerOptions
  /** False: the answer's text loses its `[n]` markers and no citations are made. */
  readonly includeCitations: boolean
}

// --- Citations -------------------------------------------------------------------------------

const markerPattern = /\[(\d+(?:\s*,\s*\d+)*)\]/g
const markerWithSpace = /[ \t]*\[\d+(?:\s*,\s*\d+)*\]/g

/**
 * Where an answer sentence ends: its terminator, closing quotes, and the markers written after
 * it ("… days. [1]"), when what follows starts a sentence (a capital, a digit, maybe after an
 * opening quote or bracket) or nothing follows yet; or a line break.
 */
const answerSentenceEnd = /[.!?。！？]+["'”’)]*(?:[ \t]*\[\d+(?:\s*,\s*\d+)*\])*(?=\s+["'“‘([]?[\p{Lu}\p{N}]|\s*$)|\r?\n/gu

interface Span {
  readonly start: number
  readonly end: number
}

/** The sentences of `text` from `from` on, trimmed, each as [start, end). The last one may still grow. */
const answerSentences = (text: string, from: number): Array<Span> => {
  const spans: Array<Span> = []
  const push = (start: number, end: number) => {
    while (start < end && /\s/.test(text[start]!)) start++
    while (end > start && /\s/.test(text[end - 1]!)) end--
    if (end > start) spans.push({ start, end })
  }
  answerSentenceEnd.lastIndex = from
  let start = from
  for (let match = answerSentenceEnd.exec(text); match !== null; match = answerSentenceEnd.exec(text)) {
    if (match[0] === "") {
      answerSentenceEnd.lastIndex++
      continue
    }
    push(start, match[0].endsWith("\n") ? match.index : match.index + match[0].length)
    start = match.index + match[0].length
  }
  push(start, text.length)
  return spans
}

/** Whether the sentence ending at `end` can no longer change: something follows, and it is not a marker being written. */
const settled = (text: string, end: number): boolean => {
  const after = text.slice(end).trimStart()
  return after !== "" && !/^\[[\d,\s]*$/.test(after)
}

const headingLine = /^\s{0,3}#{1,6}\s/
const tableLine = /^\s*\|.*\|\s*$/
const listMarker = /^\s*(?:[-*+•]|\d{1,3}[.)])\s+/
// As the extractive answerer cuts sentences, so that its copied sentence is found whole.
const chunkSentenceEnd = /(?<=[.!?。！？])\s+(?=["'“‘([]?[\p{Lu}\p{N}])/gu

interface ChunkSentence extends Span {
  readonly text: string
}

/** The sentences of a chunk with their offsets in it: lines (headings and tables left out), then sentence ends. */
const chunkSentences = (content: string): Array<ChunkSentence> => {
  const sentences: Array<ChunkSentence> = []
  let lineStart = 0
  for (const rawLine of content.split("\n")) {
    const line = rawLine.endsWith("\r") ? rawLine.slice(0, -1) : rawLine
    const base = lineStart
    lineStart += rawLine.length + 1
    if (headingLine.test(line) || tableLine.test(line)) continue
    const from = listMarker.exec(line)?.[0].length ?? 0
    const body = line.slice(from)
    let pieceStart = 0
    const cut = (end: number) => {
      let start = pieceStart
      let stop = end
      while (start < stop && /\s/.test(body[start]!)) start++
      while (stop > start && /\s/.test(body[stop - 1]!)) stop--
      const text = body.slice(start, stop)
      if ((text.match(/[\p{L}\p{N}]+/gu) ?? []).length >= 3) {
        sentences.push({ start: base + from + start, end: base + from + stop, text })
      }
    }
    for (const match of body.matchAll(chunkSentenceEnd)) {
      cut(match.index)
      pieceStart = match.index + match[0].length
    }
    cut(body.length)
  }
  return sentences
}

/** The passage of `content` that supports `sentence`: the same sentence if the chunk has it, else the one sharing most terms. */
const supportingPassage = (content: string, sentence: string): Span => {
  const claim = sentence.replace(markerWithSpace, "").trim()
  const candidates = chunkSentences(content)
  const exact = candidates.find((candidate) => candidate.text === claim)
  if (exact !== undefined) return exact
  const claimTerms = new Set(terms(claim))
  let best: { span: Span; overlap: number; size: number } | undefined
  for (const candidate of candidates) {
    const own = new Set(terms(candidate.text))
    let overlap = 0
    for (const term of own) if (claimTerms.has(term)) overlap++
    // More terms in common first; then the shorter sentence (less that the claim does not say); then the earlier.
    if (best === undefined || overlap > best.overlap || (overlap > 0 && overlap === best.overlap && own.size < best.size)) {
      best = { span: candidate, overlap, size: own.size }
    }
  }
  if (best !== undefined) return best.span
  // A chunk with no whole sentence: it is quoted whole.
  const start = content.length - content.trimStart().length
  return { start, end: Math.max(start, content.trimEnd().length) }
}

/** The citations of one answer sentence, and how many of its markers name no source shown. */
const sentenceCitations = (
  answer: string,
  span: Span,
  sources: ReadonlyMap<number, CitableSource>
): { citations: Array<Citation>; invalid: number } => {
  const sentence = answer.slice(span.start, span.end)
  const citations: Array<Citation> = []
  const cited = new Set<number>()
  let invalid = 0
  for (const marker of sentence.matchAll(markerPattern)) {
    for (const digits of marker[1]!.split(",")) {
      const number = Number(digits.trim())
      const source = sources.get(number)
      if (source === undefined) {
        invalid++
        continue
      }
      if (cited.has(number)) continue
      cited.add(number)
      const passage = supportingPassage(source.content, sentence)
      citations.push({
        number,
        document_id: source.document_id,
        chunk_id: source.chunk_id,
        revision: source.revision,
        answer_start: span.start,
        answer_end: span.end,
        chunk_start: passage.start,
        chunk_end: passage.end,
        quote: source.content.slice(passage.start, passage.end),
        page: source.pages === null ? null : pageInChunk(source.pages, passage.start)
      })
    }
  }
  return { citations, invalid }
}

/**
 * Follows an answer as it is written: `push` a delta, get the citations of the sentences it
 * completed; `end`, get those of the rest. Together they are `citationsOf` the whole answer.
 */
export const citationTracker = (sources: ReadonlyArray<CitableSource>) => {
  const byNumber = new Map(sources.map((source) => [source.number, source]))
  let text = ""
  // Sentences before this offset have had their citations.
  let done = 0
  let invalid = 0
  const take = (complete: boolean): Array<Citation> => {
    const citations: Array<Citation> = []
    for (const span of answerSentences(text, done)) {
      if (!complete && !settled(text, span.end)) break
      const found = sentenceCitations(text, span, byNumber)
      citations.push(...found.citations)
      invalid += found.invalid
      done = span.end
    }
    return citations
  }
  return {
    push: (delta: string): Array<Citation> => {
      text += delta
      return take(false)
    },
    end: (): Array<Citation> => take(true),
    get text() {
      return text
    },
    get invalid() {
      return invalid
    }
  }
}

/** The end of a text that may still become a marker, with the spaces before it (or nothing): held back until it is one or is not. */
const partialMarker = /[ \t]*(?:\[\d*(?:\s*,\s*\d*)*)?$/

/**
 * Takes the `[n]` markers (and the spaces before them) out of an answer as it is written, for
 * an answer asked for without citations: `push` a delta, get the text that is surely no part of
 * a marker; `end`, get what was held back.
 */
export const markerStripper = () => {
  let held = ""
  return {
    push: (delta: string): string => {
      const text = (held + delta).replace(markerWithSpace, "")
      const cut = partialMarker.exec(text)!.index
      held = text.slice(cut)
      return text.slice(0, cut)
    },
    end: (): string => {
      const rest = held
      held = ""
      return rest
    }
  }
}

/** The citations of a whole answer, in the order of the answer, and how many markers named no source shown. */
export const citationsOf = (answer: string, sources: ReadonlyArray<CitableSource>): { citations: Array<Citation>; invalid: number } => {
  const tracker = citationTracker(sources)
  const citations = [...tracker.push(answer), ...tracker.end()]
  return { citations, invalid: tracker.invalid }
}

// --- The turn ---------------------------------------------------------------------------------

const scopeFilters = (scope: ChatScope): SearchFilters => ({
  ...(scope.collection_ids === undefined ? {} : { collection_ids: scope.collection_ids }),
  ...(scope.sources === undefined ? {} : { sources: scope.sources }),
  ...(scope.tags === undefined ? {} : { tags: scope.tags })
})

/** The error event's code of each failure a turn can end with. */
const turnErrorCodes = {
  ProviderUnavailable: "provider_unavailable",
  ProviderRejected: "provider_rejected",
  ProviderProtocol: "provider_protocol",
  NotFound: "not_found",
  ValidationFailed: "validation_failed"
} as const satisfies Record<string, ChatErrorCode>

const failed = (error: {
  readonly _tag: keyof typeof turnErrorCodes
  readonly message: string
  readonly retryable?: boolean
}): TurnEvent => ({
  _tag: "error",
  data: { code: turnErrorCodes[error._tag], message: error.message, retryable: error.retryable ?? false }
})

export class ChatTurn extends Context.Service<ChatTurn>()("basalt/ChatTurn", {
  make: Effect.gen(function* () {
    const retrieval = yield* Retrieval
    const answerer = yield* Answerer

    /** The sources the model will be shown, numbered, each with the revision of its document now. */
    const sourcesFor = (input: TurnInput, query: string) =>
      Effect.gen(function* () {
        const { hits } = yield* retrieval.retrieve(input.caller, {
          query,
          mode: "hybrid",
          filters: scopeFilters(input.scope),
          limit: maxSources
        })
        // Each hit comes with its document's revision and its pages (a chunk re-indexed away since the ranking is left out).
        return hits.map((hit, index) => {
          const pages: ChunkPages | null = hit.page === null ? null : { firstPage: hit.page, pageBreaks: hit.pageBreaks ?? [] }
          return {
            number: index + 1,
            document_id: hit.document_id,
            chunk_id: hit.chunk_id,
            revision: hit.revision,
            title: hit.title,
            url: hit.url,
            page: pages?.firstPage ?? null,
            pages,
            content: hit.content
          }
        })
      })

    /** The turn's events: message_start, token… and citation…, then message_end or error. */
    const generate = (input: TurnInput): Stream.Stream<TurnEvent> =>
      Stream.unwrap(
        Effect.gen(function* () {
          const query = yield* answerer
            .rewriteQuestion(input.history, input.question)
            // An unusable rewrite still leaves the question as asked to retrieve with.
            .pipe(Effect.catchTag("ProviderProtocol", () => Effect.succeed(input.question)))
          const sources = yield* sourcesFor(input, query)
          const tracker = citationTracker(sources)
          const stripper = markerStripper()
          let uncited = ""
          let finished = false
          const token = (text: string): Array<TurnEvent> => (text === "" ? [] : [{ _tag: "token", data: { text } }])
          const cited = (citations: ReadonlyArray<Citation>) =>
            citations.map((citation): TurnEvent => ({ _tag: "citation", data: citation }))
          // The model cites either way (it keeps an answer to its sources); without citations the markers are taken out.
          const written = (text: string) => {
            uncited += text
            return token(text)
          }

          const eventsOf = (part: AnswerPart): Array<TurnEvent> => {
            if (part._tag === "TextDelta") {
              if (!input.includeCitations) return written(stripper.push(part.text))
              return [...token(part.text), ...cited(tracker.push(part.text))]
            }
            finished = true
            const last = input.includeCitations ? cited(tracker.end()) : written(stripper.end())
            return [
              ...last,
              {
                _tag: "message_end",
                data: {
                  content: input.includeCitations ? tracker.text : uncited,
                  finish_reason: part.reason,
                  usage: { prompt_tokens: part.usage.promptTokens, completion_tokens: part.usage.completionTokens },
                  model: part.model,
                  invalid_citations: input.includeCitations ? tracker.invalid : 0
                }
              }
            ]
          }

          const numbered: Array<NumberedSource> = sources.map((source) => ({
            n: source.number,
            documentId: source.document_id,
            chunkId: source.chunk_id,
            title: source.title,
            text: source.content,
            ...(source.page === null ? {} : { page: source.page })
          }))
          const start: TurnEvent = {
            _tag: "message_start",
            data: { retrieved: sources.map(({ content: _content, pages: _pages, ...retrieved }) => retrieved) }
          }
          return Stream.make(start).pipe(
            Stream.concat(
              // The model reads the conversation itself: it gets the question as asked, the rewrite was for retrieval.
              answerer
                .answer({ question: input.question, history: input.history, sources: numbered, options: input.options })
                .pipe(Stream.map(eventsOf), Stream.flattenIterable)
            ),
            // An answerer ends with a Finish; one that did not broke its protocol.
            Stream.concat(
              Stream.suspend(() =>
                finished ? Stream.empty : Stream.make(failed(new ProviderProtocol({ reason: "the answer ended without a finish" })))
              )
            )
          )
        })
      ).pipe(Stream.catch((error) => Stream.make(failed(error))))

    return { generate } as const
  })
}) {
  static readonly layer = Layer.effect(this, this.make).pipe(Layer.provide(Retrieval.layer))
}
