/**
 * Section 4, controller memory: RSS of our controller (from /proc/<pid>/status) idle, with `memoryTasks` small
 * tasks queued, after they have run, and after `purgeResults({ msgIds: 'all' })`.
 *
 * Tasks are queued by submitting them while no engine is registered (they wait in the scheduler). The idle
 * figure is taken after a warm-up with 2 engines that are then stopped, so the baseline already holds the
 * compiled code and buffers a working controller has; fresh engines then run the queued tasks.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { Client } from '../src/index.js'
import { silentLogger } from '../src/common/log.js'
import type { Sizes } from './lib/config.js'
import { peakRssBytes, rssBytes, startJsEngines, startOurController, waitFor, type Scope } from './lib/processes.js'
import { ENGINES } from './stack.js'

export interface MemoryFigures {
  tasks: number
  idleBytes: number
  queuedBytes: number
  /** (queued - idle) / tasks. */
  perQueuedTaskBytes: number
  finishedBytes: number
  /** RSS after purgeResults, or null when the client has no purgeResults. */
  purgedBytes: number | null
  purge: 'done' | 'purge not available'
  /** VmHWM at the end: the most the controller ever held. */
  peakBytes: number
  submitSeconds: number
  runSeconds: number
}

/** How long the controller is left alone before its RSS is read; the lowest sample in that window counts. */
const SETTLE_MS = 3000

const echo = (x: unknown): unknown => x

type Purging = { purgeResults?: (options: { msgIds: 'all' }) => Promise<void> }

async function settledRss(pid: number): Promise<number> {
  let lowest = rssBytes(pid)
  for (let waited = 0; waited < SETTLE_MS; waited += 250) {
    await sleep(250)
    lowest = Math.min(lowest, rssBytes(pid))
  }
  return lowest
}

export async function measureMemory(scope: Scope, sizes: Sizes): Promise<MemoryFigures> {
  // hwm 0, so that once engines come the queue drains at engine speed rather than one round trip per task.
  const controller = await startOurController(scope, ['--scheme=leastload', '--hwm=0', `--ping=${sizes.clusterPingMs}`])
  const pid = controller.proc.pid
  const warmEngines = startJsEngines(scope, controller.profileDir, ENGINES)
  const client = new Client({ profileDir: controller.profileDir, log: silentLogger })
  scope.teardown(() => client.close())
  await client.waitForEngines(ENGINES, { timeoutMs: 60_000 })
  const view = client.loadBalancedView()
  await Promise.all(Array.from({ length: Math.min(sizes.memoryTasks / 2, 1000) }, (_, i) => view.apply(echo, i)))
  await Promise.all(warmEngines.map((e) => e.stop()))
  await waitFor(() => client.ids.length === 0, 'the warm-up engines to unregister', 60_000)
  const idleBytes = await settledRss(pid)

  let t0 = performance.now()
  const results = Array.from({ length: sizes.memoryTasks }, (_, i) => view.apply(echo, i))
  for (;;) {
    const status = await client.queueStatus()
    if (status.unassigned >= sizes.memoryTasks) break
    await sleep(100)
  }
  const submitSeconds = (performance.now() - t0) / 1000
  const queuedBytes = await settledRss(pid)

  t0 = performance.now()
  startJsEngines(scope, controller.profileDir, ENGINES)
  await Promise.all(results)
  const runSeconds = (performance.now() - t0) / 1000
  const finishedBytes = await settledRss(pid)

  const purgeResults = (client as unknown as Purging).purgeResults
  let purgedBytes: number | null = null
  if (typeof purgeResults === 'function') {
    await purgeResults.call(client, { msgIds: 'all' })
    purgedBytes = await settledRss(pid)
  }
  return {
    tasks: sizes.memoryTasks,
    idleBytes,
    queuedBytes,
    perQueuedTaskBytes: (queuedBytes - idleBytes) / sizes.memoryTasks,
    finishedBytes,
    purgedBytes,
    purge: purgedBytes === null ? 'purge not available' : 'done',
    peakBytes: peakRssBytes(pid),
    submitSeconds,
    runSeconds,
  }
}
