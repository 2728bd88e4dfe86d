/**
 * Schema issues as a person reads them: one detail per field, naming the field and saying in
 * words what it expects, quoting at most a short prefix of what was sent (never a secret's), and
 * no schema internals (no type signatures, regular expressions or "undefined"). However large or
 * deep the input, the details are bounded: so many fields, so many characters each.
 *
 * Every 422 for a request's input is made here: the framework's decoding (ErrorResponse), batch
 * items and multipart fields (`decodeInput`).
 */
import { Result, Schema, SchemaAST, type SchemaIssue } from "effect"
import { type ErrorDetail, ValidationFailed } from "./ApiError.ts"
import { refusingUnstorableText } from "./StorableText.ts"

/** How every input is decoded: every problem at once, unknown fields refused, values kept for the message. */
export const inputParseOptions: SchemaAST.ParseOptions = { errors: "all", onExcessProperty: "error", reportInput: true }

const maxDetails = 20
const maxQuoted = 40
const maxPathLength = 200
const maxMessageLength = 300

/** A field whose value is never quoted back. */
const isSecret = (segment: PropertyKey) =>
  typeof segment === "string" && /pass(word)?|secret|token|api_?key|credential|^code$/i.test(segment)

/** `text` cut to `max` characters with an ellipsis, never between the halves of a surrogate pair. */
const clip = (text: string, max: number) => {
  if (text.length <= max) return text
  const end = /[\ud800-\udbff]/.test(text.charAt(max - 2)) ? max - 2 : max - 1
  return `${text.slice(0, end)}…`
}

/** `documents.3.title`; the root is `(root)`; long keys and deep paths are shortened. */
const pathText = (path: ReadonlyArray<PropertyKey>): string => {
  if (path.length === 0) return "(root)"
  const text = path.map((segment) => clip(String(segment), maxQuoted)).join(".")
  return text.length <= maxPathLength ? text : `${text.slice(0, 60)}…${text.slice(-(maxPathLength - 61))}`
}

/** What was sent, briefly: a string's first characters, a number, or the kind of value. */
const sent = (input: unknown): string | undefined => {
  if (typeof input === "string") return JSON.stringify(clip(input, maxQuoted))
  if ((typeof input === "number" && Number.isFinite(input)) || typeof input === "boolean" || input === null) return String(input)
  if (Array.isArray(input)) return "an array"
  if (typeof input === "object" && !(input instanceof Date)) return "an object"
  return undefined
}

const lengthUnit = (input: unknown, subject: SchemaAST.AST | undefined) =>
  Array.isArray(input) || subject?._tag === "Arrays" ? "items" : "characters"

/** A built-in check in words; `undefined` for one without a wording of its own here. */
const checkInWords = (filter: SchemaAST.Filter<unknown>, input: unknown, subject: SchemaAST.AST | undefined): string | undefined => {
  const representation = filter.annotations?.representation
  const payload = (representation?.payload ?? {}) as Record<string, unknown>
  const unit = lengthUnit(input, subject)
  switch (representation?.id) {
    case "effect/schema/isMinLength":
      return payload.minLength === 1
        ? unit === "items"
          ? "at least one item"
          : "a non-empty string"
        : `at least ${payload.minLength} ${unit}`
    case "effect/schema/isMaxLength":
      return `at most ${payload.maxLength} ${unit}`
    case "effect/schema/isBetweenLength":
      return `between ${payload.minimum} and ${payload.maximum} ${unit}`
    case "effect/schema/isPattern":
      return "a string in the format the contract gives"
    case "effect/schema/isTrimmed":
      return "a string without leading or trailing spaces"
    case "effect/schema/isLowercased":
      return "a lower-case string"
  }
  return undefined
}

const representationOf = SchemaAST.resolveAt<{ readonly id?: string }>("representation")

/** The type a value must have, in words, never as a signature. */
const typeInWords = (ast: SchemaAST.AST, depth = 0): string => {
  switch (ast._tag) {
    case "String":
      return "a string"
    case "Number":
      return "a number"
    case "Boolean":
      return "true or false"
    case "Null":
      return "null"
    case "Literal":
      return typeof ast.literal === "string" ? JSON.stringify(ast.literal) : String(ast.literal)
    case "Arrays":
      return "an array"
    case "Objects":
      return "an object"
    case "Union": {
      // An optional field may be left out; "undefined" is not something a client can send.
      const members = ast.types.filter((member) => member._tag !== "Undefined" && member._tag !== "Void")
      if (members.length > 0 && members.every((member) => member._tag === "Literal")) {
        return `one of ${members.map((member) => (member._tag === "Literal" ? String(member.literal) : "")).join(", ")}`
      }
      return [...new Set(members.map((member) => typeInWords(member, depth + 1)))].join(" or ") || "nothing"
    }
    case "Suspend":
      // A recursive Schema is described once, not followed round.
      return depth < 3 ? typeInWords(ast.thunk(), depth + 1) : "a valid value"
    case "Declaration":
      return representationOf(ast)?.id === "effect/schema/Date" ? "a date and time such as 2025-01-31T09:00:00Z" : "a valid value"
    case "Undefined":
    case "Void":
    case "Never":
      return "nothing here"
    default:
      return "a valid value"
  }
}

/** One problem: either what was expected (to which what was sent can be added), or a whole message. */
type Problem =
  | { readonly expected: string; readonly input?: unknown; readonly quote: boolean }
  | { readonly message: string; readonly input?: unknown; readonly quote: boolean }

const inputOf = (issue: SchemaIssue.Issue): unknown => ("input" in issue ? issue.input : undefined)

/** A schema's own message, taken as an expectation when it is written as one ("Expected an email address"). */
const fromMessage = (message: string, input: unknown): Problem =>
  message.startsWith("Expected ") ? { expected: message.slice("Expected ".length), input, quote: true } : { message, input, quote: false }

const render = (problem: Problem, secret: boolean): string => {
  const what = "expected" in problem ? `Expected ${problem.expected}` : problem.message
  const got = problem.quote && !secret ? sent(problem.input) : undefined
  return clip(got === undefined ? what : `${what}, got ${got}`, maxMessageLength)
}

interface Pending {
  readonly issue: SchemaIssue.Issue
  readonly path: ReadonlyArray<PropertyKey>
  /** The schema node whose checks are failing (a string's or an array's), for the units of a length. */
  readonly subject: SchemaAST.AST | undefined
}

/** The first problem of each field, in order, walked without recursion. */
const problemsByPath = (
  root: SchemaIssue.Issue,
  unknownKey: string
): { readonly problems: Map<string, { path: ReadonlyArray<PropertyKey>; problem: Problem }>; readonly total: number } => {
  const problems = new Map<string, { path: ReadonlyArray<PropertyKey>; problem: Problem }>()
  let total = 0
  const add = (path: ReadonlyArray<PropertyKey>, problem: Problem) => {
    const key = pathText(path)
    if (problems.has(key)) return
    total++
    if (problems.size < maxDetails) problems.set(key, { path, problem })
  }
  const pending: Array<Pending> = [{ issue: root, path: [], subject: undefined }]
  while (pending.length > 0) {
    const { issue, path, subject } = pending.pop()!
    switch (issue._tag) {
      case "Pointer":
        pending.push({ issue: issue.issue, path: [...path, ...issue.path], subject })
        break
      case "Encoding":
        pending.push({ issue: issue.issue, path, subject: issue.ast })
        break
      case "Composite":
      case "AnyOf":
        if (issue.issues.length === 0) {
          add(path, { expected: typeInWords(issue.ast), input: inputOf(issue), quote: true })
        } else {
          // Pushed last first, so that problems come out in the order of the input.
          for (let index = issue.issues.length - 1; index >= 0; index--) {
            pending.push({ issue: issue.issues[index]!, path, subject: issue._tag === "Composite" ? issue.ast : subject })
          }
        }
        break
      case "Filter": {
        const input = inputOf(issue)
        const message =
          issue.filter.annotations?.message ?? (issue.issue._tag === "InvalidValue" ? issue.issue.annotations?.message : undefined)
        if (message !== undefined) {
          add(path, fromMessage(message, input))
        } else if (issue.issue._tag !== "InvalidValue") {
          // A check that reports problems of its own, with their paths (the rule for text, say).
          pending.push({ issue: issue.issue, path, subject })
        } else {
          const words = checkInWords(issue.filter, input, subject)
          const expected = words ?? issue.filter.annotations?.expected
          const isLength = /Length$/.test(String(issue.filter.annotations?.representation?.id))
          add(
            path,
            expected === undefined
              ? { message: "Not a valid value", input, quote: false }
              : isLength && (typeof input === "string" || Array.isArray(input))
                ? // A length is said as a number; an empty value needs no number.
                  { message: input.length === 0 ? `Expected ${expected}` : `Expected ${expected}, got ${input.length}`, quote: false }
                : { expected, input, quote: true }
          )
        }
        break
      }
      case "InvalidType":
        add(path, { expected: typeInWords(issue.ast), input: inputOf(issue), quote: true })
        break
      case "InvalidValue":
        add(
          path,
          issue.annotations?.message !== undefined
            ? fromMessage(issue.annotations.message, inputOf(issue))
            : issue.annotations?.expected !== undefined
              ? { expected: issue.annotations.expected, input: inputOf(issue), quote: true }
              : { message: "Not a valid value", quote: false }
        )
        break
      case "MissingKey":
        add(path, { message: issue.annotations?.messageMissingKey ?? "Required, but missing", quote: false })
        break
      case "UnexpectedKey":
        add(path, { message: `Not a known ${unknownKey}: remove it or check its spelling`, quote: false })
        break
      case "Forbidden":
        add(path, { message: "Not allowed here", quote: false })
        break
      case "OneOf":
        add(path, { message: "Matches more than one of the accepted forms", quote: false })
        break
    }
  }
  return { problems, total }
}

/**
 * The details of a failed decoding: one per field (the first problem of each), at most
 * `maxDetails`, each path prefixed with `prefix` (a batch item's position).
 */
export const issueDetails = (
  issue: SchemaIssue.Issue,
  options: { readonly prefix?: ReadonlyArray<PropertyKey>; readonly unknownKey?: string } = {}
): { readonly details: Array<ErrorDetail>; readonly total: number } => {
  const prefix = options.prefix ?? []
  const { problems, total } = problemsByPath(issue, options.unknownKey ?? "field")
  const details = [...problems.values()].map(({ path, problem }) => {
    const full = [...prefix, ...path]
    return { path: pathText(full), message: render(problem, full.some(isSecret)) }
  })
  return { details, total }
}

/** A 422 for a failed decoding, its message saying the first problem (and how many more there are). */
export const validationFailed = (
  issue: SchemaIssue.Issue,
  options: { readonly prefix?: ReadonlyArray<PropertyKey>; readonly unknownKey?: string; readonly subject?: string } = {}
): ValidationFailed => {
  const { details, total } = issueDetails(issue, options)
  const first = details[0]
  const subject = options.subject ?? "The request"
  const more =
    total > 1
      ? ` (and ${total - 1} more ${total === 2 ? "problem" : "problems"}${total > details.length ? `, the first ${details.length} in details` : " in details"})`
      : ""
  return new ValidationFailed({
    message: first === undefined ? `${subject} is invalid` : `${subject} is invalid: ${first.path}: ${first.message}${more}`,
    details
  })
}

/** A 422 for a form field or query parameter whose percent-escapes are not UTF-8 (see StorableText). */
export const escapesNotUtf8 = (subject: string, field: string) =>
  new ValidationFailed({
    message: `${subject} is invalid: ${field}: its percent-escapes are not UTF-8`,
    details: [{ path: field, message: "Its percent-escapes are not UTF-8 (a lone surrogate or a stray byte), so it is not text" }]
  })

/**
 * Decodes what a handler reads itself (a batch item, multipart fields) as the framework decodes
 * a request: the rule for text included, every problem reported, the 422 made here.
 */
export const decodeInput = <A, I>(schema: Schema.Codec<A, I>) => {
  const decode = Schema.decodeUnknownResult(refusingUnstorableText(schema), inputParseOptions)
  return (
    input: unknown,
    options: { readonly prefix?: ReadonlyArray<PropertyKey>; readonly subject?: string } = {}
  ): Result.Result<A, ValidationFailed> => Result.mapError(decode(input), (error) => validationFailed(error.issue, options))
}
