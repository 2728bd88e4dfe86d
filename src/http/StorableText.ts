/**
 * The one rule for text the API accepts: no U+0000 and no lone UTF-16 surrogate, anywhere in an
 * input (strings, object keys, JSON of any depth). Postgres stores neither: U+0000 fails in text
 * and jsonb alike, and a lone surrogate fails in jsonb and becomes U+FFFD in text, silently. So
 * such a string is refused with 422, naming the field, instead of failing (500) or changing later.
 *
 * The rule lives in the request Schemas themselves: `refusingUnstorableText` adds it to a Schema
 * as a check of the input as sent. The contract helpers (`op.path`, `op.query`, `op.payload`) add
 * it to every request Schema, and `decodeInput` (IssueDetails) to what a handler decodes itself
 * (batch items, multipart fields). What parsers turn into U+FFFD before any Schema sees it
 * (percent-escapes that are not UTF-8) is refused where the text is parsed: RequestBody for
 * forms, QueryParameters for queries, with `fieldEscapedNotUtf8`; multipart fields arrive decoded
 * already, and DocumentUpload refuses them with `decodedNotUtf8`.
 */
import { Schema } from "effect"

const nul = "\u0000"

/** What is wrong with `text`, in words; `undefined` when Postgres can store it. */
export const unstorableText = (text: string): string | undefined =>
  text.includes(nul)
    ? "contains the character U+0000 (NUL), which cannot be stored"
    : text.isWellFormed()
      ? undefined
      : "contains a lone surrogate (half of a UTF-16 pair, such as \\ud800 alone), which is not valid Unicode"

const strictUtf8 = new TextDecoder("utf-8", { fatal: true })

const percentEscapes = /(?:%[0-9a-f]{2})+/gi

/** Whether every run of percent-escapes in `text` is UTF-8 (a stray `%` is left alone, as form parsers do). */
const escapesAreUtf8 = (text: string) =>
  (text.match(percentEscapes) ?? []).every((run) => {
    try {
      strictUtf8.decode(Uint8Array.from(run.slice(1).split("%"), (hex) => Number.parseInt(hex, 16)))
      return true
    } catch {
      return false
    }
  })

/**
 * The name of the first field of form-encoded text (a query string, a form body) whose
 * percent-escapes are not UTF-8, such as `%ED%A0%80` (a lone surrogate): parsers would turn them
 * into U+FFFD, silently, before any Schema could see them.
 */
export const fieldEscapedNotUtf8 = (formEncoded: string): string | undefined => {
  const field = formEncoded.split("&").find((field) => !escapesAreUtf8(field))
  if (field === undefined) return undefined
  const name = field.split("=")[0] ?? ""
  return (escapesAreUtf8(name) && new URLSearchParams(`${name}=`).keys().next().value?.slice(0, 40)) || "(a field name)"
}

/**
 * What is wrong with a multipart form field's text, in words; `undefined` when nothing is. The
 * platform's parser decodes a field before any code sees it, turning bytes that are not UTF-8
 * into U+FFFD, and keeps no copy of the bytes: U+FFFD is what is left to tell them by, so a field
 * with U+FFFD is refused, though one sent as proper UTF-8 (EF BF BD) is refused with it.
 */
export const decodedNotUtf8 = (text: string): string | undefined =>
  text.includes("\ufffd")
    ? "is not valid UTF-8: it contains U+FFFD, the replacement character, which bytes that are not UTF-8 decode to"
    : undefined

/**
 * A field whose Schema carries this annotation is left to a decoder of its own (the items of a
 * batch, each refused on its own): the check of the whole request skips it, as it skips fields
 * the Schema does not declare (refused already, or ignored and never stored).
 */
export const DecodedSeparately = "basalt/decodedSeparately"

declare module "effect/Schema" {
  namespace Annotations {
    interface Annotations {
      readonly "basalt/decodedSeparately"?: boolean | undefined
    }
  }
}

/** Enough to say what is wrong; the rest of a hostile input is not worth walking. */
const maxProblems = 20

interface Problem {
  readonly path: ReadonlyArray<PropertyKey>
  readonly issue: string
}

/**
 * Every unstorable string in `input` (values and keys), walked without recursion; at the top, only
 * the fields in `walked` (all, when it is undefined).
 */
const problemsIn = (input: unknown, walked: ReadonlySet<string> | undefined): Array<Problem> => {
  const problems: Array<Problem> = []
  const pending: Array<{ readonly value: unknown; readonly path: ReadonlyArray<PropertyKey> }> = [{ value: input, path: [] }]
  while (pending.length > 0 && problems.length < maxProblems) {
    const { value, path } = pending.pop()!
    if (typeof value === "string") {
      const issue = unstorableText(value)
      if (issue !== undefined) problems.push({ path, issue })
    } else if (Array.isArray(value)) {
      for (let index = value.length - 1; index >= 0; index--) pending.push({ value: value[index], path: [...path, index] })
    } else if (typeof value === "object" && value !== null) {
      const keys = path.length === 0 && walked !== undefined ? Object.keys(value).filter((key) => walked.has(key)) : Object.keys(value)
      for (const key of keys) {
        const issue = unstorableText(key)
        if (issue !== undefined && problems.length < maxProblems) problems.push({ path, issue: `has a key that ${issue}` })
      }
      for (let index = keys.length - 1; index >= 0; index--) {
        const key = keys[index]!
        pending.push({ value: (value as Record<string, unknown>)[key], path: [...path, key] })
      }
    }
  }
  return problems
}

/** The fields of a struct Schema (or a union of them) that the check walks; `undefined` for any other Schema (all of it). */
const walkedFields = (schema: Schema.Top): ReadonlySet<string> | undefined => {
  // A union of structs (the token grants): the fields any member has.
  if ("members" in schema && Array.isArray(schema.members)) {
    const each = (schema.members as ReadonlyArray<Schema.Top>).map(walkedFields)
    return each.every((fields) => fields !== undefined) ? new Set(each.flatMap((fields) => [...fields!])) : undefined
  }
  if (!("fields" in schema) || typeof schema.fields !== "object" || schema.fields === null) return undefined
  return new Set(
    Object.entries(schema.fields as Record<string, Schema.Top>).flatMap(([key, field]) =>
      Schema.resolveAnnotations(field)?.[DecodedSeparately] === true ? [] : [key]
    )
  )
}

/**
 * `schema`, refusing an input with unstorable text. The check is one of the Schema's checks on its
 * encoded side (a check of the flipped Schema, flipped back): it reads the input as sent, after
 * the Schema's own decoding found nothing else wrong, so that one decoding reports every other
 * problem at once and the contract's JSON Schema is unchanged.
 */
export const refusingUnstorableText = <S extends Schema.Top>(schema: S): S["Rebuild"] => {
  const walked = walkedFields(schema)
  const checked = Schema.flip(Schema.flip(schema).check(Schema.makeFilter((input: unknown) => problemsIn(input, walked))))
  // Flipped twice, the Schema has its own Type, Encoded and services: only tsc cannot see it.
  return checked as unknown as S["Rebuild"]
}
