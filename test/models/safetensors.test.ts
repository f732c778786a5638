import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { CheckpointError } from "../../src/models/errors.ts"
import {
  type HostTensor,
  INDEX_FILE,
  loadSafetensorsDir,
  readSafetensorsFile,
  readSafetensorsHeader,
  SINGLE_FILE,
  writeSafetensorsFile,
  writeShardedSafetensors
} from "../../src/models/safetensors.ts"

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "llink-st-"))
const run = <A, E>(eff: Effect.Effect<A, E>) => Effect.runPromise(eff)
const failure = async <A>(eff: Effect.Effect<A, CheckpointError>): Promise<CheckpointError> =>
  Effect.runPromise(Effect.flip(eff))

/** A deterministic pseudo-random tensor (LCG), values spread over several binades. */
const tensor = (shape: ReadonlyArray<number>, seed: number): HostTensor => {
  const n = shape.reduce((a, b) => a * b, 1)
  const data = new Float32Array(n)
  let s = seed >>> 0
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    const u = s / 4294967296 - 0.5
    data[i] = u * 2 ** ((i % 17) - 8)
  }
  return { shape, data }
}

const sample = (): Map<string, HostTensor> =>
  new Map([
    ["model.embed_tokens.weight", tensor([11, 6], 1)],
    ["model.layers.0.self_attn.q_proj.weight", tensor([6, 6], 2)],
    ["model.norm.weight", tensor([6], 3)],
    ["scalar", { shape: [], data: new Float32Array([0.1]) }]
  ])

// ---- Plain conversion references, written independently of the module -------------------------------------------

/** Every finite binary16 value with its bit pattern, from the IEEE definition. */
const HALF_VALUES: Array<{ bits: number; value: number }> = (() => {
  const out: Array<{ bits: number; value: number }> = []
  for (let e = 0; e < 31; e++) {
    for (let m = 0; m < 1024; m++) {
      const value = e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15)
      out.push({ bits: (e << 10) | m, value })
    }
  }
  return out // ascending in value
})()

/** Nearest binary16 by exhaustive search (ties to the even bit pattern); beyond the max rounds to ±Infinity. */
const refF16 = (x: number): number => {
  if (Number.isNaN(x)) return NaN
  const a = Math.abs(x)
  const sign = x < 0 || Object.is(x, -0) ? -1 : 1
  // Values at or above max + half an ulp (65504 + 16) overflow.
  if (a >= 65520) return sign * Infinity
  let lo = 0
  let hi = HALF_VALUES.length - 1
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1
    if (HALF_VALUES[mid].value <= a) lo = mid
    else hi = mid
  }
  const below = HALF_VALUES[lo]
  const above = HALF_VALUES[hi]
  let pick = below
  if (a - below.value > above.value - a) pick = above
  else if (a - below.value === above.value - a) pick = (below.bits & 1) === 0 ? below : above
  if (a >= above.value) pick = above
  return sign * pick.value
}

/** Nearest bfloat16: the two truncations around x, the closer one (ties to even). */
const refBf16 = (x: number): number => {
  if (Number.isNaN(x)) return NaN
  const dv = new DataView(new ArrayBuffer(4))
  dv.setFloat32(0, x)
  const bits = dv.getUint32(0)
  const loBits = bits & 0xffff0000
  const valueOf = (b: number) => {
    dv.setUint32(0, b >>> 0)
    return dv.getFloat32(0)
  }
  const lo = valueOf(loBits)
  if ((bits & 0xffff) === 0) return lo
  const hi = valueOf((loBits + 0x10000) >>> 0)
  // Rounding up past the largest finite value: measure the distance to 2^128 (the next power), the result is ±Inf.
  const hiForDistance = Number.isFinite(hi) ? hi : Math.sign(hi) * 2 ** 128
  const dLo = Math.abs(x - lo)
  const dHi = Math.abs(hiForDistance - x)
  if (dLo < dHi) return lo
  if (dHi < dLo) return hi
  return ((loBits >>> 16) & 1) === 0 ? lo : hi
}

/** Edge cases: exact ties, subnormals, overflow, signed zero, NaN, infinities. */
const EDGE = new Float32Array([
  0,
  -0,
  1,
  -2,
  1 + 2 ** -11, // f16 tie between 1 and 1+2^-10 → 1 (even)
  1 + 3 * 2 ** -11, // f16 tie → 1 + 2^-9 (even)
  1 + 2 ** -8, // bf16 tie between 1 and 1+2^-7 → 1 (even)
  1 + 3 * 2 ** -8, // bf16 tie → 1 + 2^-6
  65504,
  65519,
  65520,
  70000,
  -1e6,
  2 ** -24,
  2 ** -25, // f16 tie between 0 and the smallest subnormal → 0
  3 * 2 ** -25,
  1e-6,
  6.1e-5,
  1e-30,
  3.4e38,
  Infinity,
  -Infinity,
  NaN,
  Math.PI,
  -Math.E
])

describe("safetensors round trip", () => {
  it("F32 is exact and the header is aligned, ordered and carries format=pt", async () => {
    const dir = tmp()
    const file = path.join(dir, "a.safetensors")
    const tensors = sample()
    await run(writeSafetensorsFile(file, tensors, { metadata: { note: "x" } }))
    const back = await run(readSafetensorsFile(file))
    expect([...back.keys()].sort()).toEqual([...tensors.keys()].sort())
    for (const [name, t] of tensors) {
      expect(back.get(name)?.shape).toEqual(t.shape)
      expect(Array.from(back.get(name)?.data ?? [])).toEqual(Array.from(t.data))
    }
    const header = await run(readSafetensorsHeader(file))
    expect(header.dataStart % 8).toBe(0)
    expect(header.metadata).toEqual({ format: "pt", note: "x" })
    expect(header.entries.map((e) => e.name)).toEqual([...tensors.keys()].sort())
    const size = fs.statSync(file).size
    expect(size).toBe(header.dataStart + (11 * 6 + 36 + 6 + 1) * 4)
  })

  for (const [dtype, ref] of [
    ["F16", refF16],
    ["BF16", refBf16]
  ] as const) {
    it(`${dtype} rounds to nearest even, as a plain reference conversion does`, async () => {
      const dir = tmp()
      const file = path.join(dir, `${dtype}.safetensors`)
      const rand = tensor([40, 25], 7)
      const tensors = new Map<string, HostTensor>([
        ["rand", rand],
        ["edge", { shape: [EDGE.length], data: EDGE }]
      ])
      await run(writeSafetensorsFile(file, tensors, { dtype }))
      const header = await run(readSafetensorsHeader(file))
      expect(header.entries.every((e) => e.dtype === dtype)).toBe(true)
      expect(fs.statSync(file).size).toBe(header.dataStart + (1000 + EDGE.length) * 2)
      const back = await run(readSafetensorsFile(file))
      for (const [name, t] of tensors) {
        const got = back.get(name)?.data ?? new Float32Array()
        for (let i = 0; i < t.data.length; i++) {
          const want = ref(t.data[i])
          if (Number.isNaN(want)) expect(Number.isNaN(got[i]), `${name}[${i}]`).toBe(true)
          else expect(Object.is(got[i], want) || got[i] === want, `${name}[${i}] ${t.data[i]} → ${got[i]}, want ${want}`).toBe(true)
        }
      }
      // The loss is the format's: relative error bounded by half an ulp (2^-11 for F16, 2^-8 for BF16) in range.
      const bound = dtype === "F16" ? 2 ** -11 : 2 ** -8
      const got = back.get("rand")?.data ?? new Float32Array()
      let changed = 0
      for (let i = 0; i < rand.data.length; i++) {
        const x = rand.data[i]
        if (Math.abs(x) > 1e-4) expect(Math.abs(got[i] - x)).toBeLessThanOrEqual(Math.abs(x) * bound)
        if (got[i] !== x) changed++
      }
      expect(changed).toBeGreaterThan(500) // precision really was lost
    })
  }

  it("reads hand-written F16, BF16 and I64 bytes", async () => {
    const file = path.join(tmp(), "hand.safetensors")
    const f16 = [0x3c00, 0xc000, 0x7bff, 0x0001, 0x8000, 0x7c00]
    const bf16 = [0x3f80, 0x4049, 0xc2f7]
    const header = {
      h: { dtype: "F16", shape: [2, 3], data_offsets: [0, 12] },
      b: { dtype: "BF16", shape: [3], data_offsets: [12, 18] },
      p: { dtype: "I64", shape: [1, 2], data_offsets: [18, 34] }
    }
    const json = Buffer.from(JSON.stringify(header))
    const data = Buffer.alloc(34)
    f16.forEach((v, i) => data.writeUInt16LE(v, 2 * i))
    bf16.forEach((v, i) => data.writeUInt16LE(v, 12 + 2 * i))
    data.writeBigInt64LE(7n, 18)
    data.writeBigInt64LE(-3n, 26)
    const len = Buffer.alloc(8)
    len.writeBigUInt64LE(BigInt(json.length))
    fs.writeFileSync(file, Buffer.concat([len, json, data]))
    const t = await run(readSafetensorsFile(file))
    expect(Array.from(t.get("h")?.data ?? [])).toEqual([1, -2, 65504, 2 ** -24, -0, Infinity])
    expect(t.get("h")?.shape).toEqual([2, 3])
    expect(Array.from(t.get("b")?.data ?? [])).toEqual([1, 3.140625, -123.5])
    expect(Array.from(t.get("p")?.data ?? [])).toEqual([7, -3])
  })

  it("loads a subset by name, and names a tensor that is not there", async () => {
    const file = path.join(tmp(), "s.safetensors")
    await run(writeSafetensorsFile(file, sample(), { dtype: "BF16" }))
    const sub = await run(readSafetensorsFile(file, { names: ["model.norm.weight", "scalar"] }))
    expect([...sub.keys()]).toEqual(["model.norm.weight", "scalar"])
    const err = await failure(readSafetensorsFile(file, { names: ["model.norm.weight", "lm_head.weight"] }))
    expect(err).toBeInstanceOf(CheckpointError)
    expect(err.tensor).toBe("lm_head.weight")
    expect(err.file).toBe(file)
  })
})

describe("safetensors validation", () => {
  it("a truncated file names the file and the tensor that runs past the end", async () => {
    const file = path.join(tmp(), "t.safetensors")
    await run(writeSafetensorsFile(file, sample()))
    const size = fs.statSync(file).size
    fs.truncateSync(file, size - 3)
    const err = await failure(readSafetensorsFile(file))
    expect(err.file).toBe(file)
    expect(err.tensor).toBe("scalar") // last in the data section
    expect(err.message).toMatch(/truncated/)
    // Cut inside the header.
    fs.truncateSync(file, 20)
    const err2 = await failure(readSafetensorsHeader(file))
    expect(err2.message).toMatch(/header length \d+ runs past the end of the file/)
    fs.truncateSync(file, 5)
    expect((await failure(readSafetensorsFile(file))).message).toMatch(/shorter than the 8-byte/)
  })

  it("a header that lies about sizes, offsets or dtype is rejected naming the tensor", async () => {
    const dir = tmp()
    const write = (name: string, header: unknown, dataBytes: number) => {
      const file = path.join(dir, name)
      const json = Buffer.from(JSON.stringify(header))
      const len = Buffer.alloc(8)
      len.writeBigUInt64LE(BigInt(json.length))
      fs.writeFileSync(file, Buffer.concat([len, json, Buffer.alloc(dataBytes)]))
      return file
    }
    const wrongSize = write("size.safetensors", { a: { dtype: "F32", shape: [2, 2], data_offsets: [0, 12] } }, 16)
    let err = await failure(readSafetensorsFile(wrongSize))
    expect(err.tensor).toBe("a")
    expect(err.message).toMatch(/header says 12 bytes .* needs 16/)

    const overlap = write(
      "overlap.safetensors",
      { a: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, b: { dtype: "F32", shape: [2], data_offsets: [4, 12] } },
      12
    )
    err = await failure(readSafetensorsFile(overlap))
    expect(err.tensor).toBe("b")
    expect(err.message).toMatch(/overlaps tensor a/)

    const past = write("past.safetensors", { a: { dtype: "F16", shape: [8], data_offsets: [0, 16] } }, 10)
    err = await failure(readSafetensorsHeader(past))
    expect(err.tensor).toBe("a")

    const dtype = write("dtype.safetensors", { a: { dtype: "F8_E4M3", shape: [1], data_offsets: [0, 1] } }, 1)
    err = await failure(readSafetensorsFile(dtype))
    expect(err.message).toMatch(/unsupported dtype "F8_E4M3"/)

    const huge = path.join(dir, "huge.safetensors")
    const len = Buffer.alloc(16)
    len.writeBigUInt64LE(2n ** 40n)
    fs.writeFileSync(huge, len)
    expect((await failure(readSafetensorsFile(huge))).message).toMatch(/exceeds the safetensors limit/)

    const notJson = path.join(dir, "json.safetensors")
    const l2 = Buffer.alloc(8)
    l2.writeBigUInt64LE(4n)
    fs.writeFileSync(notJson, Buffer.concat([l2, Buffer.from("{ab}")]))
    expect((await failure(readSafetensorsFile(notJson))).message).toMatch(/not valid JSON/)

    expect((await failure(readSafetensorsFile(path.join(dir, "absent.safetensors")))).message).toMatch(/cannot open/)
  })
})

describe("sharded checkpoints", () => {
  it("writes shards plus an index, and reads all, a subset, or fails naming a missing shard or tensor", async () => {
    const dir = tmp()
    const tensors = sample()
    // In name order the F16 tensors take 132, 72, 12 and 2 bytes: an 80-byte limit gives [132] [72] [12 + 2].
    await run(writeShardedSafetensors(dir, tensors, { maxShardBytes: 80, dtype: "F16" }))
    const files = fs.readdirSync(dir).sort()
    expect(files).toEqual([
      "model-00001-of-00003.safetensors",
      "model-00002-of-00003.safetensors",
      "model-00003-of-00003.safetensors",
      INDEX_FILE
    ])
    const index = JSON.parse(fs.readFileSync(path.join(dir, INDEX_FILE), "utf8")) as {
      metadata: { total_size: number }
      weight_map: Record<string, string>
    }
    expect(index.metadata.total_size).toBe((66 + 36 + 6 + 1) * 2)
    expect(Object.keys(index.weight_map).sort()).toEqual([...tensors.keys()].sort())

    const all = await run(loadSafetensorsDir(dir))
    expect(all.size).toBe(tensors.size)
    for (const [name, t] of tensors) {
      const got = all.get(name)?.data ?? new Float32Array()
      for (let i = 0; i < t.data.length; i++) expect(got[i]).toBe(refF16(t.data[i]))
    }
    const sub = await run(loadSafetensorsDir(dir, { names: ["scalar", "model.embed_tokens.weight"] }))
    expect([...sub.keys()]).toEqual(["scalar", "model.embed_tokens.weight"])

    const missingTensor = await failure(loadSafetensorsDir(dir, { names: ["lm_head.weight"] }))
    expect(missingTensor.tensor).toBe("lm_head.weight")
    expect(missingTensor.file).toBe(path.join(dir, INDEX_FILE))

    const shard = index.weight_map["model.norm.weight"]
    fs.rmSync(path.join(dir, shard))
    const missingShard = await failure(loadSafetensorsDir(dir))
    expect(missingShard.file).toBe(path.join(dir, shard))
    expect(missingShard.message).toMatch(/shard named by model.safetensors.index.json is missing/)
    // Tensors in the other shards still load.
    const other = await run(loadSafetensorsDir(dir, { names: ["model.embed_tokens.weight"] }))
    expect(other.size).toBe(1)
  })

  it("writes a single model.safetensors when everything fits and removes the older shards", async () => {
    const dir = tmp()
    await run(writeShardedSafetensors(dir, sample(), { maxShardBytes: 80 }))
    expect(fs.existsSync(path.join(dir, INDEX_FILE))).toBe(true)
    await run(writeShardedSafetensors(dir, sample(), { maxShardBytes: 1 << 20 }))
    expect(fs.readdirSync(dir)).toEqual([SINGLE_FILE])
    const all = await run(loadSafetensorsDir(dir))
    expect(Array.from(all.get("model.norm.weight")?.data ?? [])).toEqual(Array.from(sample().get("model.norm.weight")?.data ?? []))
  })

  it("an empty folder is a clear error", async () => {
    const dir = tmp()
    const err = await failure(loadSafetensorsDir(dir))
    expect(err.file).toBe(dir)
    expect(err.message).toMatch(/neither model.safetensors nor model.safetensors.index.json/)
  })

  it("rejects a tensor whose data does not match its shape", async () => {
    const file = path.join(tmp(), "bad.safetensors")
    const err = await failure(writeSafetensorsFile(file, new Map([["x", { shape: [2, 3], data: new Float32Array(5) }]])))
    expect(err.tensor).toBe("x")
    expect(fs.existsSync(file)).toBe(false)
  })
})
