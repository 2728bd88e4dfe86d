/**
 * The contract's formats read exactly as openapi.yaml states them, never more leniently: what a
 * client validated against the contract is accepted, and what the contract refuses is refused
 * (Schema's own decoders read `0x10` as 16 and roll `2020-02-30` over to March 1st).
 */
import { Schema, SchemaTransformation } from "effect"

/**
 * An integer in a query (`type: integer`; on the wire, text): decimal digits with an optional
 * minus, as JSON writes an integer; never hexadecimal, an exponent, a fraction or spaces.
 */
export const QueryInt = Schema.String.check(Schema.isPattern(/^-?[0-9]+$/, { message: "Expected an integer in decimal digits" })).pipe(
  Schema.decodeTo(Schema.Int, SchemaTransformation.numberFromString)
)

// RFC 3339's date-time (section 5.6): `T` and `Z` may be lower case; the offset is `Z` or ±hh:mm.
const rfc3339 =
  /^(?<year>\d{4})-(?<month>\d{2})-(?<day>\d{2})[Tt](?<hour>\d{2}):(?<minute>\d{2}):(?<second>\d{2})(?:\.\d+)?(?:[Zz]|[+-](?<offsetHour>\d{2}):(?<offsetMinute>\d{2}))$/

const daysIn = (year: number, month: number) =>
  month === 2 ? (year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28) : [4, 6, 9, 11].includes(month) ? 30 : 31

/**
 * Whether `text` is an RFC 3339 date-time of a real calendar date and time. A leap second (`:60`)
 * is refused: a `Date` (and Postgres) has no place for it.
 */
export const isDateTime = (text: string): boolean => {
  const fields = rfc3339.exec(text)?.groups
  if (fields === undefined) return false
  const field = (name: string) => Number(fields[name] ?? 0)
  const [year, month, day] = [field("year"), field("month"), field("day")]
  return (
    month >= 1 &&
    month <= 12 &&
    day >= 1 &&
    day <= daysIn(year, month) &&
    field("hour") <= 23 &&
    field("minute") <= 59 &&
    field("second") <= 59 &&
    field("offsetHour") <= 23 &&
    field("offsetMinute") <= 59
  )
}

/** `format: date-time`: RFC 3339 text on the wire, a `Date` in the program. */
export const DateTime = Schema.String.check(
  Schema.makeFilter((text: string) => isDateTime(text) || "Expected an RFC 3339 date-time of a real date, such as 2024-05-01T12:00:00Z")
).pipe(
  Schema.decodeTo(
    Schema.Date,
    SchemaTransformation.transform({
      // Upper case: JavaScript's date parser reads RFC 3339 only with `T` and `Z`.
      decode: (text) => new Date(text.toUpperCase()),
      encode: (date) => date.toISOString()
    })
  )
)

/**
 * `format: email` as JSON Schema validators check it: ajv-formats' `email` (its full mode, the
 * default), which is what a client generated from the contract or validating against it accepts.
 */
export const emailPattern =
  /^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/i
