/**
 * A Redocly plugin that teaches the linter one field of OpenAPI 3.2 that openapi.yaml (3.1)
 * uses: a Media Type's `itemSchema`, the schema of each event of the `text/event-stream` of GET
 * /api/v1/documents/events. Tools of 3.1 ignore the field; without this the linter's `struct`
 * rule refuses it, and with it the linter checks the field as the schema it is instead of
 * skipping it.
 */
export default function openApiItemSchema() {
  return {
    id: "openapi-item-schema",
    typeExtension: {
      oas3: (types) => ({
        ...types,
        MediaType: { ...types.MediaType, properties: { ...types.MediaType.properties, itemSchema: "Schema" } }
      })
    }
  }
}
