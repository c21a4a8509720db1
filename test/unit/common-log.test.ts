import t from 'tap'
import { RateLimitedWarnings, parseLogLevel, type Logger } from '../../src/common/log.js'
import { FakeClock } from '../helpers/fake-clock.js'

t.test('bad-input warnings are rate limited per window, and the suppressed count is reported later', async (t) => {
  const lines: string[] = []
  const log: Logger = { debug() {}, info() {}, warn: (m) => lines.push(m), error() {} }
  const clock = new FakeClock()
  const drops = new RateLimitedWarnings(log, clock, 3, 1000)
  for (let i = 0; i < 100_000; i++) drops.warn(`bad ${i}`)
  t.same(lines, ['bad 0', 'bad 1', 'bad 2'], '100,000 bad messages, 3 lines')
  clock.advance(1500)
  drops.warn('bad again')
  t.same(lines.slice(3), ['(99997 more like this were not logged in the last 2 s)', 'bad again'])
})

t.test('log levels: ipyparallel numbers and names', async (t) => {
  t.equal(parseLogLevel('10'), 'debug')
  t.equal(parseLogLevel('WARNING'), 'warn')
  t.throws(() => parseLogLevel('loud'), /unknown log level 'loud'/)
})
