import type { Logger } from '../common/log.js'
import { realClock, type Clock, type TimerHandle } from '../common/clock.js'

export interface WatchdogOptions {
  /** Time between checks: the controller's hb_period + 500 ms, as ipengine uses. */
  checkPeriodMs: number
  /** Checks in a row without a ping before the controller is taken for gone. ipengine: 50; 0 disables. */
  maxMisses: number
  /** Called once when `maxMisses` is reached; the watchdog has stopped by then. */
  onFlatline: () => void
  log: Logger
  clock?: Clock
}

/**
 * The engine's view of the controller's heartbeat (ipengine `_hb_monitor`): every check that finds no ping
 * since the previous check is a miss; a ping resets the count. The first check never counts as a miss,
 * because the first ping may not have had time to arrive.
 */
export class HeartbeatWatchdog {
  private pinged = true
  private misses = 0
  private handle: TimerHandle | undefined
  private readonly clock: Clock

  constructor(private readonly options: WatchdogOptions) {
    this.clock = options.clock ?? realClock
  }

  start(): void {
    if (this.options.maxMisses <= 0 || this.handle !== undefined) return
    this.handle = this.clock.setInterval(() => this.check(), this.options.checkPeriodMs)
  }

  /** A ping arrived from the controller. */
  ping(): void {
    this.pinged = true
  }

  stop(): void {
    if (this.handle === undefined) return
    this.clock.clearInterval(this.handle)
    this.handle = undefined
  }

  get missedInARow(): number {
    return this.misses
  }

  private check(): void {
    const { checkPeriodMs, maxMisses, log } = this.options
    if (this.pinged) {
      this.misses = 0
    } else {
      this.misses++
      log.warn(`no heartbeat in the last ${checkPeriodMs} ms (${this.misses} time(s) in a row)`)
    }
    this.pinged = false
    if (this.misses >= maxMisses) {
      log.error(`missed ${maxMisses} heartbeat checks of ${checkPeriodMs} ms in a row: the controller is gone; stopping`)
      this.stop()
      this.options.onFlatline()
    }
  }
}
