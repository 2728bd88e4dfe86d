/**
 * The embedded answerer (src/chat/ExtractiveAnswerer.ts) as the Answerer: no model, no network.
 */
import { Layer } from "effect"
import { Answerer } from "../src/chat/Answerer.ts"
import * as ExtractiveAnswerer from "../src/chat/ExtractiveAnswerer.ts"

export const ExtractiveAnswererLive = Layer.succeed(Answerer, ExtractiveAnswerer.make)
