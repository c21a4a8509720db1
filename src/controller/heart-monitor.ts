import { realClock, type Clock, type TimerHandle } from '../common/clock.js'

/**
 * The controller's side of the heartbeat (docs/wire-protocol.md, 'Heartbeat'): every period a ping goes out; engines
 * echo it. An engine whose echo is seen for the first time is a new heart (its registration completes); one that
 * misses more than `maxMisses` beats in a row has stopped. The clock and the ping are injected, so tests can
 * script beats without waiting.
 */
export interface HeartMonitorHooks {
  /** Publish one ping frame. */
  ping(payload: Buffer): void
  /** An engine's heart was seen for the first time. */
  newHeart(uuid: string): void
  /** An engine missed too many beats. */
  heartFailed(uuid: string): void
  /** An adopted engine (`--restore`) answered for the first time, `afterMs` after the monitor was made. */
  heartBack?(uuid: string, afterMs: number): void
}

export interface HeartMonitorOptions {
  /** Time between pings. */
  periodMs: number
  /** Beats in a row without an answer that an engine survives. */
  maxMisses: number
  clock?: Clock
}

export class HeartMonitor {
  private current: Buffer = Buffer.alloc(0)
  private previous: Buffer = Buffer.alloc(0)
  private readonly hearts = new Set<string>()
  private readonly responders = new Set<string>()
  private readonly misses = new Map<string, number>()
  /** Adopted hearts not heard from yet. */
  private readonly unheard = new Set<string>()
  private readonly clock: Clock
  private readonly maxMisses: number
  private readonly bornMs: number
  private timer: TimerHandle | undefined

  constructor(private readonly hooks: HeartMonitorHooks, private readonly options: HeartMonitorOptions) {
    this.clock = options.clock ?? realClock
    this.maxMisses = options.maxMisses
    this.bornMs = this.clock.monotonic()
  }

  /** Sends the first ping now, then beats every period until `close`. */
  start(): void {
    if (this.timer !== undefined) return
    this.beat()
    this.timer = this.clock.setInterval(() => this.beat(), this.options.periodMs)
  }

  /** Stops beating. */
  close(): void {
    this.clock.clearInterval(this.timer)
    this.timer = undefined
  }

  /** One period has passed: judge the last ping's answers, then send the next ping. */
  private beat(): void {
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
    // Seconds since the monitor started, as ipyparallel's ping payload.
    this.current = Buffer.from(String(this.ageMs() / 1000))
    this.hooks.ping(this.current)
  }

  /** An echo arrived. An answer to the current or the previous ping counts; anything else is ignored. */
  pong(uuid: string, payload: Buffer): void {
    if (!payload.equals(this.current) && !payload.equals(this.previous)) return
    if (payload.length === 0) return
    this.responders.add(uuid)
    if (this.unheard.delete(uuid)) this.hooks.heartBack?.(uuid, this.ageMs())
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

  private ageMs(): number {
    return this.clock.monotonic() - this.bornMs
  }
}
