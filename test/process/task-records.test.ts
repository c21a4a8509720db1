import t from 'tap'
import { Client } from '../../src/index.js'
import { silentLogger } from '../../src/common/log.js'
import { startCluster } from '../helpers/cluster.js'
import { waitFor, type Teardown } from '../helpers/processes.js'

/**
 * Waits until the controller holds a task of ours: the task and query channels are separate sockets, so a query
 * sent right after a submission may overtake it.
 */
const untilInController = (client: Client): Promise<boolean> =>
  waitFor(async () => {
    const status = await client.queueStatus()
    return status.unassigned + client.ids.reduce((n, id) => n + (status[id]?.tasks ?? 0), 0) > 0
  }, 'the task to reach the controller')

const anotherClient = async (t: Teardown, profileDir: string): Promise<Client> => {
  const other = await Client.connect({ profileDir, log: silentLogger })
  t.teardown(() => other.close())
  return other
}

for (const db of ['memory', 'sqlite']) {
  t.test(`${db} store: another client gets results, output and metadata from the hub`, async (t) => {
    const { client, profileDir } = await startCluster(t, 2, [`--db=${db}`])
    const lview = client.loadBalancedView()
    const tasks = [1, 2, 3].map((i) => lview.apply((x: number) => {
      console.log(`item ${x}`)
      return { x, big: new Float64Array(10_000).fill(x) }
    }, i))
    const values = await Promise.all(tasks)
    const ar = { msgIds: tasks.flatMap((a) => a.msgIds) }
    const other = await anotherClient(t, profileDir)
    const hub = other.getResult(ar.msgIds)
    const fetched = await hub
    t.same(fetched.map((v) => (v as { x: number }).x), [1, 2, 3], 'values in the order asked, including out-of-band frames')
    t.same((fetched[2] as { big: Float64Array }).big, values[2]?.big)
    const md = hub.metadata
    t.match(md[0]?.stdout, /item 1/, 'output captured into the record')
    t.ok(md.every((m) => m.status === 'ok' && m.completed instanceof Date && m.engineId !== undefined))
    t.same(await other.getResult(ar.msgIds[1] as string), values[1], 'one id gives one value')
  })
}

t.test('getResult of an unknown id rejects with the hub\'s KeyError', async (t) => {
  const { client } = await startCluster(t, 1)
  await t.rejects(client.getResult('no-such-task'), { name: 'RemoteError', remoteName: 'KeyError', message: /No such message: no-such-task/ })
})

t.test('getResult of a running task waits for it; resultStatus tells pending from completed', async (t) => {
  const { client } = await startCluster(t, 1)
  const lview = client.loadBalancedView()
  const slow = lview.apply(() => new Promise((r) => setTimeout(() => r('slow done'), 500)))
  await untilInController(client)
  const status = await client.resultStatus(slow.msgIds)
  t.same(status, { pending: slow.msgIds, completed: [] })
  t.equal(await client.getResult(slow.msgIds[0] as string), 'slow done')
  t.same(await client.resultStatus(slow.msgIds), { pending: [], completed: slow.msgIds })
})

t.test('a failed task fetched from the hub rejects with its remote error', async (t) => {
  const { client } = await startCluster(t, 1)
  const bad = client.loadBalancedView().apply(() => {
    throw new TypeError('planned failure')
  })
  await t.rejects(bad)
  await t.rejects(client.getResult(bad.msgIds[0] as string), { remoteName: 'TypeError', message: /planned failure/ })
})

t.test('hubHistory lists tasks by submission; dbQuery filters with operators and keys', async (t) => {
  const { client } = await startCluster(t, 2)
  const lview = client.loadBalancedView()
  const first = await lview.apply(() => 1).then(() => new Date())
  // Record dates are JavaScript Dates (whole milliseconds): let the clock pass `first` before submitting more.
  while (Date.now() <= first.getTime()) await new Promise((resolve) => setImmediate(resolve))
  const later = lview.map((x: number) => x * 2, [1, 2, 3, 4], { chunksize: 1 })
  await later
  const history = await client.hubHistory()
  t.equal(history.length, 5)
  t.same(history.slice(1), later.msgIds, 'oldest first')
  const recent = await client.dbQuery({ submitted: { $gt: first } }, ['msg_id', 'engine_uuid', 'completed'])
  t.same(recent.map((r) => r.msg_id).sort(), [...later.msgIds].sort(), '$gt means after')
  t.ok(recent.every((r) => r.completed instanceof Date && typeof r.engine_uuid === 'string'))
  t.same(Object.keys(recent[0] ?? {}).sort(), ['completed', 'engine_uuid', 'msg_id'], 'only the keys asked for')
  const full = await client.dbQuery({ msg_id: { $in: later.msgIds.slice(0, 2) } })
  t.equal(full.length, 2)
  t.notOk('buffers' in (full[0] ?? {}), 'buffers only when asked for')
  const withBuffers = await client.dbQuery({ msg_id: later.msgIds[0] }, ['buffers', 'result_buffers'])
  t.ok((withBuffers[0]?.buffers?.length ?? 0) >= 2 && (withBuffers[0]?.result_buffers?.length ?? 0) >= 1, 'raw frames come back')
  await t.rejects(client.dbQuery({ completed: { $near: 1 } }), { message: /\$near/ })
})

t.test('purgeResults forgets finished records, refuses running ones', async (t) => {
  const { client } = await startCluster(t, 1)
  const lview = client.loadBalancedView()
  const done = { msgIds: (await Promise.all([1, 2, 3].map(async (x) => {
    const ar = lview.apply((y: number) => y, x)
    await ar
    return ar.msgIds[0] as string
  }))) }
  await client.purgeResults({ msgIds: done.msgIds.slice(0, 1) })
  t.same((await client.hubHistory()).length, 2)
  const running = lview.apply(() => new Promise((r) => setTimeout(r, 2000)))
  await untilInController(client)
  await t.rejects(client.purgeResults({ msgIds: running }), { remoteName: 'IndexError', message: /msg pending/ })
  await client.purgeResults({ msgIds: 'all' })
  t.same(await client.hubHistory(), running.msgIds, 'only the running task is left')
  await t.rejects(client.purgeResults({ targets: 99 }), /engine 99 is not registered|No such engine/)
  await client.abort(running)
  await t.rejects(running, { name: 'TaskAborted' })
})

t.test('resubmit runs a failed task again and an in-flight one a second time, as new tasks', async (t) => {
  const { client, profileDir } = await startCluster(t, 2)
  const lview = client.loadBalancedView()
  const flaky = lview.apply(() => {
    // Fails on its first run only: the marker is a global of the engine that ran it.
    const g = globalThis as { ranBefore?: boolean }
    const first = g.ranBefore !== true
    g.ranBefore = true
    if (first) throw new Error('first run fails')
    return 'second run'
  })
  await t.rejects(flaky, /first run fails/)
  // An engine that ran it before succeeds; one that did not fails (and is then marked): at most two rounds.
  let outcome: unknown
  for (let i = 0; i < 10 && outcome === undefined; i++) {
    const again = client.resubmit(flaky.msgIds)
    await again.renamed
    t.not(again.msgIds[0], flaky.msgIds[0], 'a new msg_id')
    outcome = await again.then((v) => v[0], () => undefined)
  }
  t.equal(outcome, 'second run')
  const [record] = await client.dbQuery({ msg_id: flaky.msgIds[0] }, ['resubmitted'])
  t.type(record?.resubmitted, 'string', 'the original record names its resubmission')

  const inflight = lview.apply((x: number) => new Promise((r) => setTimeout(() => r(x), 300)), 7)
  await untilInController(client)
  const twice = client.resubmit(inflight)
  t.same(await twice, [7])
  t.equal(await inflight, 7, 'the original completes too')
  const other = await anotherClient(t, profileDir)
  await t.rejects(other.resubmit(['invalid']), { remoteName: 'KeyError', message: /No such msg\(s\)/ })
})

t.test('queueStatus returns to zero after a burst', async (t) => {
  const { client } = await startCluster(t, 2)
  await client.loadBalancedView().map((x: number) => x, [...Array(200).keys()], { chunksize: 1 })
  const status = await client.queueStatus()
  t.equal(status.unassigned, 0)
  for (const id of client.ids) t.match(status[id], { queue: 0, tasks: 0 })
  t.equal(client.ids.reduce((sum, id) => sum + (status[id]?.completed ?? 0), 0), 200)
})

t.test('a direct request whose engine dies is recorded as failed, not left pending', async (t) => {
  const { client, engines } = await startCluster(t, 1)
  const [id] = client.ids
  const ar = client.directView(id as number).apply(() => new Promise((r) => setTimeout(r, 120_000)))
  await waitFor(async () => (await client.queueStatus())[id as number]?.queue === 1, 'the request to reach the engine')
  engines[0]?.child.kill('SIGKILL')
  await t.rejects(ar.get(60_000), { name: 'EngineError' })
  await waitFor(async () => (await client.resultStatus(ar.msgIds)).completed.length === 1, 'the record to be completed', 60_000)
  await t.rejects(client.getResult(ar.msgIds[0] as string), { remoteName: 'EngineError', message: /died/ })
})
