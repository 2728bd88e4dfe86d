/**
 * Files uploaded as documents. The multipart body is streamed to a temporary directory (never
 * held whole in memory), each file bounded by BASALT_UPLOAD_LIMIT; the directory goes when the
 * request ends, whatever happened. The extraction module sniffs each file's type from its bytes
 * and reads its text. Every file is read before anything is stored, and all are stored in one
 * transaction: a request with one bad file creates nothing.
 */
import { Effect, Schema, Stream } from "effect"
import { Multipart } from "effect/http"
import type { Caller } from "../accounts/SessionsRepo.ts"
import { AppConfig } from "../config/AppConfig.ts"
import { PayloadTooLarge, UnsupportedMediaType, ValidationFailed } from "../http/ApiError.ts"
import { issueDetails } from "./DocumentBatch.ts"
import { extractFile } from "./extraction/Extraction.ts"
import type { ExtractionError } from "./extraction/ExtractionErrors.ts"
import type { DocumentIngestion, NewDocument } from "./DocumentIngestion.ts"
import { DocumentSource, DocumentTags, DocumentVisibility, maxContentCharacters } from "./Documents.ts"
import { Uuid } from "../contract/Uuid.ts"

export const maxUploadFiles = 100

const UploadFields = Schema.Struct({
  source: Schema.optional(DocumentSource),
  tags: Schema.optional(DocumentTags),
  collection_ids: Schema.optional(Schema.Array(Uuid).check(Schema.isMaxLength(50))),
  visibility: Schema.optional(DocumentVisibility)
})

const decodeFields = Schema.decodeUnknownEffect(UploadFields, { errors: "all", onExcessProperty: "error" })

const repeatable = new Set(["tags", "collection_ids"])

const invalid = (message: string, details: ReadonlyArray<{ path: string; message: string }> = []) =>
  new ValidationFailed({ message, details: [...details] })

const fromMultipartError =
  (limit: number) =>
  (error: Multipart.MultipartError): Effect.Effect<never, PayloadTooLarge | ValidationFailed> => {
    switch (error.reason._tag) {
      case "FileTooLarge":
        return Effect.fail(new PayloadTooLarge({ message: `A file is over the upload limit of ${limit} bytes` }))
      case "BodyTooLarge":
      case "FieldTooLarge":
      case "TooManyParts":
        return Effect.fail(
          new PayloadTooLarge({ message: `The upload is too large: at most ${maxUploadFiles} files of ${limit} bytes each` })
        )
      case "Parse":
        return Effect.fail(invalid("The multipart body could not be read"))
      case "InternalError":
        return Effect.die(error)
    }
  }

const fromExtractionError = (index: number, name: string) => (error: ExtractionError) => {
  const message = `${name}: ${error.message}`
  switch (error._tag) {
    case "UnsupportedFileType":
      return new UnsupportedMediaType({ message })
    case "CorruptFile":
      return invalid(message, [{ path: `files.${index}`, message: error.reason }])
    case "ExtractionLimitExceeded":
      return error.limit === "time"
        ? invalid(message, [{ path: `files.${index}`, message: error.message }])
        : new PayloadTooLarge({ message })
  }
}

/** "notes.final.pdf" → "notes.final". */
const baseName = (name: string) => name.replace(/\.[^./\\]{1,10}$/, "").trim() || name

export const uploadDocuments = (
  ingestion: DocumentIngestion["Service"],
  caller: Caller,
  parts: Stream.Stream<Multipart.Part, Multipart.MultipartError>
) =>
  Effect.scoped(
    Effect.gen(function* () {
      const { uploadLimitBytes } = yield* AppConfig
      const limits = Multipart.limitsServices({
        maxFileSize: uploadLimitBytes,
        maxParts: maxUploadFiles + 60,
        maxFieldSize: 64 * 1024,
        // Instead of BASALT_BODY_LIMIT, which the platform would otherwise apply to the whole body.
        maxTotalSize: uploadLimitBytes * maxUploadFiles + 1024 * 1024
      })
      const persisted = yield* Multipart.toPersisted(Stream.provideContext(parts, limits)).pipe(
        Effect.catch(fromMultipartError(uploadLimitBytes))
      )

      const files: Array<Multipart.PersistedFile> = []
      const fields: Record<string, unknown> = {}
      for (const [key, value] of Object.entries(persisted)) {
        if (key === "files") {
          if (typeof value === "string" || value.some((item) => typeof item === "string")) {
            return yield* invalid("The request does not match the schema", [{ path: "files", message: "Expected file parts" }])
          }
          files.push(...(value as ReadonlyArray<Multipart.PersistedFile>))
        } else if (typeof value !== "string" && value.some((item) => typeof item !== "string")) {
          return yield* invalid("The request does not match the schema", [{ path: key, message: "Expected a field, not a file" }])
        } else {
          fields[key] = repeatable.has(key) ? (typeof value === "string" ? [value] : value) : value
        }
      }
      if (files.length === 0) {
        return yield* invalid("The request does not match the schema", [{ path: "files", message: "Send at least one file" }])
      }
      if (files.length > maxUploadFiles) {
        return yield* new PayloadTooLarge({ message: `At most ${maxUploadFiles} files per upload` })
      }
      const options = yield* decodeFields(fields).pipe(
        Effect.mapError((error) => invalid("The request does not match the schema", issueDetails(error)))
      )

      const documents: Array<NewDocument> = []
      for (const [index, file] of files.entries()) {
        const extracted = yield* extractFile(file.path, file.name, { maxCharacters: maxContentCharacters }).pipe(
          Effect.mapError(fromExtractionError(index, file.name))
        )
        documents.push({
          title: (extracted.title?.trim() || baseName(file.name)).slice(0, 500),
          content: extracted.text,
          source: options.source ?? "local",
          metadata: {
            file_name: file.name,
            media_type: extracted.mediaType,
            ...(extracted.pageCount === null ? {} : { page_count: extracted.pageCount })
          },
          tags: options.tags,
          collection_ids: options.collection_ids,
          visibility: options.visibility
        })
      }
      const ingested = yield* ingestion.ingestAll(caller, documents)
      return { items: ingested.map((one) => one.document) }
    })
  )
