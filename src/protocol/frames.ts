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
  private readonly data: Buffer | undefined
  private readonly ends: Uint32Array | undefined
  private readonly kept: readonly Buffer[] | undefined

  constructor(frames: readonly Buffer[]) {
    let total = 0
    for (const f of frames) total += f.length
    if (total >= PACK_LIMIT_BYTES) {
      this.kept = [...frames]
      return
    }
    this.data = Buffer.allocUnsafeSlow(total)
    this.ends = new Uint32Array(frames.length)
    let offset = 0
    frames.forEach((f, i) => {
      f.copy(this.data as Buffer, offset)
      offset += f.length
      ;(this.ends as Uint32Array)[i] = offset
    })
  }

  get length(): number {
    return this.kept?.length ?? this.ends?.length ?? 0
  }

  /** Frames `from` to `to` (exclusive), as views of the packed buffer. */
  views(from = 0, to = this.length): Buffer[] {
    if (this.kept) return this.kept.slice(from, to)
    const data = this.data as Buffer
    const ends = this.ends as Uint32Array
    const out: Buffer[] = []
    for (let i = from; i < to; i++) out.push(data.subarray(i === 0 ? 0 : (ends[i - 1]), ends[i]))
    return out
  }
}
