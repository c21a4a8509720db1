/**
 * Time and timers, as one collaborator. Timer-driven code (the engine's heartbeat watchdog and output batching,
 * the hub's registration timeouts, the scheduler's task timeouts, the heart monitor, rate-limited warnings) takes
 * a `Clock` rather than calling `setTimeout` or `Date.now` itself, so tests drive it with a fake clock and
 * script time without waiting (test/helpers/fake-clock.ts).
 */

declare const timerBrand: unique symbol

/** A pending timer, good only for the clock that made it. */
export interface TimerHandle {
  readonly [timerBrand]: true
}

export interface Clock {
  /** Wall-clock time, milliseconds since the epoch (`Date.now()`): for times others read, such as event times. */
  now(): number
  /** Monotonic time in milliseconds from an arbitrary origin (`performance.now()`): for durations and windows. */
  monotonic(): number
  /** Runs `callback` once, `ms` milliseconds from now. */
  setTimeout(callback: () => void, ms: number): TimerHandle
  /** Cancels a timer of `setTimeout`; nothing happens for undefined or one that has run. */
  clearTimeout(handle: TimerHandle | undefined): void
  /** Runs `callback` every `ms` milliseconds until cleared. */
  setInterval(callback: () => void, ms: number): TimerHandle
  /** Cancels a timer of `setInterval`; nothing happens for undefined. */
  clearInterval(handle: TimerHandle | undefined): void
}

/** Node's clock and timers. */
export const realClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms) as unknown as TimerHandle,
  clearTimeout: (handle) => clearTimeout(handle as unknown as NodeJS.Timeout | undefined),
  setInterval: (callback, ms) => setInterval(callback, ms) as unknown as TimerHandle,
  clearInterval: (handle) => clearInterval(handle as unknown as NodeJS.Timeout | undefined),
}

/**
 * A clock whose pending timers can all be cancelled at once: the timers of a controller, which die with it.
 * Time itself is the underlying clock's.
 */
export class ScopedClock implements Clock {
  private readonly timeouts = new Set<TimerHandle>()
  private readonly intervals = new Set<TimerHandle>()

  constructor(private readonly clock: Clock = realClock) {}

  now(): number {
    return this.clock.now()
  }

  monotonic(): number {
    return this.clock.monotonic()
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    const handle = this.clock.setTimeout(() => {
      this.timeouts.delete(handle)
      callback()
    }, ms)
    this.timeouts.add(handle)
    return handle
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    if (handle === undefined) return
    this.timeouts.delete(handle)
    this.clock.clearTimeout(handle)
  }

  setInterval(callback: () => void, ms: number): TimerHandle {
    const handle = this.clock.setInterval(callback, ms)
    this.intervals.add(handle)
    return handle
  }

  clearInterval(handle: TimerHandle | undefined): void {
    if (handle === undefined) return
    this.intervals.delete(handle)
    this.clock.clearInterval(handle)
  }

  /** Cancels every timer still pending. */
  cancelAll(): void {
    for (const handle of this.timeouts) this.clock.clearTimeout(handle)
    for (const handle of this.intervals) this.clock.clearInterval(handle)
    this.timeouts.clear()
    this.intervals.clear()
  }
}
