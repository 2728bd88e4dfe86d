/**
 * Text fields as openapi.yaml bounds them. JSON Schema counts a string's length in code points
 * (an emoji is one character) where JavaScript counts UTF-16 units (an emoji is two), and it
 * checks the text as sent, before the server trims it: so the bounds here count code points, on
 * the raw text, and a trimmed field is trimmed only after them. Then what a client validated
 * against the contract is accepted, and what the contract refuses is refused.
 */
import { Schema, SchemaTransformation } from "effect"

const codePoints = (text: string) => {
  let count = 0
  for (const _ of text) count++
  return count
}

/** At most `maxLength` characters (code points); worded like Schema's own length checks. */
export const isMaxCharacters = (maxLength: number) =>
  Schema.makeFilter((text: string) => text.length <= maxLength || codePoints(text) <= maxLength, {
    expected: `at most ${maxLength} characters`,
    representation: { id: "effect/schema/isMaxLength", payload: { maxLength } }
  })

/** At least `minLength` characters (code points). */
export const isMinCharacters = (minLength: number) =>
  Schema.makeFilter((text: string) => codePoints(text) >= minLength, {
    expected: `at least ${minLength} characters`,
    representation: { id: "effect/schema/isMinLength", payload: { minLength } }
  })

/** The contract's `pattern: "\\S"`: not only spaces (empty text is left to the length check, to be named once). */
export const isNotBlank = Schema.makeFilter(
  (text: string) => text === "" || /\S/.test(text) || "Expected at least one character that is not a space"
)

interface Bounds {
  readonly minLength?: number
  readonly maxLength: number
}

/** `type: string` with `minLength` and `maxLength`. */
export const Text = ({ minLength, maxLength }: Bounds) =>
  minLength === undefined
    ? Schema.String.check(isMaxCharacters(maxLength))
    : Schema.String.check(isMinCharacters(minLength), isMaxCharacters(maxLength))

/** Text bounded as sent, then trimmed: `" HR "` is `"HR"`. With a `minLength`, also `pattern: "\\S"`. */
export const TrimmedText = (bounds: Bounds) =>
  (bounds.minLength === undefined ? Text(bounds) : Text(bounds).check(isNotBlank)).pipe(
    Schema.decodeTo(Schema.Trimmed, SchemaTransformation.trim())
  )
