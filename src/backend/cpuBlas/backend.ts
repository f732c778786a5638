/** The cpu-blas backend class: a MathBackendCPU that recycles the large float32 buffers its own kernels allocate. */
import * as tf from "@tensorflow/tfjs"
import type { Cpu } from "./shared.ts"

/** Buffers of at least this many elements are pooled (smaller ones are cheap to allocate). */
const POOL_MIN_ELEMENTS = 4096
/** Most bytes kept in the pool; beyond this, freed buffers are left to the garbage collector. */
const POOL_MAX_BYTES = 512 * 1024 * 1024

interface Owned {
  /** The array `alloc` handed out (the pool recycles this exact array). */
  readonly array: Float32Array
  /** How many live dataIds store this buffer or a view of it. */
  users: number
  /** Read out through `readSync`/`read`: the caller may still hold the array, so it is never recycled or
   *  mutated in place. */
  exposed: boolean
}

/**
 * Allocating a fresh multi-megabyte Float32Array costs about as much as one element-wise pass over it (page
 * faults and zeroing), so this backend keeps freed kernel outputs in a pool keyed by length. A buffer is
 * recycled only when (1) one of this backend's kernels allocated it, (2) no live tensor stores it or a view of
 * it, and (3) it was never handed out by `readSync`/`read` (`dataSync()`/`data()` return the stored array on
 * CPU backends). Arrays passed in by users (`tf.tensor(myArray)`) are never recycled or written.
 */
export class BlasBackend extends tf.MathBackendCPU {
  private readonly owned = new WeakMap<ArrayBufferLike, Owned>()
  private readonly pool = new Map<number, Array<Float32Array>>()
  private pooledBytes = 0
  /** Pool counters: hits (recycled), misses (fresh allocations of poolable size). */
  readonly poolStats = { hits: 0, misses: 0 }

  constructor() {
    super()
    // The stock backend prints a "use tfjs-node" banner on first write; this backend is the answer to it.
    Reflect.set(this, "firstUse", false)
  }

  /** A float32 buffer of n elements with unspecified contents (callers overwrite every element). */
  alloc(n: number): Float32Array {
    if (n < POOL_MIN_ELEMENTS) return new Float32Array(n)
    const free = this.pool.get(n)
    let array = free?.pop()
    if (array !== undefined) {
      this.pooledBytes -= array.byteLength
      this.poolStats.hits++
    } else {
      array = new Float32Array(n)
      this.poolStats.misses++
    }
    this.owned.set(array.buffer, { array, users: 0, exposed: false })
    return array
  }

  /** True when the tensor's buffer may be overwritten in place: this backend allocated it, exactly one
   *  tensor reference holds it, no other tensor views it, and it was never read out. */
  canMutate(dataId: tf.DataId): boolean {
    if (!this.data.has(dataId) || this.refCount(dataId) !== 1) return false
    const values = this.data.get(dataId).values
    if (!(values instanceof Float32Array)) return false
    const o = this.owned.get(values.buffer)
    return o !== undefined && o.array === values && o.users === 1 && !o.exposed
  }

  /** Bytes currently held in the pool. */
  pooled(): number {
    return this.pooledBytes
  }

  private track(values: unknown, delta: number): void {
    if (!ArrayBuffer.isView(values)) return
    const o = this.owned.get(values.buffer)
    if (o === undefined) return
    o.users += delta
    if (o.users === 0 && !o.exposed) {
      const n = o.array.length
      if (this.pooledBytes + o.array.byteLength > POOL_MAX_BYTES) return
      const free = this.pool.get(n)
      if (free === undefined) this.pool.set(n, [o.array])
      else free.push(o.array)
      this.pooledBytes += o.array.byteLength
      this.owned.delete(values.buffer)
    }
  }

  private expose(dataId: tf.DataId): void {
    if (!this.data.has(dataId)) return
    const values = this.data.get(dataId).values
    if (!ArrayBuffer.isView(values)) return
    const o = this.owned.get(values.buffer)
    if (o !== undefined) o.exposed = true
  }

  override write(...args: Parameters<tf.MathBackendCPU["write"]>): ReturnType<tf.MathBackendCPU["write"]> {
    this.track(args[0], 1)
    return super.write(...args)
  }

  override move(...args: Parameters<tf.MathBackendCPU["move"]>): void {
    const [dataId, values] = args
    if (this.data.has(dataId)) this.track(this.data.get(dataId).values, -1)
    this.track(values, 1)
    super.move(...args)
  }

  override disposeData(dataId: tf.DataId, force?: boolean): boolean {
    const values = this.data.has(dataId) ? this.data.get(dataId).values : undefined
    const done = super.disposeData(dataId, force)
    if (values !== undefined && !this.data.has(dataId)) this.track(values, -1)
    return done
  }

  override readSync(dataId: tf.DataId): ReturnType<tf.MathBackendCPU["readSync"]> {
    this.expose(dataId)
    return super.readSync(dataId)
  }

  override read(dataId: tf.DataId): ReturnType<tf.MathBackendCPU["read"]> {
    this.expose(dataId)
    return super.read(dataId)
  }

  override dispose(): void {
    this.pool.clear()
    this.pooledBytes = 0
    super.dispose()
  }
}

/** A pooled buffer on `BlasBackend`, a fresh one elsewhere. */
export const allocFor = (be: Cpu, n: number): Float32Array => (be instanceof BlasBackend ? be.alloc(n) : new Float32Array(n))
