import t from 'tap'
import { silentLogger } from '../../src/common/log.js'
import { HeartbeatWatchdog } from '../../src/engine/heartbeat.js'
import { FakeClock } from '../helpers/fake-clock.js'

const PERIOD_MS = 3500

function watchdog(maxMisses: number) {
  const clock = new FakeClock()
  const flatlines: number[] = []
  const dog = new HeartbeatWatchdog({ checkPeriodMs: PERIOD_MS, maxMisses, onFlatline: () => flatlines.push(clock.monotonic()), log: silentLogger, clock })
  /** One check period passes. */
  const tick = (): void => clock.advance(PERIOD_MS)
  return { clock, tick, flatlines, dog }
}

t.test('checks every hb_period + 500 ms as given', async (t) => {
  const { clock, dog } = watchdog(3)
  dog.start()
  t.same(clock.pending(), [{ inMs: 3500, periodMs: 3500 }])
})

t.test('the first check never counts as a miss', async (t) => {
  const { tick, dog } = watchdog(3)
  dog.start()
  tick()
  t.equal(dog.missedInARow, 0)
})

t.test('a ping between checks resets the count', async (t) => {
  const { tick, dog, flatlines } = watchdog(3)
  dog.start()
  tick()
  tick()
  tick()
  t.equal(dog.missedInARow, 2)
  dog.ping()
  tick()
  t.equal(dog.missedInARow, 0)
  t.same(flatlines, [])
})

t.test('maxMisses checks in a row without a ping flatline once and stop checking', async (t) => {
  const { clock, tick, dog, flatlines } = watchdog(3)
  dog.start()
  for (let i = 0; i < 10; i++) tick()
  t.same(flatlines, [4 * PERIOD_MS], 'at the fourth check: the first is free, then three misses')
  t.same(clock.pending(), [])
})

t.test('maxMisses 0 disables the watchdog', async (t) => {
  const { clock, dog } = watchdog(0)
  dog.start()
  t.same(clock.pending(), [])
})

t.test('stop ends the checks', async (t) => {
  const { tick, dog, flatlines } = watchdog(1)
  dog.start()
  dog.stop()
  tick()
  tick()
  t.same(flatlines, [])
})
