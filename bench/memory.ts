/**
 * Section 4, controller memory: RSS of our controller (from /proc/<pid>/status) idle, with `memoryTasks` small
 * tasks queued, after they have run, and after `purgeResults({ msgIds: 'all' })`.
 *
 * Tasks are queued by submitting them while no engine is registered (they wait in the scheduler). The idle
 * figure is taken after a warm-up with 2 engines that are then stopped, so the baseline already holds the
 * compiled code and buffers a working controller has; fresh engines then run the queued tasks.
 */
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Client } from '../src/index.js'
import { silentLogger } from '../src/common/log.js'
import type { Sizes } from './lib/config.js'
import { peakRssBytes, repoRoot, rssBytes, startJsEngines, startOurController, waitFor, type Proc, type Scope } from './lib/processes.js'
import { ENGINES } from './stack.js'

/** The controller's own view after a forced full GC (bench/lib/memory-probe.ts): what is still referenced. */
export interface AfterGc {
  rss: number
  /** V8 heap the process holds (committed), and the part of it in use. */
  heapTotal: number
  heapUsed: number
  /** Memory of Buffers and other objects outside the V8 heap (zeromq messages included). */
  external: number
}

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
  /** The same moments after a forced garbage collection. */
  afterGc: { idle: AfterGc; queued: AfterGc; finished: AfterGc; purged: AfterGc | null }
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

/** Asks the probe in the controller for a full GC and its memory usage. */
async function afterGc(proc: Proc): Promise<AfterGc> {
  const before = proc.output().split('@@MEMORY@@').length
  proc.child.kill('SIGUSR2')
  await waitFor(() => proc.output().split('@@MEMORY@@').length > before, 'the memory probe', 30_000)
  const usage = JSON.parse(proc.output().split('@@MEMORY@@ ').at(-1)?.split('\n')[0] ?? '{}') as NodeJS.MemoryUsage
  return { rss: usage.rss, heapTotal: usage.heapTotal, heapUsed: usage.heapUsed, external: usage.external }
}

export async function measureMemory(scope: Scope, sizes: Sizes): Promise<MemoryFigures> {
  // hwm 0, so that once engines come the queue drains at engine speed rather than one round trip per task.
  const probe = ['--expose-gc', '--import', join(repoRoot, 'dist', 'bench', 'lib', 'memory-probe.js')]
  const controller = await startOurController(scope, ['--scheme=leastload', '--hwm=0', `--ping=${sizes.clusterPingMs}`], probe)
  const pid = controller.proc.pid
  const gc = (): Promise<AfterGc> => afterGc(controller.proc)
  const warmEngines = startJsEngines(scope, controller.profileDir, ENGINES)
  const client = new Client({ profileDir: controller.profileDir, log: silentLogger })
  scope.teardown(() => client.close())
  await client.waitForEngines(ENGINES, { timeoutMs: 60_000 })
  const view = client.loadBalancedView()
  await Promise.all(Array.from({ length: Math.min(sizes.memoryTasks / 2, 1000) }, (_, i) => view.apply(echo, i)))
  await Promise.all(warmEngines.map((e) => e.stop()))
  await waitFor(() => client.ids.length === 0, 'the warm-up engines to unregister', 60_000)
  const idleBytes = await settledRss(pid)
  const idleGc = await gc()

  let t0 = performance.now()
  const results = Array.from({ length: sizes.memoryTasks }, (_, i) => view.apply(echo, i))
  for (;;) {
    const status = await client.queueStatus()
    if (status.unassigned >= sizes.memoryTasks) break
    await sleep(100)
  }
  const submitSeconds = (performance.now() - t0) / 1000
  const queuedBytes = await settledRss(pid)
  const queuedGc = await gc()

  t0 = performance.now()
  startJsEngines(scope, controller.profileDir, ENGINES)
  await Promise.all(results)
  const runSeconds = (performance.now() - t0) / 1000
  const finishedBytes = await settledRss(pid)
  const finishedGc = await gc()

  const purgeResults = (client as unknown as Purging).purgeResults
  let purgedBytes: number | null = null
  let purgedGc: AfterGc | null = null
  if (typeof purgeResults === 'function') {
    await purgeResults.call(client, { msgIds: 'all' })
    purgedBytes = await settledRss(pid)
    purgedGc = await gc()
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
    afterGc: { idle: idleGc, queued: queuedGc, finished: finishedGc, purged: purgedGc },
  }
}
