import type { Clock, TimerHandle } from '../../src/common/clock.js'

interface FakeTimer {
  id: number
  callback: () => void
  /** When it runs next, in the clock's monotonic milliseconds. */
  dueMs: number
  /** For an interval, its period; undefined for a timeout. */
  periodMs: number | undefined
}

/**
 * A clock for tests: time stands still until `advance` moves it, and the timers due on the way run then, in
 * order of their due time (equal times in the order they were set), each seeing `now()` at its own due time.
 * Timers set by a callback run within the same `advance` if they fall due inside it. Like Node's, a delay below
 * 1 ms (or not a number) counts as 1 ms.
 */
export class FakeClock implements Clock {
  private elapsedMs = 0
  private nextId = 1
  private readonly timers = new Map<number, FakeTimer>()

  /** `startMs` is the wall-clock time (epoch ms) the clock starts at; monotonic time starts at 0. */
  constructor(private readonly startMs = 1_700_000_000_000) {}

  now(): number {
    return this.startMs + this.elapsedMs
  }

  monotonic(): number {
    return this.elapsedMs
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    return this.add(callback, ms, undefined)
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    if (handle !== undefined) this.timers.delete(handle as unknown as number)
  }

  setInterval(callback: () => void, ms: number): TimerHandle {
    return this.add(callback, ms, delayOf(ms))
  }

  clearInterval(handle: TimerHandle | undefined): void {
    this.clearTimeout(handle)
  }

  /** Moves time on by `ms`, running every timer due by then. */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new Error(`advance needs a duration >= 0, got ${ms}`)
    const target = this.elapsedMs + ms
    for (let next = this.nextDue(target); next; next = this.nextDue(target)) {
      this.elapsedMs = next.dueMs
      if (next.periodMs === undefined) this.timers.delete(next.id)
      else next.dueMs += next.periodMs
      next.callback()
    }
    this.elapsedMs = target
  }

  /** Moves time on to the next pending timer and runs it (and any due at the same time); false if none is pending. */
  runNext(): boolean {
    const next = this.nextDue(Infinity)
    if (!next) return false
    this.advance(next.dueMs - this.elapsedMs)
    return true
  }

  /** The pending timers, soonest first: in how long each runs, and the period of an interval. */
  pending(): { inMs: number; periodMs: number | undefined }[] {
    return [...this.timers.values()].sort(byDue).map((timer) => ({ inMs: timer.dueMs - this.elapsedMs, periodMs: timer.periodMs }))
  }

  private add(callback: () => void, ms: number, periodMs: number | undefined): TimerHandle {
    const id = this.nextId++
    this.timers.set(id, { id, callback, dueMs: this.elapsedMs + delayOf(ms), periodMs })
    return id as unknown as TimerHandle
  }

  private nextDue(byMs: number): FakeTimer | undefined {
    let next: FakeTimer | undefined
    for (const timer of this.timers.values()) if (timer.dueMs <= byMs && (!next || byDue(timer, next) < 0)) next = timer
    return next
  }
}

function delayOf(ms: number): number {
  return ms >= 1 && ms <= 2_147_483_647 ? ms : 1
}

function byDue(a: FakeTimer, b: FakeTimer): number {
  return a.dueMs - b.dueMs || a.id - b.id
}
