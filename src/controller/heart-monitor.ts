/**
 * The controller's side of the heartbeat (docs/wire-protocol.md, 'Heartbeat'): every period a ping goes out; engines
 * echo it. An engine whose echo is seen for the first time is a new heart (its registration completes); one that
 * misses more than `maxMisses` beats in a row has stopped. Timers and the ping are injected, so tests can script
 * beats without waiting.
 */
export interface HeartMonitorHooks {
  /** Publish one ping frame. */
  ping(payload: Buffer): void
  /** An engine's heart was seen for the first time. */
  newHeart(uuid: string): void
  /** An engine missed too many beats. */
  heartFailed(uuid: string): void
  /** An adopted engine (`--restore`) answered for the first time. */
  heartBack?(uuid: string): void
  /** Seconds since the monitor started: the ping payload, as ipyparallel sends it. */
  lifetime(): number
}

export class HeartMonitor {
  private current: Buffer = Buffer.alloc(0)
  private previous: Buffer = Buffer.alloc(0)
  private readonly hearts = new Set<string>()
  private readonly responders = new Set<string>()
  private readonly misses = new Map<string, number>()
  /** Adopted hearts not heard from yet. */
  private readonly unheard = new Set<string>()

  constructor(private readonly hooks: HeartMonitorHooks, private readonly maxMisses = 10) {}

  /** One period has passed: judge the last ping's answers, then send the next ping. */
  beat(): void {
    for (const uuid of this.hearts) {
      if (this.responders.has(uuid)) {
        this.misses.delete(uuid)
        continue
      }
      const missed = (this.misses.get(uuid) ?? 0) + 1
      this.misses.set(uuid, missed)
      if (missed > this.maxMisses) this.stop(uuid, true)
    }
    this.responders.clear()
    this.previous = this.current
    this.current = Buffer.from(String(this.hooks.lifetime()))
    this.hooks.ping(this.current)
  }

  /** An echo arrived. An answer to the current or the previous ping counts; anything else is ignored. */
  pong(uuid: string, payload: Buffer): void {
    if (!payload.equals(this.current) && !payload.equals(this.previous)) return
    if (payload.length === 0) return
    this.responders.add(uuid)
    if (this.unheard.delete(uuid)) this.hooks.heartBack?.(uuid)
    if (!this.hearts.has(uuid)) {
      // A new heart is reported at once rather than at the next beat: registration completes sooner.
      this.hearts.add(uuid)
      this.hooks.newHeart(uuid)
    }
  }

  /** Watch an engine registered without a heartbeat (`--restore`): it has `maxMisses` beats to answer. */
  adopt(uuid: string): void {
    this.hearts.add(uuid)
    this.unheard.add(uuid)
  }

  /** Forget an engine (it unregistered); `report` says whether to tell the hub it failed. */
  stop(uuid: string, report = false): void {
    if (!this.hearts.delete(uuid)) return
    this.unheard.delete(uuid)
    this.misses.delete(uuid)
    this.responders.delete(uuid)
    if (report) this.hooks.heartFailed(uuid)
  }

  get size(): number {
    return this.hearts.size
  }
}
