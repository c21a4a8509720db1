import t from 'tap'
import type { Header } from '../../src/protocol/messages.js'
import { OutputBuffer } from '../../src/engine/output.js'
import { FakeClock } from '../helpers/fake-clock.js'

const header = (msgId: string): Header => ({ msg_id: msgId, msg_type: 'apply_request', username: 'u', session: 's', date: '', version: '5.3' })

function setup(maxChars = 1000) {
  const clock = new FakeClock()
  const published: [string, string, string][] = []
  const buffer = new OutputBuffer((parent, name, text) => published.push([parent.msg_id, name, text]), 50, maxChars, clock)
  return { clock, published, buffer }
}

t.test('text of one stream of one task is joined until the delay passes', async (t) => {
  const { clock, published, buffer } = setup()
  const a = header('a')
  buffer.write(a, 'stdout', 'one\n')
  clock.advance(49)
  buffer.write(a, 'stdout', 'two\n')
  t.same(published, [])
  clock.advance(1)
  t.same(published, [['a', 'stdout', 'one\ntwo\n']], '50 ms after the first write')
})

t.test('a change of stream or task flushes first, keeping order', async (t) => {
  const { published, buffer } = setup()
  const a = header('a')
  const b = header('b')
  buffer.write(a, 'stdout', '1')
  buffer.write(a, 'stderr', '2')
  buffer.write(b, 'stderr', '3')
  buffer.flush()
  t.same(published, [['a', 'stdout', '1'], ['a', 'stderr', '2'], ['b', 'stderr', '3']])
})

t.test('reaching maxChars publishes at once', async (t) => {
  const { published, buffer } = setup(5)
  buffer.write(header('a'), 'stdout', '123456')
  t.same(published, [['a', 'stdout', '123456']])
})

t.test('flush with nothing pending publishes nothing and cancels the timer', async (t) => {
  const { clock, published, buffer } = setup()
  buffer.write(header('a'), 'stdout', 'x')
  buffer.flush()
  buffer.flush()
  t.same(clock.pending(), [])
  t.equal(published.length, 1)
})

t.test('a tracked task\'s stream messages are counted for its reply, then forgotten', async (t) => {
  const { clock, published, buffer } = setup()
  const a = header('a')
  buffer.track(a)
  buffer.write(a, 'stdout', 'one\n')
  clock.advance(50)
  buffer.write(a, 'stderr', 'two\n')
  buffer.write(a, 'stdout', 'three\n')
  t.equal(buffer.finish(a), 3, 'everything pending is published first, then counted')
  t.equal(published.length, 3)
  t.equal(buffer.finish(a), 0, 'no longer counted')
  const quiet = header('q')
  buffer.track(quiet)
  t.equal(buffer.finish(quiet), 0)
})
