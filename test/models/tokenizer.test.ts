import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { beforeAll, describe, expect, it } from "vitest"
import type { HostTensor } from "../../src/models/safetensors.ts"
import {
  buildUnigramTokenizerJson,
  extendEmbeddingRows,
  llama3TokenizerFiles,
  llama3TokenizerJsonPath,
  loadTokenizer,
  reservedTokens,
  type TextTokenizer,
  tokenizerFromJson,
  unigramTokenizerConfig,
  writeTokenizerFiles
} from "../../src/models/tokenizer.ts"
import { skipFor } from "../support/envGate.ts"

const repoRoot = path.resolve(import.meta.dirname, "../..")
const dataDir = path.resolve(repoRoot, "../shared/data/km-en")
const hasData = !skipFor(
  "shared-data",
  fs.existsSync(path.join(dataDir, "mixed_real_pairs.en-km.tsv")) ? undefined : `${dataDir} is absent: the tests on real Khmer–English text skip`
)

const run = <A, E>(eff: Effect.Effect<A, E>) => Effect.runPromise(eff)
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "llink-tok-"))

describe("reserved tokens", () => {
  it("are <foreign>, </foreign>, <foreign_emb> then one <f_i> per slot", () => {
    expect(reservedTokens(3)).toEqual(["<foreign>", "</foreign>", "<foreign_emb>", "<f0>", "<f1>", "<f2>"])
    expect(reservedTokens(8)).toHaveLength(11)
    expect(reservedTokens(0)).toEqual(["<foreign>", "</foreign>", "<foreign_emb>"])
  })
})

describe("Llama-3 tokenizer (bundled)", () => {
  let plain: TextTokenizer
  let withReserved: TextTokenizer
  beforeAll(async () => {
    plain = await run(loadTokenizer("llama3"))
    withReserved = await run(loadTokenizer("llama3", { addedTokens: reservedTokens(8) }))
  })

  it("encodes known ids, with BOS 128000 prepended only with special tokens", () => {
    expect(plain.encode("Hello world")).toEqual([128000, 9906, 1917])
    expect(plain.encode("Hello world", { addSpecialTokens: false })).toEqual([9906, 1917])
    expect(plain.encode("")).toEqual([128000])
    expect(plain.baseVocabSize).toBe(128256)
    expect(plain.vocabSize).toBe(128256)
    expect(plain.bosId).toBe(128000)
    expect(plain.eosId).toBe(128009) // Instruct: <|eot_id|>
    expect(plain.padId).toBeUndefined()
    expect(plain.tokenToId("<|end_of_text|>")).toBe(128001)
    expect(plain.tokenToId("<|eom_id|>")).toBe(128008)
    expect(plain.tokenToId("<|eot_id|>")).toBe(128009)
    expect(plain.tokenToId("<|start_header_id|>")).toBe(128006)
    expect(plain.decode([128000, 9906, 1917])).toBe("<|begin_of_text|>Hello world")
    expect(plain.decode([128000, 9906, 1917], { skipSpecialTokens: true })).toBe("Hello world")
    expect(plain.decode([])).toBe("")
    // transformers' clean-up (on by default in Llama-3's tokenizer_config) removes the space before "!".
    const bang = plain.encode("Yes !", { addSpecialTokens: false })
    expect(plain.decode(bang)).toBe("Yes!")
    expect(plain.decode(bang, { cleanUpTokenizationSpaces: false })).toBe("Yes !")
    expect(() => plain.decode([128256])).toThrow(RangeError)
  })

  it("the tokenizer.json path gives the same tokenizer as the special value", async () => {
    expect(fs.statSync(llama3TokenizerJsonPath()).isFile()).toBe(true)
    const byPath = await run(loadTokenizer(llama3TokenizerJsonPath()))
    expect(byPath.encode("Hello world")).toEqual([128000, 9906, 1917])
  })

  it("written into a snapshot folder, the adjusted files load as the same tokenizer", async () => {
    const dir = tmp()
    const files = llama3TokenizerFiles()
    await run(writeTokenizerFiles(dir, files.tokenizer, files.config))
    const t = await run(loadTokenizer(dir, { addedTokens: reservedTokens(8) }))
    const text = "Translate: <foreign><f0><f7></foreign> សួស្តី Hello world"
    expect(t.encode(text)).toEqual(withReserved.encode(text))
    expect([t.bosId, t.eosId, t.vocabSize]).toEqual([128000, 128009, 128267])
  })

  it("added tokens get ids after the base vocabulary and are never split", () => {
    expect(withReserved.baseVocabSize).toBe(128256)
    expect(withReserved.vocabSize).toBe(128256 + 11)
    const expectedIds = reservedTokens(8).map((_, i) => 128256 + i)
    expect(withReserved.addedTokenIds).toEqual(expectedIds)
    expect(reservedTokens(8).map((t) => withReserved.tokenToId(t))).toEqual(expectedIds)
    // Base ids are unchanged by the additions.
    expect(withReserved.encode("Hello world")).toEqual([128000, 9906, 1917])

    const prompt = "Instruction: Translate.\nForeign: <foreign><f0> <f1> <f2><f3><f4> <f5> <f6> <f7></foreign>\nAnswer in English only."
    const ids = withReserved.encode(prompt)
    for (const t of reservedTokens(8).filter((t) => t !== "<foreign_emb>")) {
      expect(ids.filter((id) => id === withReserved.tokenToId(t)), t).toHaveLength(1)
    }
    // The same text through the base tokenizer splits them into several pieces.
    expect(plain.encode(prompt).length).toBeGreaterThan(ids.length + 11)
    expect(withReserved.decode(ids)).toBe(`<|begin_of_text|>${prompt}`)
    expect(withReserved.decode(ids, { skipSpecialTokens: true })).not.toContain("<f0>")
    // Adjacent to letters, inside words: still atomic. `<f10>` is not a reserved token and is split.
    const glued = withReserved.encode("x<foreign_emb>y<f10>", { addSpecialTokens: false })
    expect(glued).toContain(128258)
    expect(glued.filter((id) => id >= 128256)).toEqual([128258])
  })

  it("a token already in the vocabulary keeps its id", async () => {
    const t = await run(loadTokenizer("llama3", { addedTokens: ["<|eot_id|>", "<foreign>"] }))
    expect(t.addedTokenIds).toEqual([128009, 128256])
    expect(t.vocabSize).toBe(128257)
  })

  it.skipIf(!hasData)("Khmer costs far more tokens per character than English (real text)", () => {
    const lines = fs.readFileSync(path.join(dataDir, "mixed_real_pairs.en-km.tsv"), "utf8").split("\n").slice(0, 200)
    let en = 0
    let km = 0
    let enChars = 0
    let kmChars = 0
    for (const line of lines) {
      const [e, k] = line.split("\t")
      if (e === undefined || k === undefined) continue
      en += plain.encode(e, { addSpecialTokens: false }).length
      km += plain.encode(k, { addSpecialTokens: false }).length
      enChars += e.length
      kmChars += k.length
      expect(plain.decode(plain.encode(k), { skipSpecialTokens: true, cleanUpTokenizationSpaces: false })).toBe(k)
    }
    expect(km / kmChars).toBeGreaterThan(1)
    expect(en / enChars).toBeLessThan(0.4)
  })
})

const KM_EN = [
  "សួស្តី ពិភពលោក",
  "Hello world",
  "ខ្ញុំចូលចិត្តអានសៀវភៅ",
  "I like reading books.",
  "ភ្នំពេញ គឺជារាជធានីនៃប្រទេសកម្ពុជា",
  "Phnom Penh is the capital of Cambodia.",
  "ព្រះរាជាណាចក្រកម្ពុជា",
  "The Kingdom of Cambodia",
  "ថ្ងៃនេះអាកាសធាតុល្អណាស់",
  "The weather is very good today.",
  "អរគុណច្រើន",
  "Thank you very much.",
  "ខ្ញុំរស់នៅភ្នំពេញ ហើយខ្ញុំចូលចិត្តសៀវភៅ",
  "I live in Phnom Penh and I like books."
]

describe("tiny Unigram tokenizer (XLM-R style)", () => {
  const vocabSize = 160
  let json: { model: { vocab: Array<[string, number]>; unk_id: number }; added_tokens: Array<{ id: number; content: string }> }
  let tok: TextTokenizer
  beforeAll(() => {
    json = buildUnigramTokenizerJson(KM_EN, { vocabSize }) as typeof json
    tok = tokenizerFromJson(json, unigramTokenizerConfig())
  })

  it("has the XLM-R layout: <s>=0 <pad>=1 </s>=2 <unk>=3, <mask> last, exactly vocabSize entries", () => {
    const vocab = json.model.vocab
    expect(vocab).toHaveLength(vocabSize)
    expect(vocab.slice(0, 4).map(([p]) => p)).toEqual(["<s>", "<pad>", "</s>", "<unk>"])
    expect(vocab[vocabSize - 1][0]).toBe("<mask>")
    expect(json.model.unk_id).toBe(3)
    expect(new Set(vocab.map(([p]) => p)).size).toBe(vocabSize)
    expect(tok.vocabSize).toBe(vocabSize)
    expect([tok.bosId, tok.padId, tok.eosId]).toEqual([0, 1, 2])
    expect(tok.tokenToId("<mask>")).toBe(vocabSize - 1)
    // Deterministic.
    expect(JSON.stringify(buildUnigramTokenizerJson(KM_EN, { vocabSize }))).toBe(JSON.stringify(json))
  })

  it("round-trips Khmer and English text as <s> … </s>", () => {
    for (const s of [...KM_EN, "ខ្ញុំចូលចិត្ត Phnom Penh books", "សៀវភៅ ពិភពលោក today"]) {
      const ids = tok.encode(s)
      expect(ids[0]).toBe(0)
      expect(ids[ids.length - 1]).toBe(2)
      expect(ids.slice(1, -1).every((id) => id >= 4 && id < vocabSize - 1)).toBe(true)
      expect(ids.slice(1, -1)).not.toContain(3)
      expect(tok.decode(ids, { skipSpecialTokens: true })).toBe(s.normalize("NFKC"))
      expect(tok.encode(s, { addSpecialTokens: false })).toEqual(ids.slice(1, -1))
    }
    // Frequent pieces are learnt: fewer tokens than characters.
    const khmer = KM_EN[12]
    expect(tok.encode(khmer, { addSpecialTokens: false }).length).toBeLessThan(Array.from(khmer).length / 2)
    // A character never seen is <unk>.
    expect(tok.encode("Ω", { addSpecialTokens: false })).toContain(3)
  })

  it("loads from a snapshot folder and takes added tokens after the base vocabulary, atomically", async () => {
    const dir = tmp()
    await run(writeTokenizerFiles(dir, json, unigramTokenizerConfig()))
    const loaded = await run(loadTokenizer(dir, { addedTokens: reservedTokens(2) }))
    expect(loaded.baseVocabSize).toBe(vocabSize)
    expect(loaded.addedTokenIds).toEqual([160, 161, 162, 163, 164])
    expect(loaded.encode(KM_EN[0])).toEqual(tok.encode(KM_EN[0]))
    const ids = loaded.encode("សួស្តី<foreign_emb>world<f1>", { addSpecialTokens: false })
    expect(ids.filter((id) => id >= vocabSize)).toEqual([162, 164])
    expect(loaded.decode(ids, { skipSpecialTokens: true })).not.toContain("<")
  })

  it("a missing or broken tokenizer is a CheckpointError naming the file", async () => {
    const dir = tmp()
    const err = await run(Effect.flip(loadTokenizer(dir)))
    expect(err.file).toBe(path.join(dir, "tokenizer.json"))
    fs.writeFileSync(path.join(dir, "tokenizer.json"), "{ not json")
    const err2 = await run(Effect.flip(loadTokenizer(dir)))
    expect(err2.message).toMatch(/cannot read JSON/)
    fs.writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify({ version: "1.0" }))
    const err3 = await run(Effect.flip(loadTokenizer(dir)))
    expect(err3.message).toMatch(/no `model`/)
  })

  it.skipIf(!hasData)("trains on real Khmer–English pairs and round-trips held-out lines", () => {
    const lines = fs.readFileSync(path.join(dataDir, "mixed_real_pairs.en-km.tsv"), "utf8").split("\n").filter(Boolean)
    const train = lines.slice(0, 300).flatMap((l) => l.split("\t"))
    const j = buildUnigramTokenizerJson(train, { vocabSize: 800 }) as typeof json
    expect(j.model.vocab).toHaveLength(800)
    const t = tokenizerFromJson(j, unigramTokenizerConfig())
    let ok = 0
    let total = 0
    for (const l of lines.slice(300, 340)) {
      for (const s of l.split("\t")) {
        total += 1
        const expected = s.normalize("NFKC").replace(/ {2,}/g, " ").trim()
        if (t.decode(t.encode(s), { skipSpecialTokens: true }) === expected) ok += 1
      }
    }
    // Unseen rare characters become <unk>; nearly every line still round-trips.
    expect(ok / total).toBeGreaterThan(0.8)
  })
})

describe("extendEmbeddingRows", () => {
  const emb: HostTensor = { shape: [3, 4], data: Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, -3, 1, 2, 0]) }

  it("keeps the old rows and appends zeros", () => {
    const out = extendEmbeddingRows(emb, 2, "zeros", 0)
    expect(out.shape).toEqual([5, 4])
    expect(Array.from(out.data.subarray(0, 12))).toEqual(Array.from(emb.data))
    expect(Array.from(out.data.subarray(12))).toEqual(new Array(8).fill(0))
    expect(extendEmbeddingRows(emb, 0, "zeros", 0).data).toEqual(emb.data)
  })

  it("appends the mean row", () => {
    const out = extendEmbeddingRows(emb, 2, "mean", 0)
    const mean = [1, 3, 4, 4]
    expect(Array.from(out.data.subarray(12, 16))).toEqual(mean)
    expect(Array.from(out.data.subarray(16, 20))).toEqual(mean)
    expect(Array.from(out.data.subarray(0, 12))).toEqual(Array.from(emb.data))
  })

  it("appends seeded N(0, 0.02²) rows: same seed same rows, another seed other rows", () => {
    const big: HostTensor = { shape: [2, 256], data: new Float32Array(512).fill(1) }
    const a = extendEmbeddingRows(big, 40, "normal", 7)
    const b = extendEmbeddingRows(big, 40, "normal", 7)
    const c = extendEmbeddingRows(big, 40, "normal", 8)
    expect(a.shape).toEqual([42, 256])
    expect(a.data).toEqual(b.data)
    expect(a.data.subarray(512)).not.toEqual(c.data.subarray(512))
    const fresh = a.data.subarray(512)
    const mean = fresh.reduce((s, x) => s + x, 0) / fresh.length
    const std = Math.sqrt(fresh.reduce((s, x) => s + (x - mean) ** 2, 0) / fresh.length)
    expect(Math.abs(mean)).toBeLessThan(0.002)
    expect(std).toBeGreaterThan(0.018)
    expect(std).toBeLessThan(0.022)
    expect(extendEmbeddingRows(big, 1, "normal", 7, { std: 1 }).data[512]).toBeCloseTo(a.data[512] / 0.02, 4)
  })

  it("rejects a non-matrix", () => {
    expect(() => extendEmbeddingRows({ shape: [4], data: new Float32Array(4) }, 1, "zeros", 0)).toThrow(RangeError)
  })
})
