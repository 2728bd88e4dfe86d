/**
 * Files uploaded as documents. The multipart body is streamed to a directory of its own under the
 * system's temporary directory (`basalt-upload-*`; never held whole in memory), each file bounded
 * by BASALT_UPLOAD_LIMIT and the whole body by BASALT_UPLOAD_TIMEOUT. The directory is the
 * request's scope: it goes when the request ends, however it ends (answered, refused, timed out,
 * abandoned by the client or cut at shutdown). The extraction module sniffs each file's type from
 * its bytes and reads its text. Every file is read before anything is stored, and all are stored
 * in one transaction: a request with one bad file creates nothing.
 */
import { Duration, Effect, FileSystem, Path, Schema, type Scope, Stream } from "effect"
import { Multipart, type MultipartParser } from "effect/http"
import type { Caller } from "../accounts/SessionsRepo.ts"
import { AppConfig } from "../config/AppConfig.ts"
import { MalformedBody, PayloadTooLarge, RequestTimeout, UnsupportedMediaType, ValidationFailed } from "../http/ApiError.ts"
import { decodeInput } from "../http/IssueDetails.ts"
import { decodedNotUtf8, unstorableText } from "../http/StorableText.ts"
import { extractFile, truncated } from "./extraction/Extraction.ts"
import type { ExtractionError } from "./extraction/ExtractionErrors.ts"
import type { DocumentIngestion, NewDocument } from "./DocumentIngestion.ts"
import { DocumentSource, DocumentTags, DocumentVisibility, maxContentCharacters } from "./Documents.ts"
import { spoolPrefix } from "./UploadSpool.ts"
import { Uuid } from "../contract/Uuid.ts"

export const maxUploadFiles = 100

const UploadFields = Schema.Struct({
  source: Schema.optional(DocumentSource),
  tags: Schema.optional(DocumentTags),
  collection_ids: Schema.optional(Schema.Array(Uuid).check(Schema.isMaxLength(50))),
  visibility: Schema.optional(DocumentVisibility)
})

const decodeFields = decodeInput(UploadFields)

const repeatable = new Set(["tags", "collection_ids"])

const invalid = (message: string, details: ReadonlyArray<{ path: string; message: string }> = []) =>
  new ValidationFailed({ message, details: [...details] })

/** Files and form fields together: the files, and room for every field more than once. */
const maxUploadParts = maxUploadFiles + 60
const maxFieldBytes = 64 * 1024

const malformed = (reason: string) => new MalformedBody({ message: `The multipart body could not be read: ${reason}` })

const parserErrorTags = new Set(["InvalidBoundary", "BadHeaders", "InvalidDisposition", "ReachedLimit", "EndNotReached"])

const isParserError = (u: unknown): u is MultipartParser.MultipartError =>
  typeof u === "object" && u !== null && "_tag" in u && typeof u._tag === "string" && parserErrorTags.has(u._tag)

type Limit = Extract<MultipartParser.MultipartError, { readonly _tag: "ReachedLimit" }>["limit"]

/** The refusal for a limit reached, naming that limit. */
const overLimit = (limit: Limit, uploadLimitBytes: number) => {
  switch (limit) {
    case "MaxPartSize":
      return new PayloadTooLarge({ message: `A file is over the upload limit of ${uploadLimitBytes} bytes` })
    case "MaxParts":
      return new PayloadTooLarge({
        message: `The upload has more than ${maxUploadParts} parts (at most ${maxUploadFiles} files, and the form fields)`
      })
    case "MaxFieldSize":
      return new PayloadTooLarge({ message: `A form field is over the limit of ${maxFieldBytes} bytes` })
    case "MaxTotalSize":
      return new PayloadTooLarge({ message: `The upload is over the limit of ${maxTotalBytes(uploadLimitBytes)} bytes in all` })
  }
}

/** The refusal for what the parser found. */
const refusal = (error: MultipartParser.MultipartError, uploadLimitBytes: number): PayloadTooLarge | MalformedBody => {
  switch (error._tag) {
    case "ReachedLimit":
      return overLimit(error.limit, uploadLimitBytes)
    case "InvalidBoundary":
      return malformed("its Content-Type has no boundary (multipart/form-data; boundary=...)")
    case "BadHeaders":
      return malformed("the headers of a part are malformed")
    case "InvalidDisposition":
      return malformed("a part has no Content-Disposition: form-data header with a name")
    case "EndNotReached":
      return malformed("it ends before its closing boundary")
  }
}

const reasonLimits = {
  FileTooLarge: "MaxPartSize",
  TooManyParts: "MaxParts",
  FieldTooLarge: "MaxFieldSize",
  BodyTooLarge: "MaxTotalSize"
} as const satisfies Record<string, Limit>

/**
 * The refusal for a multipart error. The parser's own error is the cause of each, also when the
 * platform ends a file's stream with it and reports that as an InternalError; any other
 * InternalError (the disk, say) is the server's.
 */
const fromMultipartError =
  (uploadLimitBytes: number) =>
  (error: Multipart.MultipartError): Effect.Effect<never, PayloadTooLarge | MalformedBody> => {
    const { _tag: reason, cause } = error.reason
    if (isParserError(cause)) return Effect.fail(refusal(cause, uploadLimitBytes))
    if (reason === "InternalError") return Effect.die(error)
    return Effect.fail(reason === "Parse" ? malformed("it is not well-formed") : overLimit(reasonLimits[reason], uploadLimitBytes))
  }

/** Instead of BASALT_BODY_LIMIT, which the platform would otherwise apply to the whole body. */
const maxTotalBytes = (uploadLimitBytes: number) => uploadLimitBytes * maxUploadFiles + 1024 * 1024

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

/** A part of the form that breaks the upload's schema, refused as it arrives. */
const misplaced = (path: string, message: string) => invalid(`The request is invalid: ${path}: ${message}`, [{ path, message }])

interface SpooledFile {
  readonly name: string
  /** Where its bytes are, while the request's scope is open. */
  readonly path: string
}

interface ReceivedUpload {
  readonly files: ReadonlyArray<SpooledFile>
  /** Each field's values, in the order sent. */
  readonly fields: ReadonlyMap<string, ReadonlyArray<string>>
}

/**
 * Reads the parts: fields as text (refused when not UTF-8), each file into the request's own spool
 * directory under a name of its position (never the name the client gave). A part that does not
 * belong is refused as it arrives, before its bytes are written.
 */
const receive = (
  parts: Stream.Stream<Multipart.Part, Multipart.MultipartError | MalformedBody>
): Effect.Effect<
  ReceivedUpload,
  Multipart.MultipartError | MalformedBody | PayloadTooLarge | ValidationFailed,
  FileSystem.FileSystem | Path.Path | Scope.Scope
> =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const directory = yield* fs.makeTempDirectoryScoped({ prefix: spoolPrefix }).pipe(Effect.orDie)
    const files: Array<SpooledFile> = []
    const fields = new Map<string, Array<string>>()
    yield* Stream.runForEach(
      parts,
      (part): Effect.Effect<void, Multipart.MultipartError | MalformedBody | PayloadTooLarge | ValidationFailed> => {
        if (part.key === "") return Effect.fail(malformed("a part has no name (Content-Disposition: form-data; name=...)"))
        if (part._tag === "Field") {
          if (part.key === "files") return Effect.fail(misplaced("files", "Expected file parts"))
          const values = fields.get(part.key)
          const problem = decodedNotUtf8(part.value)
          if (problem !== undefined) {
            const path = repeatable.has(part.key) ? `${part.key}.${values?.length ?? 0}` : part.key
            return Effect.fail(misplaced(path, `The value ${problem}`))
          }
          if (values === undefined) fields.set(part.key, [part.value])
          else values.push(part.value)
          return Effect.void
        }
        if (part.key !== "files") return Effect.fail(misplaced(part.key, "Expected a field, not a file"))
        // A file input left empty: browsers send it with an empty name and no bytes.
        if (part.name === "") return Stream.runDrain(part.content)
        if (files.length === maxUploadFiles)
          return Effect.fail(new PayloadTooLarge({ message: `At most ${maxUploadFiles} files per upload` }))
        const problem = unstorableText(part.name)
        if (problem !== undefined) return Effect.fail(misplaced(`files.${files.length}`, `The file name ${problem}`))
        const file = { name: part.name, path: path.join(directory, String(files.length)) }
        files.push(file)
        // A write that fails is the server's disk, not the upload.
        return Stream.run(part.content, fs.sink(file.path)).pipe(Effect.catchTag("PlatformError", Effect.die))
      }
    )
    return { files, fields }
  })

/** The fields as the upload's Schema reads them: the repeatable ones always as lists. */
const fieldValues = (fields: ReceivedUpload["fields"]): Record<string, unknown> =>
  Object.fromEntries([...fields].map(([key, values]) => [key, repeatable.has(key) || values.length > 1 ? values : values[0]]))

export const uploadDocuments = (
  ingestion: DocumentIngestion["Service"],
  caller: Caller,
  parts: Stream.Stream<Multipart.Part, Multipart.MultipartError>
) =>
  Effect.scoped(
    Effect.gen(function* () {
      const { uploadLimitBytes, uploadTimeout } = yield* AppConfig
      const limits = Multipart.limitsServices({
        maxFileSize: uploadLimitBytes,
        maxParts: maxUploadParts,
        maxFieldSize: maxFieldBytes,
        maxTotalSize: maxTotalBytes(uploadLimitBytes)
      })
      const { files, fields } = yield* receive(
        parts.pipe(
          Stream.provideContext(limits),
          // The parser throws on a part whose headers never end before the next boundary.
          Stream.catchDefect(() => Stream.fail(malformed("the headers of a part do not end with a blank line")))
        )
      ).pipe(
        Effect.catchTag("MultipartError", fromMultipartError(uploadLimitBytes)),
        // A client that stops sending (or never sends the closing boundary) holds a connection
        // and a spool directory: the whole body gets this long.
        Effect.timeoutOrElse({
          duration: uploadTimeout,
          orElse: () =>
            Effect.fail(
              new RequestTimeout({ message: `The upload did not arrive in full within ${Duration.toSeconds(uploadTimeout)} seconds` })
            )
        })
      )
      if (files.length === 0) return yield* misplaced("files", "Send at least one file")
      const options = yield* Effect.fromResult(decodeFields(fieldValues(fields), { subject: "The upload form" }))

      const documents: Array<NewDocument> = []
      for (const [index, file] of files.entries()) {
        const extracted = yield* extractFile(file.path, file.name, { maxCharacters: maxContentCharacters }).pipe(
          Effect.mapError(fromExtractionError(index, file.name))
        )
        documents.push({
          title: truncated(extracted.title?.trim() || baseName(file.name), 500),
          content: extracted.text,
          page_starts: extracted.pageStarts ?? undefined,
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
