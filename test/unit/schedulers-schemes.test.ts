import t from 'tap'
import { SchemeRegistry, leastload, lru, plainrandom, twobin, weighted } from '../../src/schedulers/schemes.js'

/** A scripted source of "random" numbers. */
const draws = (...values: number[]): (() => number) => () => {
  const v = values.shift()
  if (v === undefined) throw new Error('ran out of scripted draws')
  return v
}

t.test('leastload: the minimum, ties to the least recently used', async (t) => {
  t.equal(leastload([3, 1, 2], Math.random), 1)
  t.equal(leastload([2, 1, 1, 0, 0], Math.random), 3)
  t.equal(leastload([0, 0, 0], Math.random), 0)
  t.equal(leastload([5], Math.random), 0)
})

t.test('lru ignores loads', async (t) => {
  t.equal(lru([9, 0, 0], Math.random), 0)
})

t.test('plainrandom and twobin follow the draws', async (t) => {
  t.equal(plainrandom([0, 0, 0, 0], draws(0.6)), 2)
  t.equal(twobin([0, 0, 0, 0], draws(0.9, 0.3)), 1)
  t.equal(twobin([0, 0, 0, 0], draws(0.1, 0.8)), 0)
})

t.test('weighted keeps the lighter of two inverse-load draws', async (t) => {
  // loads [1, 0]: weights [~1, 1e6]; nearly every draw lands on index 1.
  t.equal(weighted([1, 0], draws(0.0, 0.99)), 1)
  t.equal(weighted([0, 1], draws(0.0, 0.99999999)), 0)
  // Over many draws the idle engine wins nearly always, and the lighter of two busy ones more often.
  let idle = 0
  let lighter = 0
  for (let i = 0; i < 10_000; i++) {
    if (weighted([4, 0, 4], Math.random) === 1) idle++
    if (weighted([8, 2], Math.random) === 1) lighter++
  }
  t.ok(idle > 9_990, `idle engine chosen ${idle} times of 10000`)
  t.ok(lighter > 8_000, `lighter engine chosen ${lighter} times of 10000`)
})

t.test('registry: the built-in schemes, then custom ones; each registry its own', async (t) => {
  const registry = new SchemeRegistry({ last: (loads) => loads.length - 1 })
  t.same(registry.names(), ['leastload', 'lru', 'plainrandom', 'twobin', 'weighted', 'last'])
  t.equal(registry.get('last')?.([0, 0, 7], Math.random), 2)
  t.equal(registry.get('fastest'), undefined)
  t.equal(new SchemeRegistry().get('last'), undefined, 'another registry does not see it')
  t.throws(() => registry.register('bad name', lru), /must be letters/)
})

t.test('plugin authors import the scheme types and built-ins from jsparallel/schedulers', async (t) => {
  const plugin = await import('jsparallel/schedulers')
  t.equal(plugin.leastload([3, 1, 2], Math.random), 1)
  t.same(new plugin.SchemeRegistry().names(), ['leastload', 'lru', 'plainrandom', 'twobin', 'weighted'])
})
