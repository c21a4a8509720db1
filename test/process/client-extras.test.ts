import { readFileSync } from 'node:fs'
import t from 'tap'
import { Client, ConfigError } from '../../src/index.js'
import { silentLogger } from '../../src/common/log.js'
import { startCluster } from '../helpers/cluster.js'
import { Point } from '../helpers/point.js'

t.test('a Client from the registration URL and key alone', async (t) => {
  const { client, clientFile } = await startCluster(t, 2)
  const file = JSON.parse(readFileSync(clientFile, 'utf8')) as { registration: number; key: string }
  const url = `tcp://127.0.0.1:${file.registration}`
  const byUrl = new Client({ url, key: file.key, log: silentLogger })
  t.teardown(() => byUrl.close())
  await byUrl.waitForEngines(2, { timeoutMs: 30_000 })
  t.same(byUrl.ids, client.ids)
  t.same(await byUrl.loadBalancedView().map((x: number) => x + 1, [1, 2, 3]), [2, 3, 4], 'tasks go through the channels it was told of')
  t.same(await byUrl.broadcastView('all').apply(() => 'b'), ['b', 'b'], 'so do broadcasts')

  const wrongKey = new Client({ url, key: 'not-the-key', timeoutMs: 1000, log: silentLogger })
  t.teardown(() => wrongKey.close())
  await t.rejects(wrongKey.ready, { name: 'TimeoutError', message: /is the key right/ }, 'a wrong key is not answered, and the error says to check it')

  t.throws(() => new Client({ url }), { name: 'ConfigError', message: /url needs key/ })
  t.throws(() => new Client({ url: 'http://127.0.0.1:1', key: '' }), { name: 'ConfigError', message: /tcp:\/\/<host>:<port>/ })
  t.throws(() => new Client({ url, key: '', profileDir: '/tmp' }), { name: 'ConfigError', message: /give url or profileDir, not both/ })
  t.throws(() => new Client({ key: 'k' }), ConfigError)
})

t.test('a registered class crosses client -> engine -> client as itself', async (t) => {
  const { client } = await startCluster(t, 2)
  const dv = client.directView('all')
  // On the engine: the argument is a Point (its method works), and a Point made there comes back as one.
  const back = await dv.apply((p: Point) => {
    const type = (p as object).constructor.name
    return { type, norm: p.norm(), moved: new (p.constructor as typeof Point)(p.x + 1, p.y + 1) }
  }, new Point(3, 4))
  t.equal(back.length, 2)
  for (const r of back) {
    t.equal(r.type, 'Point', 'an instance on the engine')
    t.equal(r.norm, 5)
    t.ok(r.moved instanceof Point, 'an instance back in the client')
    t.same([r.moved.x, r.moved.y], [4, 5])
  }
  const nested = await client.loadBalancedView().apply((m: Map<string, Point[]>) => m, new Map([['a', [new Point(1, 2)]]]))
  t.ok(nested.get('a')?.[0] instanceof Point, 'inside a Map and an array too')
  await dv.push({ stored: new Point(6, 8) })
  const pulled = await dv.pull('stored')
  t.ok(pulled.every((p) => p instanceof Point && (p).norm() === 10), 'push and pull keep the class')

  class Unregistered {
    constructor(readonly v: number) {}
  }
  const plain = await client.loadBalancedView().apply((u: Unregistered) => u, new Unregistered(1))
  t.notOk(plain instanceof Unregistered, 'an unregistered class comes back as a plain object, as before')
  t.same(plain, { v: 1 })
})

t.test('imap cancel stops submitting and aborts the tasks in flight', async (t) => {
  const { client } = await startCluster(t, 2)
  let read = 0
  function* endless() {
    for (let i = 0; ; i++) {
      read++
      yield i
    }
  }
  const it = client.loadBalancedView().imap((i: number) => (i === 0 ? 0 : new Promise<number>(() => {})), endless(), { maxOutstanding: 3 })
  const first = await it.next()
  t.same(first, { value: 0, done: false })
  const readThen = read
  const pending = it.next()
  await it.cancel()
  t.same(await pending, { value: undefined, done: true }, 'the iteration ends')
  t.ok(read <= readThen + 1, `no more input was read (${read} after ${readThen})`)
  // The engines are free again: the never-ending tasks were aborted (interrupted).
  t.same(await client.loadBalancedView().map((x: number) => x * 2, [1, 2, 3, 4], { returnExceptions: true }), [2, 4, 6, 8])
})

t.test('returnExceptions on a map puts errors in place of values', async (t) => {
  const { client } = await startCluster(t, 2)
  const values = await client.loadBalancedView().map((x: number) => {
    if (x % 2 === 1) throw new RangeError(`odd ${x}`)
    return x
  }, [0, 1, 2, 3], { returnExceptions: true })
  t.same((values as unknown[]).map((v) => (v instanceof Error ? (v as Error & { remoteName: string }).remoteName : v)), [0, 'RangeError', 2, 'RangeError'])
  const pf = client.loadBalancedView().parallel((x: number) => {
    if (x === 1) throw new TypeError('one')
    return x
  }, { returnExceptions: true })
  const mapped = (await pf.map([0, 1, 2])) as unknown[]
  t.same(mapped.map((v) => (v instanceof Error ? 'error' : v)), [0, 'error', 2], 'parallel(fn, { returnExceptions }) is its maps\' default')
})
