import type { Header } from '../protocol/messages.js'

/** One task reply as sent: enough to sign it again as a fresh message. */
export interface SentReply {
  idents: Buffer[]
  type: string
  content: object
  parent: Header
  metadata: Record<string, unknown>
  buffers: Buffer[]
}

export interface RecentRepliesLimits {
  /** Most replies kept. Default 256. */
  count: number
  /** Most bytes of result buffers kept. Default 16 MiB. */
  bytes: number
}

/**
 * The last task replies an engine sent, so that it can send them again when its controller restarts: a reply
 * on its way when the controller died is lost with it, while a controller restored with `--restore` still
 * waits for that reply. A restart shows in the heartbeat, whose payload is the controller's lifetime in
 * seconds: it starts again near zero. The replies go out again at the new controller's second ping, when the
 * task channel has had a heartbeat period to reconnect. The controller takes the ones it waits for and
 * quietly discards the rest (they carry `resent: true` in their metadata). Then the engine sends the msg_ids it
 * holds (TASK_INVENTORY), so that the controller learns which of its tasks never arrived.
 */
export class RecentReplies {
  private readonly kept: SentReply[] = []
  private keptBytes = 0
  private lastBeat: number | undefined
  private resendAtNextBeat = false

  constructor(private readonly limits: RecentRepliesLimits = { count: 256, bytes: 16 * 1024 * 1024 }) {}

  remember(reply: SentReply): void {
    const size = reply.buffers.reduce((n, b) => n + b.length, 0)
    if (size > this.limits.bytes) return
    this.kept.push(reply)
    this.keptBytes += size
    while (this.kept.length > this.limits.count || this.keptBytes > this.limits.bytes) {
      const old = this.kept.shift()
      this.keptBytes -= old?.buffers.reduce((n, b) => n + b.length, 0) ?? 0
    }
  }

  /**
   * A ping arrived with this payload. Usually returns undefined; at the new controller's second ping after a
   * restart, the replies to send again (perhaps none), after which the engine also says what it holds.
   */
  beat(payload: Buffer | undefined): SentReply[] | undefined {
    const lifetime = Number(payload?.toString())
    if (!Number.isFinite(lifetime)) return undefined
    const restarted = this.lastBeat !== undefined && lifetime < this.lastBeat
    this.lastBeat = lifetime
    if (restarted) {
      this.resendAtNextBeat = true
      return undefined
    }
    if (!this.resendAtNextBeat) return undefined
    this.resendAtNextBeat = false
    return [...this.kept]
  }

  get size(): number {
    return this.kept.length
  }
}
