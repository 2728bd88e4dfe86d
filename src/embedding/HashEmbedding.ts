/**
 * The embedded embedding model, `basalt-hash-ngram-v1`: no download, no network, deterministic
 * (the same text gives the same vector on every machine and every run), thousands of texts a
 * second on one core.
 *
 * A text becomes features, each hashed into one of 512 dimensions with a hashed sign (so that
 * colliding features cancel out on average instead of adding up):
 *   - words, lower-cased, NFKC, accents removed, English suffixes folded (installing, installed,
 *     installs → install), English stop words dropped;
 *   - pairs of neighbouring words (word order: "database server" is not "server database");
 *   - 3- to 5-character pieces of each word with its boundaries marked (<da, dat, …, se>), which
 *     match a typo, a plural or a compound against the right word;
 *   - Han, Hiragana, Katakana and Hangul characters as words, their neighbours as pairs.
 * Counts are damped (1 + ln count) and the vector is scaled to length 1, so a dot product is the
 * cosine similarity.
 *
 * What it can do: match words and their forms, survive typos, rank lexical near-duplicates.
 * What it cannot: synonyms or paraphrase ("car" is no closer to "automobile" than to "banana"),
 * and no knowledge of what words mean. It is the offline default; a real model goes through the
 * OpenAI-compatible provider.
 */
import { englishStopWords, foldInflections } from "../search/EnglishWords.ts"

export const hashEmbeddingModel = "basalt-hash-ngram-v1"
export const hashEmbeddingDimensions = 512

/**
 * Below this cosine similarity a chunk is no match for a query. Unrelated texts are not near 0
 * with this model: the character pieces of any two texts overlap a little (the best match of a
 * query of random letters had a median of 0.14 on the test collections, and reached 0.28). At
 * 0.2, 2 to 10 of 200 such queries still find something, semantic nDCG@10 loses at most 0.013
 * and hybrid's is unchanged within noise (bench/search-tuning.ts TUNE_FLOOR; README, Search).
 */
export const hashEmbeddingMinimumSimilarity = 0.2

export interface HashEmbedding {
  readonly model: string
  readonly dimensions: number
  /** A unit-length vector of `dimensions` numbers. */
  readonly embed: (text: string) => Float32Array
}

// Weights of the three kinds of feature (a word's character pieces share one weight between them).
const wordWeight = 1
const pairWeight = 0.6
const piecesWeight = 1.3
const pieceLengths = { min: 3, max: 5 } as const

// Seeds keep a word, a pair and a piece with the same characters in different places.
const wordSeed = 0x811c9dc5
const pairSeed = 0x050c5d1f
const pieceSeed = 0x2f8d4a3b
const emptySeed = 0x6b43a9b5

/** FNV-1a over UTF-16 code units, then MurmurHash3's finaliser so that every bit is well mixed. */
const fnvStep = (hash: number, code: number) => Math.imul(hash ^ code, 0x01000193)
const finalise = (hash: number) => {
  hash ^= hash >>> 16
  hash = Math.imul(hash, 0x85ebca6b)
  hash ^= hash >>> 13
  hash = Math.imul(hash, 0xc2b2ae35)
  hash ^= hash >>> 16
  return hash >>> 0
}
const hashString = (seed: number, text: string) => {
  let hash = seed
  for (let i = 0; i < text.length; i++) hash = fnvStep(hash, text.charCodeAt(i))
  return finalise(hash)
}

const foldedSuffixes = ["ations", "ation", "ments", "ment", "ings", "ing", "ed", "ly", "er"]

const ascii = /^[^\u0080-\uffff]*$/
const combiningDiacritics = /[\u0300-\u036f]/g
/** Lower case, compatibility forms folded (NFKC: ﬁ → fi, full-width → ASCII), accents removed. */
const normalise = (text: string): string =>
  ascii.test(text)
    ? text.toLowerCase()
    : text.normalize("NFKC").toLowerCase().normalize("NFD").replace(combiningDiacritics, "").normalize("NFC")

const cjkClass = "\\p{Script=Han}\\p{Script=Hiragana}\\p{Script=Katakana}\\p{Script=Hangul}"
const wordsSource = `[${cjkClass}]|(?:(?![${cjkClass}])[\\p{L}\\p{M}\\p{N}])+`

/** What a word contributes, computed once per distinct word and remembered. */
interface WordFeatures {
  /** The hash of the folded word (installing, installed → install). */
  readonly stemHash: number
  readonly isStopWord: boolean
  /** The hashed (dimension index + 1) of each character piece, negative where the sign is minus. */
  readonly pieces: Int32Array
}

// Past this many distinct words the memo starts over rather than grow.
const memoCapacity = 100_000

export const makeHashEmbedding = (): HashEmbedding => {
  const dimensions = hashEmbeddingDimensions
  const indexMask = dimensions - 1
  const signedIndex = (hash: number) => (hash >>> 31 === 1 ? -1 : 1) * ((hash & indexMask) + 1)
  const memo = new Map<string, WordFeatures>()
  const sums = new Float64Array(dimensions)

  const featuresOf = (word: string): WordFeatures => {
    const known = memo.get(word)
    if (known !== undefined) return known
    const bounded = `<${word}>`
    const pieces: Array<number> = []
    if (word.length > 1) {
      for (let start = 0; start + pieceLengths.min <= bounded.length; start++) {
        let hash = pieceSeed
        for (let end = start; end < bounded.length && end - start < pieceLengths.max; end++) {
          hash = fnvStep(hash, bounded.charCodeAt(end))
          if (end - start + 1 >= pieceLengths.min) pieces.push(signedIndex(finalise(hash)))
        }
      }
    }
    const features = {
      stemHash: hashString(wordSeed, foldInflections(word, foldedSuffixes)),
      isStopWord: englishStopWords.has(word),
      pieces: Int32Array.from(pieces)
    }
    if (memo.size >= memoCapacity) memo.clear()
    memo.set(word, features)
    return features
  }

  const add = (hash: number, weight: number) => {
    const index = signedIndex(hash)
    sums[Math.abs(index) - 1]! += index < 0 ? -weight : weight
  }

  const embed = (text: string): Float32Array => {
    sums.fill(0)
    const words: Array<WordFeatures> = []
    const normalised = normalise(text)
    const matcher = new RegExp(wordsSource, "gu")
    for (let match = matcher.exec(normalised); match !== null; match = matcher.exec(normalised)) {
      words.push(featuresOf(match[0]))
    }
    // Stop words only count when there is nothing else ("to be or not to be").
    const content = words.some((word) => !word.isStopWord) ? words.filter((word) => !word.isStopWord) : words

    const wordCounts = new Map<WordFeatures, number>()
    const pairCounts = new Map<number, number>()
    for (let i = 0; i < content.length; i++) {
      const word = content[i]!
      wordCounts.set(word, (wordCounts.get(word) ?? 0) + 1)
      if (i > 0) {
        // The pair's hash from its two words' hashes, in order: no string is built per pair.
        const pair = finalise(fnvStep(fnvStep(pairSeed, content[i - 1]!.stemHash), word.stemHash))
        pairCounts.set(pair, (pairCounts.get(pair) ?? 0) + 1)
      }
    }
    // Words by stem (installing and installed are one word), pieces by spelling.
    const stemCounts = new Map<number, number>()
    for (const [word, count] of wordCounts) {
      stemCounts.set(word.stemHash, (stemCounts.get(word.stemHash) ?? 0) + count)
      if (word.pieces.length > 0) {
        const weight = (piecesWeight * (1 + Math.log(count))) / Math.sqrt(word.pieces.length)
        for (const index of word.pieces) sums[Math.abs(index) - 1]! += index < 0 ? -weight : weight
      }
    }
    for (const [stemHash, count] of stemCounts) add(stemHash, wordWeight * (1 + Math.log(count)))
    for (const [pair, count] of pairCounts) add(pair, pairWeight * (1 + Math.log(count)))

    let squares = 0
    for (let i = 0; i < dimensions; i++) squares += sums[i]! * sums[i]!
    if (squares === 0) {
      // No words at all (empty, or only punctuation): one fixed direction, still of length 1.
      add(hashString(emptySeed, "<empty>"), 1)
      squares = 1
    }
    const scale = 1 / Math.sqrt(squares)
    const vector = new Float32Array(dimensions)
    for (let i = 0; i < dimensions; i++) vector[i] = sums[i]! * scale
    return vector
  }

  return { model: hashEmbeddingModel, dimensions, embed }
}
