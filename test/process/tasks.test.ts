import t from 'tap'
import { ConfigError, RemoteError, TimeoutError, moduleFunction } from '../../src/index.js'
import { startCluster } from '../helpers/cluster.js'

t.test('apply returns the value; metadata comes from the wire', async (t) => {
  const { client } = await startCluster(t, 1)
  const lview = client.loadBalancedView()
  const ar = lview.apply((a: number, b: number) => {
    console.log('adding', a, b)
    console.error('to stderr')
    return a + b
  }, 1, 2)
  t.equal(await ar, 3)
  const md = ar.metadata
  t.equal(md.engineId, client.ids[0])
  t.ok(md.submitted instanceof Date && md.started instanceof Date && md.completed instanceof Date)
  t.ok((md.started as Date).getTime() >= md.submitted.getTime() - 5, 'started after submitted (same clock, small skew allowed)')
  t.ok((md.completed as Date).getTime() >= (md.started as Date).getTime())
  t.match(md.stdout, /adding 1 2/)
  t.match(md.stderr, /to stderr/)
  t.ok(ar.ready())
  t.ok(ar.successful())
})

t.test('a throwing or rejecting task gives a RemoteError and the engine goes on', async (t) => {
  const { client } = await startCluster(t, 1)
  const lview = client.loadBalancedView()
  await t.rejects(lview.apply(() => {
    throw new TypeError('bad input 42')
  }), { name: 'RemoteError', remoteName: 'TypeError', remoteMessage: 'bad input 42', engineId: client.ids[0] })
  await t.rejects(lview.apply(async () => Promise.reject(new RangeError('async no'))), { remoteName: 'RangeError', message: /async no/ })
  const error = await lview.apply(() => {
    throw new Error('with stack')
  }).get().catch((e: unknown) => e)
  t.ok(error instanceof RemoteError)
  t.match((error as RemoteError).traceback.join('\n'), /with stack/)
  t.equal(await lview.apply(() => 'still here'), 'still here')
})

t.test('a closure over a missing variable is a clear RemoteError', async (t) => {
  const { client } = await startCluster(t, 1)
  const secret = 41
  await t.rejects(client.loadBalancedView().apply(() => secret + 1), {
    remoteName: 'ReferenceError',
    message: /secret is not defined.*(argument|module)/s,
  })
})

t.test('8 MiB of Float64Array goes out and back as its own frames, intact', async (t) => {
  const { client } = await startCluster(t, 1)
  const data = new Float64Array(1 << 20).map((_, i) => i / 3)
  const out = await client.loadBalancedView().apply((a: Float64Array) => {
    for (let i = 0; i < a.length; i++) a[i] = (a[i] as number) * 2
    return a
  }, data)
  t.ok(out instanceof Float64Array)
  t.equal(out.length, 1 << 20)
  t.equal(out[999_999], (999_999 / 3) * 2)
})

t.test('structured clone: Map, Set, Date, BigInt survive the round trip', async (t) => {
  const { client } = await startCluster(t, 1)
  const out = await client.loadBalancedView().apply((m: Map<string, Set<number>>, d: Date, n: bigint) => ({ m, d, n: n * 2n }), new Map([['a', new Set([1, 2])]]), new Date(1000), 2n ** 70n)
  t.same(out.m, new Map([['a', new Set([1, 2])]]))
  t.equal(out.d.getTime(), 1000)
  t.equal(out.n, 2n ** 71n)
})

t.test('what cannot travel is refused at submission, naming what to do', async (t) => {
  const { client } = await startCluster(t, 1)
  const lview = client.loadBalancedView()
  t.throws(() => lview.apply((f: () => number) => f(), () => 1), { name: 'ConfigError', message: /args\[0\].*function/ })
  t.throws(() => lview.apply(Math.max.bind(null, 1)), ConfigError)
  const queue = await client.queueStatus()
  t.equal(queue.unassigned, 0, 'nothing was sent')
  t.equal(await lview.apply(Math.abs, -5), 5, 'a well-known global travels by name')
  const viaModule = moduleFunction(new URL('../helpers/remote-functions.js', import.meta.url), 'triple')
  t.equal(await lview.apply(viaModule, 7), 21, 'a module export is imported by the engine')
})

t.test('map of 10,000 items with chunksize equals the serial map', async (t) => {
  const { client } = await startCluster(t, 2)
  const xs = [...Array(10_000).keys()]
  const ar = client.loadBalancedView().map((x: number) => x ** 2 % 7919, xs, { chunksize: 250 })
  t.equal(ar.msgIds.length, 40, 'one task per chunk')
  t.same(await ar, xs.map((x) => x ** 2 % 7919))
  t.same(new Set(ar.metadata.map((m) => m.engineId)).size, 2, 'both engines took part')
  const lview = client.loadBalancedView()
  const rows = [[1, 2, 3], [], [4]]
  t.same(await lview.map((row: number[]) => row.length, rows, { chunksize: 2 }), [3, 0, 1], 'one input: each element is the one argument, arrays included')
  t.same(await lview.map((a: number, b: string) => `${b}${a}`, [1, 2, 3], ['x', 'y'], { chunksize: 2 }), ['x1', 'y2'], 'two inputs: zipped to the shortest')
  const lazy: string[] = []
  for await (const r of lview.imap((a: number[], b: number) => `${a.length}:${b}`, rows, [7, 8, 9], { chunksize: 2 })) lazy.push(r)
  t.same(lazy, ['3:7', '0:8', '1:9'])
})

t.test('for await: ordered yields in input order, unordered as tasks finish', async (t) => {
  const { client } = await startCluster(t, 2)
  const lview = client.loadBalancedView()
  // The first input is slow, so unordered results put it last.
  const slowFirst = async (x: number): Promise<number> => {
    await new Promise((r) => setTimeout(r, x === 0 ? 1500 : 10))
    return x
  }
  const ordered: number[] = []
  for await (const r of lview.map(slowFirst, [0, 1, 2, 3, 4, 5])) ordered.push(r)
  t.same(ordered, [0, 1, 2, 3, 4, 5])
  const unordered: number[] = []
  for await (const r of lview.map(slowFirst, [0, 1, 2, 3, 4, 5], { ordered: false })) unordered.push(r)
  t.same([...unordered].sort(), [0, 1, 2, 3, 4, 5])
  t.equal(unordered.at(-1), 0, 'the slow first input arrives last')
})

t.test('parallel, withFlags and imap with bounded outstanding tasks', async (t) => {
  const { client } = await startCluster(t, 2)
  const lview = client.loadBalancedView()
  const pf = lview.parallel((x: number) => 10 * x ** 4)
  t.same(await pf.map([0, 1, 2, 3]), [0, 10, 160, 810])
  t.equal(await pf(2), 160)
  const chunked = lview.withFlags({ chunksize: 5 })
  t.equal(chunked.map((x: number) => x, [...Array(20).keys()]).msgIds.length, 4)
  t.equal(lview.map((x: number) => x, [...Array(20).keys()]).msgIds.length, 20, 'withFlags left the original view alone')
  let pulled = 0
  function* inputs(): Generator<number> {
    for (let i = 0; ; i++) {
      pulled++
      yield i
    }
  }
  const seen: number[] = []
  for await (const r of lview.imap((x: number) => x + 1, inputs(), { maxOutstanding: 2 })) {
    seen.push(r)
    t.ok(pulled <= seen.length + 3, `input is read lazily (pulled ${pulled}, seen ${seen.length})`)
    if (seen.length === 10) break
  }
  t.same(seen, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
})

t.test('get(timeoutMs) rejects with TimeoutError; the task keeps running', async (t) => {
  const { client } = await startCluster(t, 1)
  const ar = client.loadBalancedView().apply(async () => {
    await new Promise((r) => setTimeout(r, 1500))
    return 'late'
  })
  await t.rejects(ar.get(50), TimeoutError)
  t.notOk(ar.ready())
  t.equal(await ar.get(30_000), 'late')
})

t.test('queueStatus counts tasks; waitInteractive prints progress to a stream', async (t) => {
  const { client } = await startCluster(t, 2)
  const ar = client.loadBalancedView().map((x: number) => x, [...Array(50).keys()])
  const chunks: string[] = []
  const stream = { isTTY: false, write: (s: string) => chunks.push(s) > 0 } as unknown as NodeJS.WriteStream
  t.ok(await ar.waitInteractive({ stream }))
  t.match(chunks.join(''), /50\/50/)
  const status = await client.queueStatus()
  t.equal(status.unassigned, 0)
  t.equal(client.ids.reduce((sum, id) => sum + (status[id]?.completed ?? 0), 0), 50)
})
