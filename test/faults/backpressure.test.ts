import { readFileSync } from 'node:fs'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import t from 'tap'
import { startCluster } from '../helpers/cluster.js'

/**
 * Issue 7, item 8: a client pushing a very long lazy input through `imap` holds bounded memory, in itself and in
 * the controller. `JSPARALLEL_BACKPRESSURE_TASKS` sets the number of tasks (default 40,000; `npm run
 * backpressure` runs 1,000,000).
 */
const TASKS = Number(process.env.JSPARALLEL_BACKPRESSURE_TASKS ?? 40_000)
/** The client keeps at most this many tasks in flight: its memory bound, whatever the input's length. */
const OUTSTANDING = 64

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) / 1024 : NaN
}

// A full collection before each sample of the client's heap, so that what is measured is what is kept.
setFlagsFromString('--expose-gc')
const collect = runInNewContext('gc') as () => void

function* range(n: number): Generator<number> {
  for (let i = 0; i < n; i++) yield i
}

t.test(`imap of ${TASKS.toLocaleString('en')} no-op tasks: memory in client and controller stays flat`, async (t) => {
  const { client, proc } = await startCluster(t, 2)
  const lview = client.loadBalancedView()
  // The controller keeps finished records up to its limit (1,024 by default, as ipyparallel) and a window of
  // 65,536 recent signatures against replays: both are full after about 16,000 tasks. Memory is judged after that.
  const warm = Math.min(Math.floor(TASKS / 2), 20_000)
  const samples: { at: number; controller: number; clientHeap: number }[] = []
  const sample = (at: number): void => {
    collect()
    samples.push({ at, controller: rssMiB(proc.pid), clientHeap: process.memoryUsage().heapUsed / 2 ** 20 })
  }
  const checkpoints = new Set([warm, Math.floor((warm + TASKS) / 2), TASKS])
  let n = 0
  let wrong = 0
  const started = performance.now()
  for await (const value of lview.imap((x: number) => x, range(TASKS), { maxOutstanding: OUTSTANDING })) {
    if (value !== n) wrong++
    n++
    if (checkpoints.has(n)) sample(n)
  }
  const seconds = (performance.now() - started) / 1000
  t.equal(n, TASKS, 'every input came back')
  t.equal(wrong, 0, 'in order, each the right value')
  const [first, , last] = samples
  if (!first || !last) throw new Error('no memory samples')
  const line = samples.map((s) => `${s.at}: controller ${s.controller.toFixed(1)} MiB, client heap ${s.clientHeap.toFixed(1)} MiB`).join('; ')
  t.comment(`backpressure: ${TASKS} tasks in ${seconds.toFixed(1)} s (${Math.round(TASKS / seconds)}/s), at most ${OUTSTANDING} in flight; ${line}`)
  t.ok(last.controller < first.controller * 1.1 + 8, `controller RSS flat after warm-up (${first.controller.toFixed(1)} -> ${last.controller.toFixed(1)} MiB)`)
  t.ok(last.clientHeap < first.clientHeap * 1.1 + 4, `client heap flat (${first.clientHeap.toFixed(1)} -> ${last.clientHeap.toFixed(1)} MiB)`)
  const status = await client.queueStatus()
  t.equal(status.unassigned, 0, 'nothing left queued in the controller')
})

t.test('map of 1,000,000 items in chunks of 10,000 completes', async (t) => {
  const { client } = await startCluster(t, 2)
  const values = await client.loadBalancedView().map((x: number) => x * 2, range(1_000_000), { chunksize: 10_000 })
  t.equal(values.length, 1_000_000)
  t.equal(values[999_999], 1_999_998)
  t.equal(values.reduce((a, b) => a + b, 0), 999_999_000_000, 'every item doubled')
})
