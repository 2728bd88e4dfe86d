import { describe, expect, it } from "vitest"
import { type Chunk, type ChunkerOptions, chunkDocument, countTokens } from "../src/indexing/Chunker.ts"

/** A small seeded generator, so that every run chunks the same text. */
const seeded = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const vocabulary = (
  "search index document query server database install configure token vector embedding cluster " +
  "the a of to and in is for with on that by this from as be are it an can will or at which " +
  "replication latency throughput backup restore permission tenant upload parser chunk fusion ranking"
).split(" ")

const sentence = (random: () => number) => {
  const length = 6 + Math.floor(random() * 14)
  const words = Array.from({ length }, () => vocabulary[Math.floor(random() * vocabulary.length)]!)
  words[0] = words[0]![0]!.toUpperCase() + words[0]!.slice(1)
  return words.join(" ") + "."
}

const paragraph = (random: () => number, sentences: number) => Array.from({ length: sentences }, () => sentence(random)).join(" ")

/** Properties every chunking must have, whatever the text. */
const expectWellFormed = (text: string, chunks: ReadonlyArray<Chunk>, options: ChunkerOptions = {}) => {
  const target = options.targetTokens ?? 512
  chunks.forEach((chunk, i) => {
    expect(chunk.ordinal).toBe(i)
    expect(text.slice(chunk.start, chunk.end)).toBe(chunk.text)
    expect(chunk.text.trim()).toBe(chunk.text)
    expect(chunk.text.length).toBeGreaterThan(0)
    expect(chunk.tokenCount).toBe(countTokens(chunk.text))
    expect(chunk.tokenCount).toBeGreaterThan(0)
    expect(chunk.tokenCount).toBeLessThanOrEqual(target)
    expect(chunk.contextualText.endsWith(chunk.text.replace(/\r\n?/g, "\n"))).toBe(true)
    if (i > 0) {
      expect(chunk.start).toBeGreaterThan(chunks[i - 1]!.start)
      expect(chunk.end).toBeGreaterThan(chunks[i - 1]!.end)
    }
  })
  // Nothing visible is lost: every non-space character is in some chunk.
  const covered = new Uint8Array(text.length)
  for (const chunk of chunks) covered.fill(1, chunk.start, chunk.end)
  for (let i = 0; i < text.length; i++) {
    if (covered[i] === 0 && /\S/.test(text[i]!)) {
      throw new Error(`character ${i} (${JSON.stringify(text.slice(i, i + 20))}) is in no chunk`)
    }
  }
}

/** Whether every chunk starts and ends at a word boundary (whitespace or the ends of the text). */
const cutsOnlyBetweenWords = (text: string, chunks: ReadonlyArray<Chunk>) =>
  chunks.every(
    (chunk) => (chunk.start === 0 || /\s/.test(text[chunk.start - 1]!)) && (chunk.end === text.length || /\s/.test(text[chunk.end]!))
  )

describe("countTokens", () => {
  it("counts words, numbers, punctuation and CJK characters, and nothing for whitespace", () => {
    expect(countTokens("")).toBe(0)
    expect(countTokens(" \t\r\n ")).toBe(0)
    expect(countTokens("hello world")).toBe(2)
    expect(countTokens("hello, world!")).toBe(4)
    // Digits in groups of three, as BPE tokenizers split numbers.
    expect(countTokens("1234567")).toBe(3)
    expect(countTokens("数据库")).toBe(3)
    // Long unusual words cost more than common short ones.
    expect(countTokens("internationalization")).toBeGreaterThan(countTokens("install"))
  })

  it("is additive across whitespace", () => {
    const random = seeded(7)
    for (let i = 0; i < 50; i++) {
      const a = paragraph(random, 3)
      const b = paragraph(random, 2)
      expect(countTokens(`${a}\n\n${b}`)).toBe(countTokens(a) + countTokens(b))
    }
  })

  it("gives English prose a plausible 3 to 6 characters per token", () => {
    const text =
      "Basalt is an enterprise search API. It indexes documents, splits them into passages and ranks " +
      "them with full text search and vector similarity, then fuses the two rankings. Administrators " +
      "manage users, roles and API keys; every change is written to an audit log that can be filtered."
    const ratio = text.length / countTokens(text)
    console.log(`countTokens: ${ratio.toFixed(2)} characters per token on English prose`)
    expect(ratio).toBeGreaterThan(3)
    expect(ratio).toBeLessThan(6)
  })
})

describe("chunkDocument", () => {
  it("gives no chunks for a document with no visible text", () => {
    expect(chunkDocument({ title: "Empty", text: "" })).toEqual([])
    expect(chunkDocument({ title: "Blank", text: "  \r\n\n\t \n" })).toEqual([])
  })

  it("keeps a short document whole, with its title and text in contextualText", () => {
    const text = "Basalt answers questions about your documents.\n\nIt runs anywhere."
    const chunks = chunkDocument({ title: "About", text })
    expect(chunks).toHaveLength(1)
    expect(chunks[0]).toMatchObject({ ordinal: 0, start: 0, end: text.length, text, headingPath: [] })
    expect(chunks[0]!.contextualText).toBe(`About\n\n${text}`)
  })

  it("is deterministic", () => {
    const random = seeded(1)
    const text = Array.from({ length: 60 }, (_, i) => (i % 7 === 0 ? `## Part ${i}\n\n` : "") + paragraph(random, 4)).join("\n\n")
    const first = chunkDocument({ title: "Doc", text }, { targetTokens: 128, overlapTokens: 16 })
    const second = chunkDocument({ title: "Doc", text }, { targetTokens: 128, overlapTokens: 16 })
    expect(first.length).toBeGreaterThan(5)
    expect(second).toEqual(first)
  })

  it("fills chunks to the target, never beyond, and balances the last one", () => {
    const random = seeded(2)
    const text = Array.from({ length: 120 }, () => paragraph(random, 1 + Math.floor(random() * 6))).join("\n\n")
    for (const options of [{}, { targetTokens: 256, overlapTokens: 32 }, { targetTokens: 64, overlapTokens: 0 }]) {
      const chunks = chunkDocument({ title: "Prose", text }, options)
      expectWellFormed(text, chunks, options)
      expect(cutsOnlyBetweenWords(text, chunks)).toBe(true)
      const target = options.targetTokens ?? 512
      const overlap = options.overlapTokens ?? 64
      expect(chunks.length).toBeGreaterThanOrEqual(Math.ceil(countTokens(text) / target))
      // Chunks take a fair share of the text: none is a scrap, the last one included.
      for (const chunk of chunks) expect(chunk.tokenCount).toBeGreaterThanOrEqual((target - overlap) / 4)
    }
  })

  it("cuts at paragraph ends, then sentence ends, before it cuts between words", () => {
    const random = seeded(3)
    const text = Array.from({ length: 40 }, () => paragraph(random, 3)).join("\n\n")
    const chunks = chunkDocument({ title: "Prose", text }, { targetTokens: 200, overlapTokens: 0 })
    expect(chunks.length).toBeGreaterThan(3)
    // Paragraphs are far shorter than a chunk: every cut falls between two of them.
    for (const chunk of chunks.slice(0, -1)) expect(text.slice(chunk.end, chunk.end + 2)).toBe("\n\n")

    const oneParagraph = paragraph(random, 80)
    const sentenceCut = chunkDocument({ title: "Prose", text: oneParagraph }, { targetTokens: 200, overlapTokens: 0 })
    expect(sentenceCut.length).toBeGreaterThan(3)
    for (const chunk of sentenceCut) {
      expect(chunk.text.endsWith(".")).toBe(true)
      expect(chunk.text[0]).toMatch(/[A-Z]/)
    }
  })

  it("takes a line break inside hard-wrapped prose for a space, and a row end in csv for a break", () => {
    const random = seeded(11)
    const prose = paragraph(random, 120)
    // Wrapped at 72 columns, as markdown sources and text extracted from pdf often are.
    const wrapped = prose.replace(/(.{1,72})(?: |$)/g, "$1\n").trim()
    const options = { targetTokens: 150, overlapTokens: 20 }
    const chunks = chunkDocument({ title: "Wrapped", text: wrapped }, options)
    expectWellFormed(wrapped, chunks, options)
    expect(chunks.length).toBeGreaterThan(5)
    for (const chunk of chunks) expect(chunk.text.at(-1)).toBe(".")
    const noOverlap = { targetTokens: 150, overlapTokens: 0 }
    for (const chunk of chunkDocument({ title: "Wrapped", text: wrapped }, noOverlap)) {
      expect(chunk.text[0]).toMatch(/[A-Z]/)
      expect(chunk.text.at(-1)).toBe(".")
    }

    const csv = ["id,name,role,team,city"]
      .concat(Array.from({ length: 400 }, (_, i) => `${i},user ${i},${vocabulary[i % vocabulary.length]},team ${i % 7},city ${i % 13}`))
      .join("\r\n")
    const rows = chunkDocument({ title: "people.csv", text: csv }, options)
    expectWellFormed(csv, rows, options)
    expect(rows.length).toBeGreaterThan(5)
    for (const chunk of rows) {
      expect(chunk.start === 0 || csv[chunk.start - 1] === "\n").toBe(true)
      expect(chunk.end === csv.length || csv[chunk.end] === "\r").toBe(true)
    }
  })

  it("repeats the end of the previous chunk when it continues a section", () => {
    const random = seeded(4)
    const text = paragraph(random, 200)
    const options = { targetTokens: 256, overlapTokens: 48 }
    const chunks = chunkDocument({ title: "Prose", text }, options)
    expectWellFormed(text, chunks, options)
    expect(chunks.length).toBeGreaterThan(5)
    for (let i = 1; i < chunks.length; i++) {
      const previous = chunks[i - 1]!
      const chunk = chunks[i]!
      expect(chunk.start).toBeLessThan(previous.end)
      const shared = countTokens(text.slice(chunk.start, previous.end))
      expect(shared).toBeGreaterThan(0)
      expect(shared).toBeLessThanOrEqual(options.overlapTokens)
      // Snapped to a sentence start when one is near (sentences are 6 to 20 words here).
      expect(chunk.text[0]).toMatch(/[A-Z]/)
    }
    const withoutOverlap = chunkDocument({ title: "Prose", text }, { targetTokens: 256, overlapTokens: 0 })
    for (let i = 1; i < withoutOverlap.length; i++) {
      expect(withoutOverlap[i]!.start).toBeGreaterThanOrEqual(withoutOverlap[i - 1]!.end)
    }
  })

  it("records the heading path, keeps a heading with its text, and does not overlap across headings", () => {
    const random = seeded(5)
    const text = [
      "# Guide",
      paragraph(random, 2),
      "## Install",
      "### Linux",
      paragraph(random, 30),
      "### macOS",
      paragraph(random, 30),
      "## Usage",
      paragraph(random, 3),
      "# Appendix",
      paragraph(random, 2)
    ].join("\n\n")
    const options = { targetTokens: 160, overlapTokens: 24 }
    const chunks = chunkDocument({ title: "Manual", text }, options)
    expectWellFormed(text, chunks, options)

    const pathsOf = (marker: string) => chunks.filter((chunk) => chunk.text.includes(marker)).map((chunk) => chunk.headingPath)
    expect(pathsOf("### Linux")).toEqual([["Guide", "Install", "Linux"]])
    expect(pathsOf("### macOS")).toEqual([["Guide", "Install", "macOS"]])
    // "## Install" has no text of its own: it stays with "### Linux" and what follows.
    const install = chunks.find((chunk) => chunk.text.includes("## Install"))!
    expect(install.text.startsWith("## Install\n\n### Linux\n\n")).toBe(true)
    expect(install.tokenCount).toBeGreaterThan(60)

    const linuxBody = chunks.filter((chunk) => chunk.start > text.indexOf("### Linux") && chunk.end < text.indexOf("### macOS"))
    expect(linuxBody.length).toBeGreaterThan(1)
    for (const chunk of linuxBody) expect(chunk.headingPath).toEqual(["Guide", "Install", "Linux"])
    expect(linuxBody[0]!.contextualText.startsWith("Manual\nGuide > Install > Linux\n\n")).toBe(true)

    for (const chunk of chunks) {
      // A chunk never ends on a heading line, and one that starts at a heading repeats nothing.
      expect(chunk.text.split("\n").at(-1)).not.toMatch(/^#/)
      if (chunk.text.startsWith("#") && chunk.ordinal > 0) {
        expect(chunk.start).toBeGreaterThanOrEqual(chunks[chunk.ordinal - 1]!.end)
      }
    }
    // Small neighbouring sections share a chunk, under the path they have in common.
    const tail = chunks.at(-1)!
    expect(tail.text.startsWith("## Usage")).toBe(true)
    expect(tail.text).toContain("# Appendix")
    expect(tail.headingPath).toEqual([])
  })

  it("follows heading levels up and down, and reads setext headings", () => {
    const text = [
      "Overview",
      "========",
      "",
      "What it is.",
      "",
      "Details",
      "-------",
      "",
      "How it works.",
      "",
      "#### Deep",
      "",
      "Deep text.",
      "",
      "## Closing ##",
      "",
      "The end."
    ].join("\n")
    const chunks = chunkDocument({ title: "T", text }, { targetTokens: 8, overlapTokens: 0 })
    expectWellFormed(text, chunks, { targetTokens: 8 })
    const pathOf = (marker: string) => chunks.find((chunk) => chunk.text.includes(marker))!.headingPath
    expect(pathOf("What it is")).toEqual(["Overview"])
    expect(pathOf("How it works")).toEqual(["Overview", "Details"])
    expect(pathOf("Deep text")).toEqual(["Overview", "Details", "Deep"])
    expect(pathOf("The end")).toEqual(["Overview", "Closing"])
  })

  it("does not take # lines inside code fences for headings", () => {
    const text = [
      "# Setup",
      "",
      "Run this:",
      "",
      "```bash",
      "# Install dependencies",
      "apt-get install basalt",
      "## not a heading either",
      "```",
      "",
      "~~~",
      "# Tilde fence comment",
      "~~~",
      "",
      "After the code."
    ].join("\n")
    const chunks = chunkDocument({ title: "T", text }, { targetTokens: 8, overlapTokens: 0 })
    expectWellFormed(text, chunks, { targetTokens: 8 })
    expect(chunks.length).toBeGreaterThan(3)
    for (const chunk of chunks) expect(chunk.headingPath).toEqual(["Setup"])
    const whole = chunkDocument({ title: "T", text })
    expect(whole).toHaveLength(1)
    expect(whole[0]!.headingPath).toEqual(["Setup"])
  })

  it("cuts a long code block at its blank lines before its other lines", () => {
    const group = (g: number) =>
      Array.from({ length: 10 }, (_, i) => `  const value${g}_${i} = compute(${g}, ${i}) // step ${i}`).join("\n")
    const text = "# Code\n\n```ts\n" + Array.from({ length: 12 }, (_, g) => group(g)).join("\n\n") + "\n```"
    const options = { targetTokens: 200, overlapTokens: 0 }
    const chunks = chunkDocument({ title: "T", text }, options)
    expectWellFormed(text, chunks, options)
    expect(chunks.length).toBeGreaterThan(4)
    for (const chunk of chunks.slice(0, -1)) expect(text.slice(chunk.end, chunk.end + 2)).toBe("\n\n")
  })

  it("reads Windows line endings like Unix ones", () => {
    const random = seeded(6)
    const unix = [
      "# One",
      paragraph(random, 12),
      "## Two",
      "```",
      "# code",
      "```",
      paragraph(random, 12),
      "Three",
      "=====",
      paragraph(random, 12)
    ].join("\n\n")
    const windows = unix.replace(/\n/g, "\r\n")
    const options = { targetTokens: 64, overlapTokens: 8 }
    const fromUnix = chunkDocument({ title: "T", text: unix }, options)
    const fromWindows = chunkDocument({ title: "T", text: windows }, options)
    expectWellFormed(windows, fromWindows, options)
    expect(fromWindows.map((chunk) => chunk.headingPath)).toEqual(fromUnix.map((chunk) => chunk.headingPath))
    expect(fromWindows.map((chunk) => chunk.tokenCount)).toEqual(fromUnix.map((chunk) => chunk.tokenCount))
    expect(fromWindows.map((chunk) => chunk.contextualText)).toEqual(fromUnix.map((chunk) => chunk.contextualText))
    for (const chunk of fromWindows) expect(chunk.headingPath.join("")).not.toContain("\r")
  })

  it("cuts one enormous paragraph without punctuation between words", () => {
    const random = seeded(8)
    const text = Array.from({ length: 30_000 }, () => vocabulary[Math.floor(random() * vocabulary.length)]).join(" ")
    const chunks = chunkDocument({ title: "Wall", text })
    expectWellFormed(text, chunks)
    expect(chunks.length).toBeGreaterThan(40)
    expect(cutsOnlyBetweenWords(text, chunks)).toBe(true)
  })

  it("keeps long URLs whole, and cuts a base64 blob bigger than a chunk into pieces within the limit", () => {
    const random = seeded(9)
    const url = "https://docs.example.com/" + Array.from({ length: 12 }, (_, i) => `segment-${i}`).join("/") + "?q=1"
    const text = `${paragraph(random, 10)} See ${url} for details. ${paragraph(random, 10)}`
    const options = { targetTokens: 128, overlapTokens: 16 }
    const chunks = chunkDocument({ title: "Links", text }, options)
    expectWellFormed(text, chunks, options)
    expect(chunks.some((chunk) => chunk.text.includes(url))).toBe(true)
    expect(cutsOnlyBetweenWords(text, chunks)).toBe(true)

    const blob = Buffer.from(Array.from({ length: 60_000 }, (_, i) => (i * 7919 + 13) % 256)).toString("base64")
    const attachment = `Attachment follows.\n\n${blob}\n\nEnd of attachment.`
    const pieces = chunkDocument({ title: "Blob", text: attachment }, options)
    expectWellFormed(attachment, pieces, options)
    expect(pieces.length).toBeGreaterThan(10)
    // A single 80 KB "word" of hex, no punctuation at all.
    const hex = Buffer.from(Array.from({ length: 40_000 }, (_, i) => (i * 31 + 7) % 256)).toString("hex")
    expectWellFormed(hex, chunkDocument({ title: "Hex", text: hex }, options), options)
  })

  it("cuts CJK text without spaces between characters, preferring sentence ends", () => {
    const chinese = "数据库服务器的安装需要几个步骤。首先下载安装包，然后运行安装程序！最后检查配置文件是否正确？".repeat(60)
    const options = { targetTokens: 100, overlapTokens: 10 }
    const chunks = chunkDocument({ title: "安装", text: chinese }, options)
    expectWellFormed(chinese, chunks, options)
    expect(chunks.length).toBeGreaterThan(20)
    for (const chunk of chunks) expect(chunk.text.at(-1)).toMatch(/[。！？]/)

    const japanese = "検索エンジンは文書を索引します。ベクトル検索と全文検索を組み合わせます。".repeat(80)
    const japaneseChunks = chunkDocument({ title: "検索", text: japanese }, options)
    expectWellFormed(japanese, japaneseChunks, options)
    for (const chunk of japaneseChunks) expect(chunk.text.at(-1)).toBe("。")
  })

  it("handles mixed scripts, emoji and astral characters without splitting a code point", () => {
    const text = "Basalt 支持中文搜索 and English 😀🚀 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 text. ".repeat(300)
    const options = { targetTokens: 32, overlapTokens: 4 }
    const chunks = chunkDocument({ title: "Mixed", text }, options)
    expectWellFormed(text, chunks, options)
    const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/
    for (const chunk of chunks) expect(chunk.text).not.toMatch(loneSurrogate)
  })

  it("holds its invariants on random documents of every kind of line", () => {
    const random = seeded(12)
    const pick = <A>(items: ReadonlyArray<A>) => items[Math.floor(random() * items.length)]!
    const fragments: ReadonlyArray<() => string> = [
      () => `${"#".repeat(1 + Math.floor(random() * 6))} ${sentence(random)}`,
      () => paragraph(random, 1 + Math.floor(random() * 8)),
      () => "```\n# comment\n" + paragraph(random, 2) + "\n```",
      () => "~~~~\n" + paragraph(random, 1),
      () => `- ${sentence(random)}\n- ${sentence(random)}\n  1. ${sentence(random)}`,
      () => `| a | b |\n|---|---|\n| ${sentence(random)} | 1 |`,
      () => "数据库服务器。".repeat(1 + Math.floor(random() * 40)),
      () => "x".repeat(Math.floor(random() * 3000)),
      () => `${sentence(random)}\n${"=".repeat(1 + Math.floor(random() * 5))}`,
      () => "😀".repeat(Math.floor(random() * 200)),
      () => "   ",
      () => "---"
    ]
    const separators = ["\n", "\n\n", "\r\n", "\r\n\r\n", " ", "\n\n\n"]
    for (let round = 0; round < 150; round++) {
      const text = Array.from({ length: 1 + Math.floor(random() * 30) }, () => pick(fragments)())
        .map((fragment) => fragment + pick(separators))
        .join("")
      const target = 8 + Math.floor(random() * 300)
      const options = { targetTokens: target, overlapTokens: Math.floor(random() * (target / 2)) }
      const chunks = chunkDocument({ title: "Random", text }, options)
      expectWellFormed(text, chunks, options)
      expect(chunkDocument({ title: "Random", text }, options)).toEqual(chunks)
    }
  })

  it("rejects options that make no sense", () => {
    const document = { title: "T", text: "text" }
    expect(() => chunkDocument(document, { targetTokens: 4 })).toThrow(RangeError)
    expect(() => chunkDocument(document, { targetTokens: 100, overlapTokens: 60 })).toThrow(RangeError)
    expect(() => chunkDocument(document, { overlapTokens: -1 })).toThrow(RangeError)
  })

  it("chunks a megabyte of markdown in well under a second", () => {
    const random = seeded(10)
    const parts: Array<string> = []
    let length = 0
    for (let i = 0; length < 1_000_000; i++) {
      const part =
        i % 25 === 0
          ? `## Section ${i}\n\n`
          : i % 11 === 0
            ? "```ts\nconst x = 1 // # not a heading\n```\n\n"
            : paragraph(random, 1 + (i % 7)) + "\n\n"
      parts.push(part)
      length += part.length
    }
    const text = parts.join("")
    chunkDocument({ title: "Warm-up", text: text.slice(0, 100_000) })
    const started = performance.now()
    const chunks = chunkDocument({ title: "Big", text })
    const elapsed = performance.now() - started
    console.log(
      `chunker: ${(text.length / 1e6).toFixed(2)} MB, ${countTokens(text)} tokens -> ${chunks.length} chunks ` +
        `in ${elapsed.toFixed(0)} ms (${(text.length / 1e6 / (elapsed / 1000)).toFixed(1)} MB/s)`
    )
    expectWellFormed(text, chunks)
  })
})
