import t from 'tap'
import { Dependency } from '../../src/common/dependency.js'

const done = new Set(['a', 'b'])
const failed = new Set(['x'])

t.test('met: all/any over success/failure', async (t) => {
  const cases: [string[], ConstructorParameters<typeof Dependency>[1], boolean][] = [
    [[], {}, true],
    [['a', 'b'], {}, true],
    [['a', 'c'], {}, false],
    [['a', 'c'], { all: false }, true],
    [['a', 'x'], {}, false],
    [['a', 'x'], { failure: true }, true],
    [['x'], { success: false, failure: true }, true],
    [['a'], { success: false, failure: true }, false],
    [['c', 'x'], { all: false, failure: true, success: false }, true],
  ]
  for (const [ids, options, expected] of cases) t.equal(new Dependency(ids, options).met(done, failed), expected, `${JSON.stringify(ids)} ${JSON.stringify(options)}`)
})

t.test('unreachable: a needed task ended the wrong way (all), or every one did (any)', async (t) => {
  const cases: [string[], ConstructorParameters<typeof Dependency>[1], boolean][] = [
    [[], {}, false],
    [['a', 'x'], {}, true],
    [['a', 'c'], {}, false],
    [['x', 'c'], { all: false }, false],
    [['x'], { all: false }, true],
    [['a'], { success: false, failure: true }, true],
    [['a', 'x'], { failure: true }, false],
  ]
  for (const [ids, options, expected] of cases) t.equal(new Dependency(ids, options).unreachable(done, failed), expected, `${JSON.stringify(ids)} ${JSON.stringify(options)}`)
})

t.test('wire forms round trip; results count by their msg ids; bad input is refused', async (t) => {
  t.same(new Dependency(['a', { msgIds: ['b', 'c'] }]).toWire(), ['a', 'b', 'c'])
  const dict = { dependencies: ['a'], all: false, success: true, failure: true }
  t.same(Dependency.fromWire(dict).toWire(), dict)
  t.same(Dependency.fromWire(['a']).toWire(), ['a'])
  t.ok(Dependency.fromWire(null).empty)
  t.throws(() => Dependency.fromWire([1]), /msg id strings/)
  t.throws(() => Dependency.fromWire({ dependencies: 'a' }), /list of msg id strings/)
  t.throws(() => Dependency.fromWire({ dependencies: [], all: 'yes' }), /'all' must be a boolean/)
  t.throws(() => new Dependency(['a'], { success: false }), /success, failure, or both/)
})
