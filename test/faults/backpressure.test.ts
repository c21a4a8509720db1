import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import t from 'tap'
import { Client } from '../../src/index.js'
import { silentLogger } from '../../src/common/log.js'
import { startCluster } from '../helpers/cluster.js'
import { binPath, startEngine, startProcess, tempDir, waitFor } from '../helpers/processes.js'

/**
 * Issue 7, item 8: a client pushing a very long lazy input through `imap` holds bounded memory, in itself and in
 * the controller. `JSPARALLEL_BACKPRESSURE_TASKS` sets the number of tasks (default 40,000; `npm run
 * backpressure` runs 1,000,000).
 */
const TASKS = Number(process.env.JSPARALLEL_BACKPRESSURE_TASKS ?? 40_000)
/** The client keeps at most this many tasks in flight: its memory bound, whatever the input's length. */
const OUTSTANDING = 64
/** Signatures the controller remembers against replays: few, so that the window is full long before the first sample. */
const DIGESTS = 4096

// A full collection before each sample of the client's heap, so that what is measured is what is kept.
setFlagsFromString('--expose-gc')
const collect = runInNewContext('gc') as () => void

function* range(n: number): Generator<number> {
  for (let i = 0; i < n; i++) yield i
}

t.test(`imap of ${TASKS.toLocaleString('en')} no-op tasks: memory in client and controller stays flat`, async (t) => {
  // The controller under --expose-gc: its status line (SIGUSR2) then reports the heap after a full collection.
  const profileDir = join(tempDir(t), 'profile_backpressure')
  const controller = startProcess(t, process.execPath, ['--expose-gc', binPath('controller'), '--profile-dir', profileDir, '--ping=250', '--log-level=warn', `--digest-history-size=${DIGESTS}`])
  await waitFor(() => existsSync(join(profileDir, 'security', 'ipcontroller-client.json')), 'the controller connection files')
  startEngine(t, profileDir)
  startEngine(t, profileDir)
  const client = new Client({ profileDir, log: silentLogger })
  t.teardown(() => client.close())
  await client.waitForEngines(2, { timeoutMs: 60_000 })
  const lview = client.loadBalancedView()
  const controllerMemory = async (): Promise<{ heap: number; external: number; rss: number }> => {
    const before = controller.output().length
    controller.child.kill('SIGUSR2')
    await waitFor(() => controller.output().length > before && /status: .*\n/.test(controller.output().slice(before)), 'the controller status line')
    const m = /heap used ([\d.]+) MiB after a full collection, external ([\d.]+) MiB, RSS ([\d.]+) MiB/.exec(controller.output().slice(before))
    if (!m) throw new Error(`no memory figures in ${controller.output().slice(before)}`)
    return { heap: Number(m[1]), external: Number(m[2]), rss: Number(m[3]) }
  }
  // The controller keeps finished records up to its limit (1,024 by default, as ipyparallel), a window of recent
  // signatures against replays (65,536 by default, two per task: full after 32,768 tasks) and a bounded list of culled
  // ids: its heap grows while those fill, then stays (1,000,000 tasks with the default window: 23.0 MiB at 20,000,
  // 30.4 at 510,000, 30.3 at 1,000,000). The window is made small here so that it is full before the first sample;
  // the rest is judged over the second half.
  const warm = Math.max(Math.floor(TASKS / 2), 20_000)
  const samples: { at: number; heap: number; external: number; rss: number; clientHeap: number }[] = []
  const checkpoints = new Set([warm, Math.floor((warm + TASKS) / 2), TASKS])
  let n = 0
  let wrong = 0
  const started = performance.now()
  for await (const value of lview.imap((x: number) => x, range(TASKS), { maxOutstanding: OUTSTANDING })) {
    if (value !== n) wrong++
    n++
    if (checkpoints.has(n)) {
      collect()
      samples.push({ at: n, ...(await controllerMemory()), clientHeap: process.memoryUsage().heapUsed / 2 ** 20 })
    }
  }
  const seconds = (performance.now() - started) / 1000
  t.equal(n, TASKS, 'every input came back')
  t.equal(wrong, 0, 'in order, each the right value')
  const [first, , last] = samples
  if (!first || !last) throw new Error('no memory samples')
  const line = samples.map((s) => `${s.at}: controller heap ${s.heap.toFixed(1)} + external ${s.external.toFixed(1)} MiB (RSS ${s.rss.toFixed(0)}), client heap ${s.clientHeap.toFixed(1)} MiB`).join('; ')
  t.comment(`backpressure: ${TASKS} tasks in ${seconds.toFixed(1)} s (${Math.round(TASKS / seconds)}/s), at most ${OUTSTANDING} in flight; ${line}`)
  t.ok(last.heap < first.heap * 1.1 + 2, `controller heap flat after warm-up (${first.heap.toFixed(1)} -> ${last.heap.toFixed(1)} MiB)`)
  // Buffers (messages in flight, socket buffers) swing by several MiB from one sample to the next whatever the count
  // of tasks done; a leak of one small buffer per task would pass this bound within the first 100,000 tasks.
  t.ok(samples.every((s) => s.external < 32), `controller buffers bounded (${samples.map((s) => s.external.toFixed(1)).join(', ')} MiB; bound 32 MiB)`)
  t.ok(last.clientHeap < first.clientHeap * 1.1 + 4, `client heap flat (${first.clientHeap.toFixed(1)} -> ${last.clientHeap.toFixed(1)} MiB)`)
  t.equal((await client.queueStatus()).unassigned, 0, 'nothing left queued in the controller')
})

t.test('map of 1,000,000 items in chunks of 10,000 completes', async (t) => {
  const { client } = await startCluster(t, 2)
  const values = await client.loadBalancedView().map((x: number) => x * 2, range(1_000_000), { chunksize: 10_000 })
  t.equal(values.length, 1_000_000)
  t.equal(values[999_999], 1_999_998)
  t.equal(values.reduce((a, b) => a + b, 0), 999_999_000_000, 'every item doubled')
})
