/**
 * gzip or brotli for response bodies over 1 KB, when the client accepts either. The platform's
 * compression middleware chooses by the server's order of preference; this one honours the
 * client's q values (brotli first only on a tie), and sends a Content-Length.
 */
import { Effect } from "effect"
import { HttpBody, type HttpServerRequest, HttpServerResponse } from "effect/http"
import { promisify } from "node:util"
import * as zlib from "node:zlib"

const minimumBytes = 1024

const brotli = promisify(zlib.brotliCompress)
const gzip = promisify(zlib.gzip)

// Quality 4 is brotli's usual on-the-fly setting: near gzip's speed, smaller output.
const encoders = {
  br: (data: Uint8Array) => brotli(data, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 4 } }),
  gzip: (data: Uint8Array) => gzip(data, { level: 6 })
} as const

type Encoding = keyof typeof encoders

/** The preferred encoding among those the client accepts (q > 0), brotli first on a tie. */
export const negotiateEncoding = (acceptEncoding: string | undefined): Encoding | undefined => {
  if (acceptEncoding === undefined) return undefined
  let best: { encoding: Encoding; q: number } | undefined
  for (const part of acceptEncoding.split(",")) {
    const [name = "", ...params] = part.trim().toLowerCase().split(";")
    const qParam = params.map((p) => p.trim()).find((p) => p.startsWith("q="))
    const q = qParam === undefined ? 1 : Number(qParam.slice(2))
    const candidates: ReadonlyArray<Encoding> = name === "*" ? ["br", "gzip"] : name === "br" || name === "gzip" ? [name] : []
    for (const encoding of candidates) {
      if (q > 0 && (best === undefined || q > best.q)) best = { encoding, q }
    }
  }
  return best?.encoding
}

const compressible = (contentType: string | undefined) =>
  contentType !== undefined && /^(text\/|application\/(json|javascript|yaml|xml)|image\/svg)/.test(contentType)

/** `response` compressed for `request` when worth it; the response itself otherwise (no effect to run). */
export const compress = (
  request: HttpServerRequest.HttpServerRequest,
  response: HttpServerResponse.HttpServerResponse
): HttpServerResponse.HttpServerResponse | Effect.Effect<HttpServerResponse.HttpServerResponse> => {
  const body = response.body
  if (
    body._tag !== "Uint8Array" ||
    body.contentLength <= minimumBytes ||
    response.headers["content-encoding"] !== undefined ||
    !compressible(body.contentType)
  ) {
    return response
  }
  const encoding = negotiateEncoding(request.headers["accept-encoding"])
  if (encoding === undefined) return response
  return Effect.map(
    Effect.promise(() => encoders[encoding](body.body)),
    (compressed) =>
      response.pipe(
        HttpServerResponse.setBody(HttpBody.uint8Array(new Uint8Array(compressed), body.contentType)),
        HttpServerResponse.setHeaders({
          "content-encoding": encoding,
          vary: response.headers["vary"] === undefined ? "Accept-Encoding" : `${response.headers["vary"]}, Accept-Encoding`
        })
      )
  )
}
