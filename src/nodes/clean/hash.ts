/**
 * Fast 64-bit content hashing for exact-duplicate detection over millions of rows without keeping the strings:
 * two independent 32-bit hashes (FNV-1a and a Murmur3-style mix) over the UTF-16 code units, stored in an
 * open-addressing set of 8 bytes a key. The chance that two different pairs collide is about n²/2⁶⁵ (≈ 4·10⁻⁷ for
 * 4 million pairs), the only way a non-duplicate could be taken for one.
 */

import { utf8At, utf8Width } from "../../text/unicode.ts"

/** Hashes `a`, a U+0000 separator and `b`; writes the two 32-bit halves into `out`. */
export const hashPair = (a: string, b: string, out: Uint32Array): void => {
  let h1 = 0x811c9dc5
  let h2 = 0x9747b28c
  // (the loop body is written out twice rather than calling a closure per code unit: this is the clean hot path)
  for (let i = 0; i <= a.length; i++) {
    const c = i < a.length ? a.charCodeAt(i) : 0 // U+0000 separates the two strings
    h1 = Math.imul(h1 ^ c, 0x01000193)
    let k = Math.imul(c, 0xcc9e2d51)
    k = (k << 15) | (k >>> 17)
    h2 ^= Math.imul(k, 0x1b873593)
    h2 = (h2 << 13) | (h2 >>> 19)
    h2 = (Math.imul(h2, 5) + 0xe6546b64) | 0
  }
  for (let i = 0; i < b.length; i++) {
    const c = b.charCodeAt(i)
    h1 = Math.imul(h1 ^ c, 0x01000193)
    let k = Math.imul(c, 0xcc9e2d51)
    k = (k << 15) | (k >>> 17)
    h2 ^= Math.imul(k, 0x1b873593)
    h2 = (h2 << 13) | (h2 >>> 19)
    h2 = (Math.imul(h2, 5) + 0xe6546b64) | 0
  }
  finish(h1, h2, a.length + b.length, out)
}

/** The finalisers of both halves (`units`: the code units hashed, the separator aside). */
const finish = (h1: number, h2: number, units: number, out: Uint32Array): void => {
  h1 ^= h1 >>> 16
  h1 = Math.imul(h1, 0x85ebca6b)
  h1 ^= h1 >>> 13
  h2 ^= units
  h2 ^= h2 >>> 16
  h2 = Math.imul(h2, 0x85ebca6b)
  h2 ^= h2 >>> 13
  h2 = Math.imul(h2, 0xc2b2ae35)
  h2 ^= h2 >>> 16
  out[0] = h1 >>> 0
  out[1] = h2 >>> 0
}

/**
 * `hashPair` of the texts the UTF-8 bytes `a[a0, a1)` and `b[b0, b1)` decode to (valid UTF-8), without decoding
 * them into strings: the same UTF-16 code units in the same order (a character above U+FFFF as its surrogate pair).
 */
export const hashPairUtf8 = (
  a: Uint8Array,
  a0: number,
  a1: number,
  b: Uint8Array,
  b0: number,
  b1: number,
  out: Uint32Array
): void => {
  let h1 = 0x811c9dc5
  let h2 = 0x9747b28c
  let units = 0
  // one loop over both texts and the separator between them (b0 = -1 once it is mixed), written out inline like
  // `hashPair`'s: a closure per code unit costs twice the time on the clean hot path
  let buf = a
  let i = a0
  let e = a1
  let pending = -1 // the low surrogate still to mix after a high one
  for (;;) {
    let c: number
    if (pending >= 0) {
      c = pending
      pending = -1
    } else if (i < e) {
      c = utf8At(buf, i)
      i += utf8Width(buf[i])
      if (c > 0xffff) {
        pending = 0xdc00 + ((c - 0x10000) & 0x3ff)
        c = 0xd800 + ((c - 0x10000) >> 10)
        units++ // two code units
      }
      units++
    } else if (b0 !== -1) {
      c = 0 // U+0000 separates the two strings (not counted in the length)
      buf = b
      i = b0
      e = b1
      b0 = -1
    } else break
    h1 = Math.imul(h1 ^ c, 0x01000193)
    let k = Math.imul(c, 0xcc9e2d51)
    k = (k << 15) | (k >>> 17)
    h2 ^= Math.imul(k, 0x1b873593)
    h2 = (h2 << 13) | (h2 >>> 19)
    h2 = (Math.imul(h2, 5) + 0xe6546b64) | 0
  }
  finish(h1, h2, units, out)
}

/** A growable set of 64-bit keys (pairs of uint32), open addressing with linear probing. */
export class HashSet64 {
  private keys: Uint32Array
  private mask: number
  private count = 0
  constructor(initialCapacity = 1 << 16) {
    let cap = 16
    while (cap < initialCapacity * 2) cap *= 2
    this.keys = new Uint32Array(cap * 2)
    this.mask = cap - 1
  }
  get size(): number {
    return this.count
  }
  /** Adds the key; returns false when it was already present. (0,0) is stored as (0,1). */
  add(hi: number, lo: number): boolean {
    if (hi === 0 && lo === 0) lo = 1
    if ((this.count + 1) * 2 > this.mask + 1) this.grow()
    let slot = (lo ^ Math.imul(hi, 0x9e3779b1)) & this.mask
    const keys = this.keys
    while (true) {
      const k = slot * 2
      const a = keys[k]
      const b = keys[k + 1]
      if (a === 0 && b === 0) {
        keys[k] = hi
        keys[k + 1] = lo
        this.count++
        return true
      }
      if (a === hi && b === lo) return false
      slot = (slot + 1) & this.mask
    }
  }
  private grow(): void {
    const old = this.keys
    this.keys = new Uint32Array(old.length * 2)
    this.mask = this.keys.length / 2 - 1
    this.count = 0
    for (let k = 0; k < old.length; k += 2) if (old[k] !== 0 || old[k + 1] !== 0) this.add(old[k], old[k + 1])
  }
}
