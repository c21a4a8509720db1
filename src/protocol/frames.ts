/** Below this many bytes in all, a message's frames are worth copying into one allocation (see PackedFrames). */
export const PACK_LIMIT_BYTES = 64 * 1024

/**
 * A multipart message kept as one buffer and the frames' end offsets. Every frame ZeroMQ hands over is an
 * allocation of its own (a Buffer, its ArrayBuffer and a native message), so a task waiting in a queue would hold
 * nine of each; one copy of a small message costs less than keeping them. Views are made only when the frames
 * are needed (to send them). A message of `PACK_LIMIT_BYTES` or more keeps its frames as they are: its size is
 * its data, not the overhead, and copying it would cost time.
 */
export class PackedFrames {
  /** The frames one after another, then each frame's end offset as a 32-bit little-endian integer. */
  private readonly data: Buffer | undefined
  private readonly count: number
  private readonly kept: readonly Buffer[] | undefined

  constructor(frames: readonly Buffer[]) {
    let total = 0
    for (const f of frames) total += f.length
    this.count = frames.length
    if (total >= PACK_LIMIT_BYTES) {
      this.kept = [...frames]
      return
    }
    // The offsets live in the same allocation: a typed array of their own would cost more than the frames.
    const data = Buffer.allocUnsafeSlow(total + 4 * frames.length)
    let offset = 0
    frames.forEach((f, i) => {
      f.copy(data, offset)
      offset += f.length
      data.writeUInt32LE(offset, total + 4 * i)
    })
    this.data = data
  }

  get length(): number {
    return this.count
  }

  /** Frames `from` to `to` (exclusive), as views of the packed buffer. */
  views(from = 0, to = this.length): Buffer[] {
    if (this.kept) return this.kept.slice(from, to)
    const data = this.data as Buffer
    const table = data.length - 4 * this.count
    const end = (i: number): number => data.readUInt32LE(table + 4 * i)
    const out: Buffer[] = []
    for (let i = from; i < to; i++) out.push(data.subarray(i === 0 ? 0 : end(i - 1), end(i)))
    return out
  }
}

/**
 * Routing identities, copied once and then shared: every task of one client holds the same array rather than a copy
 * of ZeroMQ's frames each. Callers must not change the arrays. Bounded: when `limit` identities are known, the cache
 * starts again (a flood of random identities costs memory once, not forever).
 */
export class SharedIdentities {
  private readonly known = new Map<string, Buffer[]>()

  constructor(private readonly limit = 4096) {}

  /** A copy of `frames`, the same array each time for equal frames. */
  of(frames: readonly Buffer[]): Buffer[] {
    const key = frames.length === 1 ? (frames[0] as Buffer).toString('latin1') : frames.map((f) => f.toString('hex')).join('.')
    let shared = this.known.get(key)
    if (shared === undefined) {
      if (this.known.size >= this.limit) this.known.clear()
      shared = frames.map((f) => Buffer.from(f))
      this.known.set(key, shared)
    }
    return shared
  }
}
