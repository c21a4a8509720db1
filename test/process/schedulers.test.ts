import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { Client } from '../../src/index.js'
import { silentLogger } from '../../src/common/log.js'
import { Controller } from '../../src/controller/controller.js'
import { TaskScheduler } from '../../src/schedulers/task-scheduler.js'
import { startCluster } from '../helpers/cluster.js'
import { codeBlocks } from '../helpers/markdown.js'
import { repoRoot, startEngine, tempDir } from '../helpers/processes.js'

const sleepTask = (ms: number): Promise<number> => new Promise((resolve) => setTimeout(() => resolve(ms), ms))

/** The largest number of tasks any one engine held, sampled from queueStatus until `done` settles. */
async function peakTasksPerEngine(client: Client, done: Promise<unknown>): Promise<number> {
  let finished = false
  void done.finally(() => (finished = true))
  let peak = 0
  while (!finished) {
    const status = await client.queueStatus()
    for (const id of client.ids) peak = Math.max(peak, status[id]?.tasks ?? 0)
  }
  return peak
}

t.test('hwm 1: no engine ever holds two tasks; hwm 0: the backlog goes out at once', async (t) => {
  const one = await startCluster(t, 2)
  const backlog = one.client.loadBalancedView().map(sleepTask, Array(20).fill(30))
  t.equal(await peakTasksPerEngine(one.client, backlog), 1)
  const unlimited = await startCluster(t, 2, ['--hwm=0'])
  const pushed = unlimited.client.loadBalancedView().map(sleepTask, Array(20).fill(30))
  t.ok((await peakTasksPerEngine(unlimited.client, pushed)) > 1, 'with hwm 0 engines hold several tasks')
})

t.test('leastload: while one engine runs a long task, the next short tasks go to the others', async (t) => {
  const { client } = await startCluster(t, 3, ['--hwm=0'])
  const lview = client.loadBalancedView()
  const long = lview.apply(sleepTask, 3000)
  await new Promise<void>((resolve) => {
    const poll = (): void => void client.queueStatus().then((s) => (client.ids.some((id) => s[id]?.tasks === 1) ? resolve() : poll()))
    poll()
  })
  const busy = (await client.queueStatus())
  const busyId = client.ids.find((id) => busy[id]?.tasks === 1)
  const shortOnes: (number | undefined)[] = []
  for (let i = 0; i < 6; i++) {
    const ar = lview.apply((x: number) => x, i)
    await ar
    shortOnes.push(ar.metadata.engineId)
  }
  t.notOk(shortOnes.includes(busyId), `short tasks ran on ${shortOnes.join(',')}, the long one on ${busyId}`)
  t.equal(await long, 3000)
  t.equal(long.metadata.engineId, busyId)
})

t.test('lru cycles through the engines', async (t) => {
  const { client } = await startCluster(t, 3, ['--scheme=lru', '--hwm=0'])
  const lview = client.loadBalancedView()
  const order: (number | undefined)[] = []
  for (let i = 0; i < 9; i++) {
    const ar = lview.apply(() => 0)
    await ar
    order.push(ar.metadata.engineId)
  }
  t.equal(new Set(order.slice(0, 3)).size, 3, `first three on distinct engines: ${order.join(',')}`)
  t.same(order.slice(3, 6), order.slice(0, 3), 'then the same cycle')
  t.same(order.slice(6, 9), order.slice(0, 3))
})

t.test('priorities reorder a backlog', async (t) => {
  const { client } = await startCluster(t, 1)
  const lview = client.loadBalancedView()
  const blocker = lview.apply(sleepTask, 500)
  const low = [0, 1, 2, 3, 4].map((i) => lview.withFlags({ priority: -1 }).apply((x: number) => x, i))
  const normal = [0, 1, 2].map((i) => lview.apply((x: number) => x, i))
  const high = [0, 1, 2, 3, 4].map((i) => lview.withFlags({ priority: 7 }).apply((x: number) => x, i))
  await Promise.all([blocker, ...low, ...normal, ...high])
  const started = (ars: typeof low): number[] => ars.map((a) => (a.metadata.started as Date).getTime())
  t.ok(Math.max(...started(high)) <= Math.min(...started(normal)), 'every high-priority task started before the normal ones')
  t.ok(Math.max(...started(normal)) <= Math.min(...started(low)), 'and every normal one before the low ones')
  const highOrder = high.map((a) => a.metadata.started as Date)
  t.same(highOrder, [...highOrder].sort((a, b) => a.getTime() - b.getTime()), 'FIFO within a priority')
})

t.test('targets restrict placement to those engines', async (t) => {
  const { client } = await startCluster(t, 3, ['--hwm=0'])
  const target = client.ids[1] as number
  const ar = client.loadBalancedView(target).map((x: number) => x, [...Array(12).keys()])
  await ar
  t.same(new Set(ar.metadata.map((m) => m.engineId)), new Set([target]))
  t.throws(() => client.loadBalancedView(99).apply(() => 1), { name: 'ConfigError', message: /engine 99 is not registered/ })
})

t.test('pure: 1,000 tasks cross a native device with no scheduler code on the path', async (t) => {
  // An in-process controller, so that the scheduler's methods can be watched; engines and client are real.
  const calls = { submit: 0, engineReply: 0 }
  // eslint-disable-next-line @typescript-eslint/unbound-method -- the originals are put back on the prototype, where `this` is right
  const original = { submit: TaskScheduler.prototype.submit, engineReply: TaskScheduler.prototype.engineReply }
  TaskScheduler.prototype.submit = function (...args) {
    calls.submit++
    return original.submit.apply(this, args)
  }
  TaskScheduler.prototype.engineReply = function (...args) {
    calls.engineReply++
    return original.engineReply.apply(this, args)
  }
  t.teardown(() => Object.assign(TaskScheduler.prototype, original))
  const run = async (scheme: string): Promise<number[]> => {
    const profileDir = join(tempDir(t), 'profile')
    const controller = await Controller.start({ profileDir, scheme, pingMs: 250, log: silentLogger })
    t.teardown(() => controller.stop())
    startEngine(t, profileDir)
    startEngine(t, profileDir)
    const client = new Client({ profileDir, log: silentLogger })
    t.teardown(() => client.close())
    await client.waitForEngines(2, { timeoutMs: 60_000 })
    return client.loadBalancedView().map((x: number) => x * 3, [...Array(1000).keys()])
  }
  t.same(await run('pure'), [...Array(1000).keys()].map((x) => x * 3))
  t.same(calls, { submit: 0, engineReply: 0 }, 'the scheduler was never called')
  await run('leastload')
  t.same(calls, { submit: 1000, engineReply: 1000 }, 'whereas leastload calls it for every task (the spy works)')
})

t.test('pure: our client refuses what the scheme cannot do, naming the scheme', async (t) => {
  const { client } = await startCluster(t, 1, ['--scheme=pure'])
  const lview = client.loadBalancedView()
  for (const flags of [{ retries: 1 }, { timeoutMs: 100 }, { after: ['some-id'] }, { follow: ['some-id'] }, { targets: client.ids[0] as number }]) {
    t.throws(() => lview.withFlags(flags).apply(() => 1), { name: 'ConfigError', message: /'pure' task scheme, which does not support/ }, JSON.stringify(flags))
  }
  t.equal(await lview.withFlags({ priority: 3 }).apply(() => 'priority ignored'), 'priority ignored')
})

t.test('a scheme of your own, as docs/schedulers.md shows, is loaded with --plugin', async (t) => {
  const block = codeBlocks(join(repoRoot, 'docs', 'schedulers.md'), 'js').find((b) => b.code.includes('export default'))
  if (!block) throw new Error('docs/schedulers.md has no plugin example')
  const file = join(tempDir(t), 'sticky-scheme.js')
  writeFileSync(file, block.code)
  const { client } = await startCluster(t, 3, ['--hwm=0', `--plugin=${file}`, '--scheme=sticky'])
  const lview = client.loadBalancedView()
  const engines = new Set<number | undefined>()
  for (let i = 0; i < 8; i++) {
    const ar = lview.apply(() => 0)
    await ar
    engines.add(ar.metadata.engineId)
  }
  t.equal(engines.size, 1, 'sticky keeps using one engine')
})

t.test('a plugin that is not a scheme module fails at start with a clear message', async (t) => {
  const file = join(tempDir(t), 'bad.js')
  writeFileSync(file, 'export const x = 1\n')
  const { startController } = await import('../helpers/processes.js')
  await t.rejects(startController(t, [`--plugin=${file}`]), /must have a default export \{ name: \(loads, random\) => index \}/)
})
