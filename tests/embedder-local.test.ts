import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { LocalEmbedderLive } from "../layers/LocalEmbedderLive.ts"
import { Embedder } from "../src/embedding/Embedder.ts"
import { hashEmbeddingDimensions, hashEmbeddingModel, makeHashEmbedding } from "../src/embedding/HashEmbedding.ts"

const model = makeHashEmbedding()
const cosine = (a: string, b: string) => {
  const x = model.embed(a)
  const y = model.embed(b)
  let dot = 0
  for (let i = 0; i < x.length; i++) dot += x[i]! * y[i]!
  return dot
}
const norm = (vector: Float32Array) => Math.sqrt(vector.reduce((sum, value) => sum + value * value, 0))

const seeded = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

describe("the local embedder (basalt-hash-ngram-v1)", () => {
  it("names its model and size", () => {
    expect(model.model).toBe(hashEmbeddingModel)
    expect(hashEmbeddingModel).toBe("basalt-hash-ngram-v1")
    expect(model.dimensions).toBe(hashEmbeddingDimensions)
    expect(model.embed("anything")).toHaveLength(hashEmbeddingDimensions)
  })

  it("is deterministic, across calls and across instances", () => {
    const text = "Basalt indexes documents and answers questions about them."
    const first = model.embed(text)
    expect(Array.from(model.embed(text))).toEqual(Array.from(first))
    expect(Array.from(makeHashEmbedding().embed(text))).toEqual(Array.from(first))
    // A pinned value: a change here changes every stored vector and needs a new model name.
    expect(Array.from(first).reduce((sum, value, i) => sum + value * (i + 1), 0)).toBeCloseTo(-216.7433, 3)
  })

  it("gives unit-length vectors, for empty and punctuation-only text too", () => {
    for (const text of ["", "   ", "?!…", "a", "数据库", "x".repeat(10_000), "the quick brown fox ".repeat(500)]) {
      const vector = model.embed(text)
      expect(norm(vector), JSON.stringify(text.slice(0, 20))).toBeCloseTo(1, 5)
      expect(vector.every(Number.isFinite)).toBe(true)
    }
    expect(Array.from(model.embed(""))).toEqual(Array.from(model.embed("?!")))
  })

  it("puts similar texts closer than unrelated ones", () => {
    const installing = "installing the database server"
    const howTo = "how to install a database"
    const cake = "chocolate cake recipe"
    const related = cosine(installing, howTo)
    console.log(
      `local embedder: related ${related.toFixed(3)}, unrelated ${cosine(installing, cake).toFixed(3)} / ${cosine(howTo, cake).toFixed(3)}`
    )
    expect(related).toBeGreaterThan(0.5)
    expect(related - Math.max(cosine(installing, cake), cosine(howTo, cake))).toBeGreaterThan(0.4)
    expect(cosine("Configuring replication for the cluster", "cluster replication configuration")).toBeGreaterThan(
      cosine("Configuring replication for the cluster", "the weather in Paris") + 0.4
    )
  })

  it("survives typos and word forms, thanks to the character pieces", () => {
    // One word against one word: only the character pieces can match a misspelling.
    expect(cosine("databse", "database")).toBeGreaterThan(0.25)
    expect(cosine("databse", "chocolate")).toBeLessThan(0.1)
    expect(cosine("instalation", "installing")).toBeGreaterThan(cosine("instalation", "cake") + 0.2)
    const query = "postgres databse instalation guide"
    expect(cosine(query, "install the postgres database")).toBeGreaterThan(cosine(query, "bake a chocolate cake") + 0.25)
    // Suffix folding: the forms of a word are one word.
    expect(cosine("servers", "server")).toBeGreaterThan(0.7)
    expect(cosine("configured", "configuring")).toBeGreaterThan(0.6)
  })

  it("ignores case, accents and compatibility forms", () => {
    const same = (a: string, b: string) => expect(Array.from(model.embed(a))).toEqual(Array.from(model.embed(b)))
    same("Café Crème Brûlée", "cafe creme brulee")
    same("DATABASE Server", "database server")
    same("ＤＡＴＡＢＡＳＥ", "database")
    same("ﬁle", "file")
  })

  it("matches CJK text by characters and their neighbours", () => {
    expect(cosine("数据库服务器的安装", "安装数据库")).toBeGreaterThan(cosine("数据库服务器的安装", "巧克力蛋糕食谱") + 0.4)
  })

  it("tells word order apart a little, and falls back to stop words when there is nothing else", () => {
    const swapped = cosine("database server", "server database")
    expect(swapped).toBeLessThan(0.99)
    expect(swapped).toBeGreaterThan(0.7)
    expect(cosine("to be or not to be", "not to be")).toBeGreaterThan(cosine("to be or not to be", "by the way"))
  })

  it("embeds thousands of 2 KB texts a second (printed, not asserted)", async () => {
    const random = seeded(42)
    const common = (
      "search index document query server database install configure token vector embedding cluster " +
      "replication latency throughput backup restore permission tenant upload parser chunk fusion ranking " +
      "the a of to and in is for with on that by this from as be are it an can will or at which"
    ).split(" ")
    const letters = "abcdefghijklmnopqrstuvwxyz"
    // Mostly common words, and one in ten made up, as names, codes and rare terms are.
    const word = () =>
      random() < 0.1
        ? Array.from({ length: 4 + Math.floor(random() * 8) }, () => letters[Math.floor(random() * 26)]).join("")
        : common[Math.floor(random() * common.length)]!
    const textsOf = (count: number) =>
      Array.from({ length: count }, () => {
        let text = ""
        while (text.length < 2000) text += word() + (random() < 0.08 ? ". " : " ")
        return text
      })
    const embed = (batch: ReadonlyArray<string>) =>
      Effect.runPromise(Effect.flatMap(Embedder, (embedder) => embedder.embed(batch)).pipe(Effect.provide(LocalEmbedderLive)))
    // Warm the JIT on other texts, so that the made-up words measured are new to the model.
    await embed(textsOf(1000))
    const texts = textsOf(3000)
    const started = performance.now()
    const vectors = await embed(texts)
    const seconds = (performance.now() - started) / 1000
    const megabytes = texts.reduce((sum, text) => sum + text.length, 0) / 1e6
    console.log(
      `local embedder: ${texts.length} texts of ~2 KB in ${(seconds * 1000).toFixed(0)} ms: ` +
        `${(texts.length / seconds).toFixed(0)} texts/s, ${(megabytes / seconds).toFixed(1)} MB/s`
    )
    expect(vectors).toHaveLength(texts.length)
    for (const vector of vectors) expect(norm(vector)).toBeCloseTo(1, 5)
  })

  it("lets other fibers run while it embeds a big batch", async () => {
    const texts = Array.from({ length: 1000 }, (_, i) => `text number ${i} about databases and servers `.repeat(20))
    const [embeddedAt, otherRanAt] = await Effect.runPromise(
      Effect.all(
        [
          Effect.flatMap(Embedder, (embedder) => embedder.embed(texts)).pipe(Effect.map(() => performance.now())),
          Effect.sync(() => performance.now())
        ],
        { concurrency: 2 }
      ).pipe(Effect.provide(LocalEmbedderLive))
    )
    expect(otherRanAt).toBeLessThan(embeddedAt)
  })
})
