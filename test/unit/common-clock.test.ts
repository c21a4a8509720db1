// The clock's parts that are not Node's own: the scoped clock that cancels a controller's timers at once, and the
// fake clock every timer-driven unit test relies on.
import t from 'tap'
import { ScopedClock } from '../../src/common/clock.js'
import { FakeClock } from '../helpers/fake-clock.js'

t.test('the fake clock runs due timers in time order (equal times in the order set), each at its own time', async (t) => {
  const clock = new FakeClock(1000)
  const ran: [string, number, number][] = []
  const note = (name: string) => () => ran.push([name, clock.now(), clock.monotonic()])
  clock.setTimeout(note('b@20'), 20)
  clock.setTimeout(note('a@10'), 10)
  clock.setTimeout(note('c@20'), 20)
  clock.setTimeout(note('late'), 31)
  clock.advance(30)
  t.same(ran, [['a@10', 1010, 10], ['b@20', 1020, 20], ['c@20', 1020, 20]])
  t.equal(clock.now(), 1030)
  t.same(clock.pending(), [{ inMs: 1, periodMs: undefined }])
})

t.test('a timer set by a callback runs in the same advance if it falls due within it', async (t) => {
  const clock = new FakeClock(0)
  const ran: number[] = []
  clock.setTimeout(() => {
    ran.push(clock.now())
    clock.setTimeout(() => ran.push(clock.now()), 5)
    clock.setTimeout(() => ran.push(clock.now()), 50)
  }, 10)
  clock.advance(20)
  t.same(ran, [10, 15])
  t.equal(clock.runNext(), true)
  t.same(ran, [10, 15, 60])
  t.equal(clock.runNext(), false)
})

t.test('an interval runs every period until cleared; a cleared timeout never runs; delays below 1 ms count as 1', async (t) => {
  const clock = new FakeClock(0)
  const ran: string[] = []
  const every = clock.setInterval(() => ran.push(`tick ${clock.now()}`), 100)
  const never = clock.setTimeout(() => ran.push('never'), 150)
  clock.clearTimeout(never)
  clock.setTimeout(() => ran.push(`zero ${clock.now()}`), 0)
  clock.advance(250)
  clock.clearInterval(every)
  clock.advance(1000)
  t.same(ran, ['zero 1', 'tick 100', 'tick 200'])
  t.throws(() => clock.advance(-1), /advance needs a duration >= 0/)
})

t.test('a scoped clock cancels every timer still pending at once, and forgets those that ran', async (t) => {
  const clock = new FakeClock(0)
  const scope = new ScopedClock(clock)
  const ran: string[] = []
  scope.setTimeout(() => ran.push('ran before'), 10)
  scope.setTimeout(() => ran.push('timeout'), 100)
  scope.setInterval(() => ran.push('interval'), 30)
  clock.setTimeout(() => ran.push('not in the scope'), 100)
  clock.advance(40)
  t.same(ran, ['ran before', 'interval'])
  scope.cancelAll()
  clock.advance(1000)
  t.same(ran, ['ran before', 'interval', 'not in the scope'])
  t.equal(scope.now(), clock.now())
  t.equal(scope.monotonic(), 1040)
})
