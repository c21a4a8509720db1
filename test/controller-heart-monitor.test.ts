import t from 'tap'
import { HeartMonitor } from '../src/controller/heart-monitor.js'

function monitor(maxMisses = 2) {
  const pings: Buffer[] = []
  const joined: string[] = []
  const failed: string[] = []
  let clock = 0
  const m = new HeartMonitor({ ping: (p) => pings.push(p), newHeart: (u) => joined.push(u), heartFailed: (u) => failed.push(u), lifetime: () => ++clock }, maxMisses)
  return { m, pings, joined, failed, last: () => pings[pings.length - 1] as Buffer }
}

t.test('a heart is new on its first echo of the current ping', async (t) => {
  const h = monitor()
  h.m.beat()
  h.m.pong('A', Buffer.from('nonsense'))
  t.same(h.joined, [])
  h.m.pong('A', h.last())
  t.same(h.joined, ['A'])
  h.m.pong('A', h.last())
  t.same(h.joined, ['A'], 'reported once')
})

t.test('an echo of the previous ping still counts', async (t) => {
  const h = monitor(0)
  h.m.beat()
  const old = h.last()
  h.m.pong('A', old)
  h.m.beat()
  h.m.pong('A', old)
  h.m.beat()
  t.same(h.failed, [])
})

t.test('more than maxMisses silent beats in a row stop a heart; an answer resets the count', async (t) => {
  const h = monitor(2)
  h.m.beat()
  h.m.pong('A', h.last())
  h.m.beat() // answered: 0 misses
  h.m.beat() // miss 1
  h.m.pong('A', h.last())
  h.m.beat() // answered
  h.m.beat() // miss 1
  h.m.beat() // miss 2
  t.same(h.failed, [])
  h.m.beat() // miss 3 > 2
  t.same(h.failed, ['A'])
  t.equal(h.m.size, 0)
})

t.test('stop forgets a heart without reporting it', async (t) => {
  const h = monitor(0)
  h.m.beat()
  h.m.pong('A', h.last())
  h.m.stop('A')
  h.m.beat()
  h.m.beat()
  t.same(h.failed, [])
})
