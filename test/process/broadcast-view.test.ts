import t from 'tap'
import { BroadcastView, ConfigError, type ExecuteReply } from '../../src/index.js'
import { startCluster } from '../helpers/cluster.js'

declare const who: string

t.test('a broadcast view from JavaScript, coalescing and not', async (t) => {
  const { client } = await startCluster(t, 4)
  const ids = client.ids
  t.equal(ids.length, 4)
  // A subset of engines in a non-natural order: results must come back in this order.
  const order = [ids[3], ids[0], ids[2]] as number[]

  for (const coalescing of [false, true]) {
    t.test(`coalescing: ${coalescing}`, async (t) => {
      const bv = client.broadcastView(order, { coalescing })
      t.ok(bv instanceof BroadcastView)
      t.equal(bv.coalescing, coalescing)

      const ar = bv.apply((tag: string) => { console.log(`out ${tag}`); return `${tag}-done` }, 'x')
      t.same(await ar, ['x-done', 'x-done', 'x-done'])
      t.same(ar.engineId, order, 'each result names its engine, in target order')
      t.same(ar.metadata.map((m) => m.stdout), ['out x\n', 'out x\n', 'out x\n'], 'each engine\'s output is its own')
      t.same([...(await ar.getDict()).keys()], order)

      await bv.push({ who: `pushed-${String(coalescing)}` })
      t.same(await bv.pull('who'), Array(3).fill(`pushed-${String(coalescing)}`))
      // Values differ per engine: each reply's value lands at its engine's position.
      await client.directView(order).scatter('who', order.map((id) => `engine-${id}`), { flatten: true })
      t.same(await bv.apply(() => who), order.map((id) => `engine-${id}`))
      t.same(await bv.pull('who'), order.map((id) => `engine-${id}`))

      const replies: ExecuteReply[] = await bv.execute('who + "!"')
      t.same(replies.map((r) => r.value), order.map((id) => `engine-${id}!`), 'execute goes out as a broadcast too')

      await bv.scatter('part', [1, 2, 3, 4, 5])
      t.same(await client.directView(order).pull('part'), [[1, 2], [3, 4], [5]])
      t.same(await bv.gather('part'), [1, 2, 3, 4, 5])

      const one = client.broadcastView(ids[1] as number, { coalescing })
      t.equal(await one.apply(() => 7), 7, 'a view of one engine gives one value')
    })

    t.test(`coalescing: ${coalescing}: an engine's error surfaces as in a DirectView`, async (t) => {
      const bv = client.broadcastView(order, { coalescing })
      const failing = order[1] as number
      await client.directView(order).scatter('who', order.map((id) => id), { flatten: true })
      const ar = bv.apply((bad: number) => {
        if ((globalThis as unknown as { who: number }).who === bad) throw new RangeError(`engine ${bad} refuses`)
        return 'fine'
      }, failing)
      await t.rejects(ar, { name: 'RemoteError', remoteName: 'RangeError', engineId: failing, message: new RegExp(`engine ${failing} refuses`) })
      t.same(await ar.get({ returnExceptions: true }).then((values) => values.map((v) => (v instanceof Error ? v.name : v))), ['fine', 'RemoteError', 'fine'], 'the other engines\' values are there')
      t.same(ar.metadata.map((m) => m.status), ['ok', 'error', 'ok'])
      const two = bv.apply(() => { throw new TypeError('all refuse') })
      await t.rejects(two, { name: 'CompositeError' }, 'several failures give a CompositeError')
    })
  }

  t.test('map is refused with a clear error; bad options too', async (t) => {
    const bv = client.broadcastView('all')
    t.throws(() => bv.map((x: number) => x, [1]), { name: 'ConfigError', message: /map is not available on a broadcast view/ })
    t.throws(() => client.broadcastView('all', { coalesce: true } as never), ConfigError)
    t.throws(() => client.broadcastView('all', { coalescing: 'yes' } as never), { message: /coalescing must be a boolean/ })
    t.throws(() => client.broadcastView([99]).apply(() => 1), { name: 'ConfigError', message: /engine 99 is not registered/ })
  })
})
