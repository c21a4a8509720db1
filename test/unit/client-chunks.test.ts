import t from 'tap'
import { chunk, chunkAsync, flattenChunks, mapInputs, mapInputsAsync, partition, splitMapArguments, zipArguments, zipArgumentsAsync } from '../../src/client/chunks.js'
import { applyFlags, DEFAULT_FLAGS, toWireDependency } from '../../src/client/flags.js'

async function collect<T>(source: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const x of source) out.push(x)
  return out
}

t.test('a trailing plain object is the options; arrays and iterables are inputs', async (t) => {
  const xs = [1, 2]
  t.same(splitMapArguments('map', [xs, { chunksize: 3, ordered: false }]), { iterables: [xs], options: { chunksize: 3, ordered: false } })
  const set = new Set([1])
  t.same(splitMapArguments('map', [xs, set]).iterables, [xs, set])
  t.same(splitMapArguments('map', [xs]).options, {})
  t.same(splitMapArguments('imap', [xs, { maxOutstanding: 2 }]).options, { maxOutstanding: 2 })
})

t.test('map arguments are checked', async (t) => {
  t.throws(() => splitMapArguments('map', [[1], { chunk: 2 }]), { name: 'ConfigError', message: /map: unknown option 'chunk'/ })
  t.throws(() => splitMapArguments('map', [[1], { chunksize: 1.5 }]), { message: /chunksize must be an integer ≥ 1, not 1.5/ })
  t.throws(() => splitMapArguments('map', [[1], { maxOutstanding: 2 }]), { message: /unknown option 'maxOutstanding'/ })
  t.throws(() => splitMapArguments('imap', [[1], { maxOutstanding: 0 }]), { message: /maxOutstanding must be an integer ≥ 1/ })
  t.throws(() => splitMapArguments('map', [{ ordered: true }]), { message: /at least one iterable/ })
  t.throws(() => splitMapArguments('map', [[1], 5]), { message: /input 1 is not an iterable/ })
  async function* gen() { yield 1 }
  t.throws(() => splitMapArguments('map', [gen()]), { message: /use imap for async iterables/ })
  t.same(splitMapArguments('imap', [gen()]).iterables.length, 1)
})

t.test('zip stops at the shortest input and closes the others', async (t) => {
  let closed = false
  function* endless() {
    try {
      for (let i = 0; ; i++) yield i
    } finally {
      closed = true
    }
  }
  t.same(zipArguments([[1, 2, 3], endless()]), [[1, 0], [2, 1], [3, 2]])
  t.ok(closed)
  t.same(zipArguments([[]]), [])
})

t.test('lazy zip mixes sync and async inputs and reads only what is asked', async (t) => {
  let pulled = 0
  async function* counter() {
    for (let i = 0; ; i++) {
      pulled++
      yield i
    }
  }
  const it = zipArgumentsAsync([counter(), ['a', 'b', 'c']])
  t.same(await it.next(), { value: [0, 'a'], done: false })
  t.equal(pulled, 1)
  t.same(await collect(it), [[1, 'b'], [2, 'c']])
  t.same(await collect(chunkAsync(zipArgumentsAsync([[1, 2, 3, 4, 5]]), 2)), [[[1], [2]], [[3], [4]], [[5]]])
})

t.test('map inputs: one iterable gives its elements, several give argument lists', async (t) => {
  t.same(mapInputs([new Set([[1], [2, 3]])]), [[1], [2, 3]])
  t.same(mapInputs([[1, 2, 3], 'ab']), [[1, 'a'], [2, 'b']])
  async function* two() {
    yield [1]
    yield [2, 3]
  }
  t.same(await collect(mapInputsAsync([two()])), [[1], [2, 3]])
  t.same(await collect(mapInputsAsync([two(), ['a', 'b', 'c']])), [[[1], 'a'], [[2, 3], 'b']])
})

t.test('chunk and partition', async (t) => {
  t.same(chunk([1, 2, 3, 4, 5], 2), [[1, 2], [3, 4], [5]])
  t.same(chunk([], 3), [])
  t.same(partition([1, 2, 3, 4, 5], 2), [[1, 2, 3], [4, 5]])
  t.same(partition([1, 2], 4), [[1], [2]])
})

t.test('chunk results flatten in order; a non-array chunk result is a protocol error', async (t) => {
  t.same(flattenChunks([[1, 2], [3], []], ['a', 'b', 'c']), [1, 2, 3])
  t.throws(() => flattenChunks([[1], 7], ['a', 'b']), { name: 'ProtocolError', message: /map task b returned number/ })
})

t.test('flags are checked and filled; timeouts stay in ms until the wire', async (t) => {
  const f = applyFlags(DEFAULT_FLAGS, { targets: [3, 1, 3], timeoutMs: 250, retries: 2, chunksize: 4, ordered: false, priority: -3 }, 'withFlags')
  t.same(f, { targets: [1, 3], after: [], follow: [], timeoutMs: 250, retries: 2, chunksize: 4, ordered: false, priority: -3 })
  t.throws(() => applyFlags(DEFAULT_FLAGS, { priority: 1.5 }, 'withFlags'), { message: /priority must be an integer/ })
  t.same(applyFlags(f, { targets: null }, 'setFlags').targets, null)
  t.throws(() => applyFlags(DEFAULT_FLAGS, { timeoutMs: -1 }, 'withFlags'), { name: 'ConfigError', message: /withFlags: timeoutMs must be a number of ms ≥ 0/ })
  t.throws(() => applyFlags(DEFAULT_FLAGS, { retries: 0.5 }, 'withFlags'), { message: /retries must be an integer ≥ 0/ })
  t.throws(() => applyFlags(DEFAULT_FLAGS, { targets: [] }, 'withFlags'), { message: /targets must not be empty/ })
  t.throws(() => applyFlags(DEFAULT_FLAGS, { targets: -1 }, 'withFlags'), { message: /targets must be an engine id/ })
  t.throws(() => applyFlags(DEFAULT_FLAGS, { block: true } as never, 'withFlags'), { message: /unknown flag 'block'/ })
})

t.test('dependencies take ipyparallel wire forms', async (t) => {
  const result = { msgIds: ['m1', 'm2'] }
  t.same(toWireDependency('m0', 'after'), ['m0'])
  t.same(toWireDependency(result, 'after'), ['m1', 'm2'])
  t.same(toWireDependency(['m0', result], 'after'), ['m0', 'm1', 'm2'])
  t.same(toWireDependency({ dependencies: ['m0'], all: false }, 'after'), { dependencies: ['m0'], all: false, success: true, failure: false })
  t.same(toWireDependency(Object.assign(new Set(['m0']), { failure: true }), 'after'), { dependencies: ['m0'], all: true, success: true, failure: true })
  t.throws(() => toWireDependency({ dependencies: ['m0'], success: false }, 'after'), { message: /success, failure, or both/ })
  t.throws(() => toWireDependency([5] as never, 'follow'), { message: /follow: a dependency must be a msg id/ })
})
