import t from 'tap'
import { HeartMonitor } from '../../src/controller/heart-monitor.js'
import { FakeClock } from '../helpers/fake-clock.js'

const PERIOD_MS = 100

/** A started monitor on a fake clock: `beat()` lets one period pass (judging the last ping, sending the next). */
function monitor(maxMisses = 2) {
  const clock = new FakeClock()
  const pings: string[] = []
  const joined: string[] = []
  const failed: string[] = []
  const back: [string, number][] = []
  const m = new HeartMonitor({
    ping: (p) => pings.push(p.toString()),
    newHeart: (u) => joined.push(u),
    heartFailed: (u) => failed.push(u),
    heartBack: (u, afterMs) => back.push([u, afterMs]),
  }, { periodMs: PERIOD_MS, maxMisses, clock })
  m.start()
  return { m, clock, pings, joined, failed, back, beat: () => clock.advance(PERIOD_MS), last: () => Buffer.from(pings.at(-1) ?? '') }
}

t.test('the first ping goes out at start, then one every period, carrying the seconds since start', async (t) => {
  const h = monitor()
  t.same(h.pings, ['0'])
  h.clock.advance(PERIOD_MS - 1)
  t.same(h.pings, ['0'])
  h.clock.advance(1)
  h.beat()
  t.same(h.pings, ['0', '0.1', '0.2'])
  h.m.close()
  h.clock.advance(10 * PERIOD_MS)
  t.equal(h.pings.length, 3, 'no ping after close')
})

t.test('a heart is new on its first echo of the current ping', async (t) => {
  const h = monitor()
  h.m.pong('A', Buffer.from('nonsense'))
  t.same(h.joined, [])
  h.m.pong('A', h.last())
  t.same(h.joined, ['A'])
  h.m.pong('A', h.last())
  t.same(h.joined, ['A'], 'reported once')
})

t.test('an echo of the previous ping still counts', async (t) => {
  const h = monitor(0)
  const old = h.last()
  h.m.pong('A', old)
  h.beat()
  h.m.pong('A', old)
  h.beat()
  t.same(h.failed, [])
})

t.test('more than maxMisses silent beats in a row stop a heart; an answer resets the count', async (t) => {
  const h = monitor(2)
  h.m.pong('A', h.last())
  h.beat() // answered: 0 misses
  h.beat() // miss 1
  h.m.pong('A', h.last())
  h.beat() // answered
  h.beat() // miss 1
  h.beat() // miss 2
  t.same(h.failed, [])
  h.beat() // miss 3 > 2
  t.same(h.failed, ['A'])
  t.equal(h.m.size, 0)
})

t.test('stop forgets a heart without reporting it', async (t) => {
  const h = monitor(0)
  h.m.pong('A', h.last())
  h.m.stop('A')
  h.beat()
  h.beat()
  t.same(h.failed, [])
})

t.test('an adopted heart is told back on its first answer, with the time since start; a silent one fails', async (t) => {
  const h = monitor(2)
  h.m.adopt('A')
  h.m.adopt('B')
  h.beat()
  h.m.pong('A', h.last())
  t.same(h.back, [['A', PERIOD_MS]])
  t.same(h.joined, [], 'an adopted heart is not new')
  h.beat()
  t.same(h.failed, [])
  h.beat()
  t.same(h.failed, ['B'], 'B, silent since it was adopted, fails at the third beat: more than 2 missed')
})
