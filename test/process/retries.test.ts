import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { EngineError, ImpossibleDependency, PoisonTask, TaskTimeout } from '../../src/index.js'
import { startCluster } from '../helpers/cluster.js'
import { tempDir, waitFor, type Teardown } from '../helpers/processes.js'

/**
 * A task that, the first time it runs anywhere, prints its engine's pid and waits for a long time; any later run
 * returns at once. The marker file is how runs on different engines know about each other.
 */
const firstRunHangs = (marker: string): Promise<number> => {
  const fs = process.getBuiltinModule('node:fs')
  if (fs.existsSync(marker)) return Promise.resolve(process.pid)
  fs.writeFileSync(marker, String(process.pid))
  console.log(`running in ${process.pid}`)
  return new Promise((resolve) => setTimeout(() => resolve(-1), 120_000))
}

const markerPath = (t: Teardown): string => join(tempDir(t, 'jsparallel-marker-'), 'ran')

t.test('retries: an engine killed mid-task, the task completes on another engine', async (t) => {
  const { client, engines } = await startCluster(t, 2)
  const marker = markerPath(t)
  const ar = client.loadBalancedView().withFlags({ retries: 1 }).apply(firstRunHangs, marker)
  const [, pid] = await waitFor(() => ar.metadata.stdout.match(/running in (\d+)/) ?? undefined, 'the first run to start', 60_000)
  const victim = engines.find((e) => e.pid === Number(pid))
  t.ok(victim, 'the first run is on one of our engines')
  victim?.child.kill('SIGKILL')
  const survivor = await ar.get(60_000)
  t.not(survivor, Number(pid), 'the retry ran on the other engine')
  t.ok(engines.some((e) => e.pid === survivor))
})

t.test('retries: 0 — an engine killed mid-task gives EngineError naming the engine', async (t) => {
  const { client, engines } = await startCluster(t, 2)
  const ar = client.loadBalancedView().apply(firstRunHangs, markerPath(t))
  const [, pid] = await waitFor(() => ar.metadata.stdout.match(/running in (\d+)/) ?? undefined, 'the task to start', 60_000)
  engines.find((e) => e.pid === Number(pid))?.child.kill('SIGKILL')
  const error = await ar.get(60_000).then(() => undefined, (e: unknown) => e)
  t.type(error, EngineError)
  t.match((error as EngineError).message, /[Ee]ngine/)
  t.ok((error as EngineError).engineUuid ?? /[0-9a-f]{8}-/.test((error as EngineError).message), 'the engine is named')
})

t.test('retries exhausted: each engine tried once, the last failure reaches the client', async (t) => {
  const { client } = await startCluster(t, 2)
  const fail = (): never => {
    console.log(`attempt in ${process.pid}`)
    throw new RangeError(`failed in ${process.pid}`)
  }
  const ar = client.loadBalancedView().withFlags({ retries: 1 }).apply(fail)
  const error = await ar.then(() => undefined, (e: unknown) => e as Error)
  t.match(error, { remoteName: 'RangeError' })
  const attempts = [...ar.metadata.stdout.matchAll(/attempt in (\d+)/g)].map((m) => m[1])
  t.equal(new Set(attempts).size, 2, 'one run on each engine')
  t.match(error?.message, new RegExp(`failed in ${attempts.at(-1) ?? 'nothing'}`), 'the error is the last run\'s')
})

t.test('more retries than engines: the task waits for an untried engine, so timeoutMs ends it (as ipyparallel)', async (t) => {
  const { client } = await startCluster(t, 2)
  const ar = client.loadBalancedView().withFlags({ retries: 2, timeoutMs: 500 }).apply(() => {
    throw new RangeError('always')
  })
  await t.rejects(ar, TaskTimeout)
})

t.test('timeoutMs: a task that cannot be scheduled in time fails with TaskTimeout', async (t) => {
  const { client } = await startCluster(t, 1)
  const lview = client.loadBalancedView()
  const blocker = lview.apply(() => new Promise((r) => setTimeout(r, 3000)))
  const late = lview.withFlags({ timeoutMs: 300 }).apply(() => 'never')
  await t.rejects(late, TaskTimeout)
  await blocker
})

t.test('a chain of 100 after tasks completes in order', async (t) => {
  const { client } = await startCluster(t, 2, ['--hwm=0'])
  const lview = client.loadBalancedView()
  const chain = [lview.apply(() => Date.now())]
  for (let i = 1; i < 100; i++) chain.push(lview.withFlags({ after: [chain[i - 1] as (typeof chain)[0]] }).apply(() => Date.now()))
  await Promise.all(chain)
  for (let i = 1; i < chain.length; i++) {
    const previous = chain[i - 1]?.metadata.completed?.getTime() ?? Infinity
    const started = chain[i]?.metadata.started?.getTime() ?? -Infinity
    if (started < previous) t.fail(`task ${i} started before task ${i - 1} completed`)
  }
  t.pass('each started after its predecessor completed')
})

t.test('follow onto an engine that then dies: ImpossibleDependency', async (t) => {
  const { client, engines } = await startCluster(t, 2)
  const lview = client.loadBalancedView()
  const leader = lview.apply(() => process.pid)
  const pid = await leader
  const other = client.ids.find((id) => id !== leader.metadata.engineId) as number
  // A gate on the other engine holds the follower in the scheduler's queue while the leader's engine dies.
  const marker = markerPath(t)
  const gate = lview.withFlags({ targets: [other] }).apply((path: string) => {
    const fs = process.getBuiltinModule('node:fs')
    console.log('gate open')
    return new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        if (fs.existsSync(path)) {
          clearInterval(timer)
          resolve()
        }
      }, 20)
    })
  }, marker)
  const follower = lview.withFlags({ follow: leader, after: gate }).apply(() => 'never')
  await waitFor(() => gate.metadata.stdout.includes('gate open'), 'the gate task to start')
  engines.find((e) => e.pid === pid)?.child.kill('SIGKILL')
  await waitFor(() => !client.ids.includes(leader.metadata.engineId as number), 'the leader engine to be unregistered', 60_000)
  writeFileSync(marker, 'open')
  await gate
  await t.rejects(follower.get(60_000), ImpossibleDependency)
})

t.test('a poison task (it kills every engine it runs on) is given up after 3 engine deaths; other tasks are unaffected', async (t) => {
  const { client, engines } = await startCluster(t, 4)
  const lview = client.loadBalancedView()
  const poison = (): void => {
    console.log(`poison in ${process.pid}`)
    process.kill(process.pid, 'SIGKILL')
  }
  const ar = lview.withFlags({ retries: 5 }).apply(poison)
  const error = await ar.then(() => undefined, (e: unknown) => e)
  t.type(error, PoisonTask, 'a distinct error (a kind of EngineError)')
  t.type(error, EngineError)
  t.match((error as PoisonTask).message, /running on 3 engines that died/)
  t.equal(engines.filter((e) => e.child.exitCode !== null || e.child.signalCode !== null).length, 3, 'three engines died, not six')
  t.same(await lview.map((x: number) => x + 1, [1, 2, 3, 4, 5], { chunksize: 1 }), [2, 3, 4, 5, 6], 'the surviving engine runs other tasks')
})

t.test('a retried task that ends here (no engine left to try) leaves no task counted on the engine that failed it', async (t) => {
  const { client } = await startCluster(t, 1)
  const id = client.ids[0] as number
  const view = client.loadBalancedView([id]).withFlags({ retries: 1 })
  await t.rejects(view.apply(() => {
    throw new Error('fails everywhere')
  }), ImpossibleDependency)
  const status = await client.queueStatus()
  t.same(status[id], { queue: 0, completed: 0, tasks: 0 }, 'the engine holds no task')
  t.equal(status.unassigned, 0)
})
