import { Schema } from "effect"

/**
 * An id as the contract declares it (`format: uuid`): the 8-4-4-4-12 hexadecimal shape, whatever
 * its version and variant bits, as JSON Schema's `uuid` format and Postgres's uuid type accept.
 */
export const Uuid = Schema.String.check(Schema.isGUID({ expected: "a UUID", toJsonSchema: () => ({ format: "uuid" }) }))
