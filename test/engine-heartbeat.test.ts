import t from 'tap'
import { silentLogger } from '../src/common/log.js'
import { HeartbeatWatchdog } from '../src/engine/heartbeat.js'
import type { Timers } from '../src/engine/timers.js'

/** Timers that fire only when the test says so. */
class ManualTimers implements Timers {
  intervals = new Map<number, { callback: () => void; ms: number }>()
  private next = 1
  setInterval(callback: () => void, ms: number): unknown {
    const id = this.next++
    this.intervals.set(id, { callback, ms })
    return id
  }
  clearInterval(handle: unknown): void {
    this.intervals.delete(handle as number)
  }
  setTimeout(): unknown {
    throw new Error('not used')
  }
  clearTimeout(): void {}
  /** One period of every interval. */
  tick(): void {
    for (const { callback } of [...this.intervals.values()]) callback()
  }
}

function watchdog(maxMisses: number) {
  const timers = new ManualTimers()
  const flatlines: number[] = []
  const dog = new HeartbeatWatchdog({ checkPeriodMs: 3500, maxMisses, onFlatline: () => flatlines.push(1), log: silentLogger, timers })
  return { timers, flatlines, dog }
}

t.test('checks every hb_period + 500 ms as given', async (t) => {
  const { timers, dog } = watchdog(3)
  dog.start()
  t.same([...timers.intervals.values()].map((i) => i.ms), [3500])
})

t.test('the first check never counts as a miss', async (t) => {
  const { timers, dog } = watchdog(3)
  dog.start()
  timers.tick()
  t.equal(dog.missedInARow, 0)
})

t.test('a ping between checks resets the count', async (t) => {
  const { timers, dog, flatlines } = watchdog(3)
  dog.start()
  timers.tick()
  timers.tick()
  timers.tick()
  t.equal(dog.missedInARow, 2)
  dog.ping()
  timers.tick()
  t.equal(dog.missedInARow, 0)
  t.same(flatlines, [])
})

t.test('maxMisses checks in a row without a ping flatline once and stop checking', async (t) => {
  const { timers, dog, flatlines } = watchdog(3)
  dog.start()
  for (let i = 0; i < 10; i++) timers.tick()
  t.same(flatlines, [1])
  t.equal(timers.intervals.size, 0)
})

t.test('maxMisses 0 disables the watchdog', async (t) => {
  const { timers, dog } = watchdog(0)
  dog.start()
  t.equal(timers.intervals.size, 0)
})

t.test('stop ends the checks', async (t) => {
  const { timers, dog, flatlines } = watchdog(1)
  dog.start()
  dog.stop()
  timers.tick()
  timers.tick()
  t.same(flatlines, [])
})
