import t from 'tap'
import { EngineError, TaskAborted } from '../../src/index.js'
import { startCluster } from '../helpers/cluster.js'
import { waitFor } from '../helpers/processes.js'

/*
 * Tasks while they run: interrupted, spinning the CPU, losing their engine. Apart from tasks.test.ts so that each
 * file stays well inside tap's per-file timeout on a busy machine (the 30 s spin alone takes 30 s of it).
 */

t.test('abort interrupts a running task for real; the engine goes on', async (t) => {
  const { client } = await startCluster(t, 1)
  const lview = client.loadBalancedView()
  const spin = lview.apply(() => {
    console.log('spinning')
    for (;;) {
      // spin until the executor thread is terminated
    }
  })
  // The task says it runs (its output reaches the client on iopub while it spins): the abort meets a running task.
  await waitFor(() => spin.metadata.stdout.includes('spinning'), 'the task to start spinning', 60_000)
  await spin.abort()
  await t.rejects(spin, TaskAborted)
  t.equal(await lview.apply(() => 'fresh worker'), 'fresh worker')
})

t.test('a task that spins the CPU for 30 s does not get its engine declared dead', async (t) => {
  const { client, proc } = await startCluster(t, 1)
  const id = client.ids[0]
  const lview = client.loadBalancedView()
  const result = await lview.apply(() => {
    const end = Date.now() + 30_000
    let n = 0
    while (Date.now() < end) n++
    return n > 0
  }).get(120_000)
  t.equal(result, true)
  t.same(client.ids, [id], 'the engine is still registered')
  t.notMatch(proc.output(), /unregistered/, 'no unregistration in the controller log')
})

t.test('an engine that dies while running a task: EngineError, not a hang', async (t) => {
  const { client, engines } = await startCluster(t, 1)
  const ar = client.loadBalancedView().apply(() => {
    console.log('spinning')
    for (;;) {
      // until the engine process is killed
    }
  })
  await waitFor(() => ar.metadata.stdout.includes('spinning'), 'the task to start spinning', 60_000)
  engines[0]?.child.kill('SIGKILL')
  // Detected by the heartbeat (10 missed beats of 250 ms), then the scheduler's grace period.
  await t.rejects(ar.get(60_000), EngineError)
})
