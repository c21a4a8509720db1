import t from 'tap'
import { ConfigError, type ExecuteReply } from '../../src/index.js'
import { startCluster } from '../helpers/cluster.js'
import { waitFor } from '../helpers/processes.js'

// The engines' globals, as the functions below (sent as source) see them there.
declare const scale: (x: number) => number
declare const factor: number
declare const offset: number

t.test('a DirectView over 4 engines works with their state', async (t) => {
  const { client } = await startCluster(t, 4)
  const dv = client.directView('all')
  const ids = client.ids
  t.equal(ids.length, 4)

  t.test('execute and push set state; a map uses it; pull gets it back', async (t) => {
    const replies = await dv.execute('const offset = 1000\nscale = (x) => x * 2')
    t.equal(replies.length, 4)
    t.same(replies.map((r) => [r.value, r.text]), Array(4).fill([undefined, '[Function: scale]']), 'a function comes back as text only')
    await dv.push({ factor: 3 })
    const mapped = await client.loadBalancedView().map((x: number) => scale(x) * factor + offset, [0, 1, 2, 3, 4, 5, 6, 7])
    t.same(mapped, [1000, 1006, 1012, 1018, 1024, 1030, 1036, 1042])
    t.same(await dv.map((x: number) => scale(x) + offset, [1, 2, 3, 4]), [1002, 1004, 1006, 1008])
    t.same(await dv.pull('factor'), [3, 3, 3, 3])
    t.same(await dv.pull(['factor', 'offset']), Array(4).fill([3, 1000]))
    t.same(await client.directView(ids[2] as number).pull('factor'), 3, 'a view of one engine gives one value')
  })

  t.test('results fetched from the hub: an execute between two applies leaves the applies\' values in place', async (t) => {
    const one = client.directView(ids[0] as number)
    const first = one.apply(() => 'first')
    const exec = one.execute('6 * 7')
    const last = one.apply(() => 'last')
    await Promise.all([first, exec, last])
    const fetched = await client.getResult([...first.msgIds, ...exec.msgIds, ...last.msgIds])
    t.equal(fetched[0], 'first')
    t.match(fetched[1], { text: '42', value: undefined }, 'an execute from the records has its text; its value stays with the live reply')
    t.equal(fetched[2], 'last', 'not taken from the execute\'s frames')
  })

  t.test('scatter then gather of 10,001 items gives them back in order', async (t) => {
    const items = Array.from({ length: 10_001 }, (_, i) => `item ${i}`)
    await dv.scatter('part', items)
    const lengths = await dv.execute('part.length')
    t.same(lengths.map((r) => r.value), [2501, 2500, 2500, 2500], 'contiguous parts, the first one longer')
    t.same((await dv.execute('part[0]')).map((r) => r.value), ['item 0', 'item 2501', 'item 5001', 'item 7501'])
    const gathered = await dv.gather('part')
    t.equal(gathered.length, 10_001)
    t.same(gathered, items)
  })

  t.test('scatter with flatten gives single values; gather joins them; a typed array stays typed', async (t) => {
    await dv.scatter('few', ['a', 'b', 'c'], { flatten: true })
    t.same(await dv.pull('few'), ['a', 'b', 'c', []])
    t.same(await dv.gather('few'), ['a', 'b', 'c'])
    const numbers = Float64Array.from({ length: 10 }, (_, i) => i / 2)
    await dv.scatter('numbers', numbers)
    const back = await dv.gather<Float64Array>('numbers')
    t.ok(back instanceof Float64Array)
    t.same(Array.from(back), Array.from(numbers))
  })

  t.test('execute allows top-level await and gives the last expression\'s value', async (t) => {
    const code = 'const waited = await new Promise((resolve) => setTimeout(() => resolve(21), 5))\nconsole.log("waited")\nwaited * 2'
    const ar = dv.execute(code)
    const replies: ExecuteReply[] = await ar
    t.same(replies.map((r) => [r.value, r.text]), Array(4).fill([42, '42']))
    t.same(ar.metadata.map((m) => m.stdout), Array(4).fill('waited\n'), 'console output is captured like a task\'s')
    t.ok(replies.every((r) => r.executionCount >= 1))
    const one = await client.directView(ids[0] as number).execute('({ engine: "one", list: [1, 2] })')
    t.same(one.value, { engine: 'one', list: [1, 2] })
  })

  t.test('an execute error is a RemoteError with its name; Python code says the engine runs JavaScript', async (t) => {
    const one = client.directView(ids[1] as number)
    await t.rejects(one.execute('notDefinedHere + 1'), { name: 'RemoteError', remoteName: 'ReferenceError', message: /notDefinedHere is not defined/ })
    await t.rejects(one.execute('import numpy as np'), { remoteName: 'SyntaxError', message: /runs JavaScript/ })
    await t.rejects(one.pull('notDefinedHere'), { name: 'RemoteError', remoteName: 'ReferenceError' })
    t.same((await one.execute('1 + 1')).value, 2, 'the engine goes on')
  })

  t.test('result extras: getDict by engine, engineId, wallTimeMs and serialTimeMs', async (t) => {
    const ar = dv.apply(async (ms: number) => {
      await new Promise((resolve) => setTimeout(resolve, ms))
      return process.pid
    }, 50)
    const dict = await ar.getDict<number>()
    t.same([...dict.keys()], ids, 'one entry per engine, in target order')
    t.equal(new Set(dict.values()).size, 4, 'four engine processes')
    t.same(ar.engineId, ids)
    t.ok(ar.serialTimeMs >= 4 * 45, `serialTimeMs adds up the four tasks (${ar.serialTimeMs} ms)`)
    t.ok(ar.wallTimeMs >= 45, `wallTimeMs (${ar.wallTimeMs} ms)`)
    const one = client.directView(ids[2] as number).apply(() => 1)
    await one
    t.equal(one.engineId, ids[2])
  })

  t.test('bad names and values are refused before anything is sent', async (t) => {
    t.throws(() => dv.push({ 'not a name': 1 }), ConfigError)
    t.throws(() => dv.pull('a; b'), ConfigError)
    t.throws(() => dv.push({ f: () => 1 }), ConfigError)
    t.throws(() => dv.scatter('x', 5 as unknown as number[]), ConfigError)
  })

  t.test('clear resets every namespace', async (t) => {
    await dv.push({ kept: 1 })
    t.same(await dv.pull('kept'), [1, 1, 1, 1])
    await dv.clear()
    await t.rejects(dv.pull('kept'), { name: 'CompositeError' })
    await t.rejects(client.directView(ids[0] as number).pull('kept'), { name: 'RemoteError', remoteName: 'ReferenceError' })
    await t.rejects(client.directView(ids[0] as number).execute('offset'), { name: 'RemoteError', remoteName: 'ReferenceError' }, 'declarations of executed code are gone too')
  })

  t.test('sendSignal SIGINT interrupts a running execute with KeyboardInterrupt', async (t) => {
    const one = client.directView(ids[2] as number)
    const spinning = one.execute('console.log("spinning"); for (;;) {}')
    await waitFor(() => spinning.metadata.stdout.includes('spinning'), 'the execute to start')
    await one.sendSignal('SIGINT')
    await t.rejects(spinning, { name: 'RemoteError', remoteName: 'KeyboardInterrupt' })
    t.equal((await one.execute('"still here"')).value, 'still here')
    await t.rejects(one.sendSignal('SIGKILL' as 'SIGINT'), { name: 'ConfigError', message: /sendSignal: give 'SIGINT'/ })
  })

  t.test('client.clear resets the namespace of the engines it names, and only theirs', async (t) => {
    await dv.push({ mark: 'set' })
    await client.clear({ targets: [ids[0] as number] })
    await t.rejects(client.directView(ids[0] as number).pull('mark'), { name: 'RemoteError', remoteName: 'ReferenceError' })
    t.same(await client.directView(ids.slice(1)).pull('mark'), ['set', 'set', 'set'])
    await client.clear()
    await t.rejects(client.directView(ids[1] as number).pull('mark'), { name: 'RemoteError', remoteName: 'ReferenceError' })
  })

  t.test('abort of a running execute interrupts it, and that resets the namespace', async (t) => {
    const one = client.directView(ids[3] as number)
    await one.push({ before: 1 })
    const spinning = one.execute('console.log("spinning"); for (;;) {}')
    await waitFor(() => spinning.metadata.stdout.includes('spinning'), 'the execute to start')
    await one.abort(spinning)
    await t.rejects(spinning, { name: 'TaskAborted' })
    await t.rejects(one.pull('before'), { name: 'RemoteError', remoteName: 'ReferenceError' })
  })
})
