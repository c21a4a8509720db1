/**
 * Section 2, our stack: the JS client (this process), our controller and 2 JS engines, for one scheme and hwm.
 * The same four workloads as ipyparallel's section: sequential applies (latency), echo tasks submitted at once
 * (throughput), a chunked map, and a binary echo.
 */
import { Client } from '../src/index.js'
import { silentLogger } from '../src/common/log.js'
import { controllerArgsOf, type Sizes } from './lib/config.js'
import { profileFlags, startJsEngines, startOurController, type Scope } from './lib/processes.js'
import { megabytesPerSecond, median, percentile } from './lib/stats.js'

export interface StackFigures {
  latencyMedianMs: number
  latencyP99Ms: number
  tasksPerSec: number
  mapItemsPerSec: number
  bulkMBps: number
}

export const ENGINES = 2

/** Sent as source to the engines; returns its argument. */
const echo = (x: unknown): unknown => x

/** Starts a cluster for `config` (`leastload hwm=1`, `pure`, ...) and measures the workloads on it. */
export async function measureStack(scope: Scope, config: string, sizes: Sizes, cpuProfDir?: string): Promise<StackFigures> {
  const tag = config.replace(/[^a-z0-9]+/gi, '-')
  const controller = await startOurController(scope, [...controllerArgsOf(config), `--ping=${sizes.clusterPingMs}`], profileFlags(cpuProfDir, `controller-${tag}`))
  startJsEngines(scope, controller.profileDir, ENGINES, (i) => profileFlags(cpuProfDir, `engine${i}-${tag}`))
  const client = new Client({ profileDir: controller.profileDir, log: silentLogger })
  scope.teardown(() => client.close())
  await client.waitForEngines(ENGINES, { timeoutMs: 60_000 })
  return runWorkloads(client, sizes)
}

/** The four workloads through a connected JS client with engines registered. */
export async function runWorkloads(client: Client, sizes: Sizes): Promise<StackFigures> {
  const view = client.loadBalancedView()
  await Promise.all(Array.from({ length: sizes.warmup }, (_, i) => view.apply(echo, i)))

  const latencies: number[] = []
  for (let i = 0; i < sizes.sequential; i++) {
    const t0 = performance.now()
    await view.apply(echo, i)
    latencies.push(performance.now() - t0)
  }

  let t0 = performance.now()
  await Promise.all(Array.from({ length: sizes.tasks }, (_, i) => view.apply(echo, i)))
  const tasksPerSec = sizes.tasks / ((performance.now() - t0) / 1000)

  const items = Array.from({ length: sizes.mapItems }, (_, i) => i)
  t0 = performance.now()
  const mapped = await view.map(echo, items, { chunksize: sizes.chunksize })
  const mapItemsPerSec = sizes.mapItems / ((performance.now() - t0) / 1000)
  if (mapped.length !== sizes.mapItems || mapped[sizes.mapItems - 1] !== sizes.mapItems - 1) throw new Error('map returned other items')

  const data = new Uint8Array(sizes.bulkBytes).fill(7)
  const bulk: number[] = []
  for (let i = 0; i < sizes.bulkReps; i++) {
    t0 = performance.now()
    const back = (await view.apply(echo, data)) as Uint8Array
    bulk.push(performance.now() - t0)
    if (back.byteLength !== sizes.bulkBytes) throw new Error(`the binary echo returned ${back.byteLength} bytes`)
  }
  return {
    latencyMedianMs: median(latencies),
    latencyP99Ms: percentile(latencies, 99),
    tasksPerSec,
    mapItemsPerSec,
    bulkMBps: megabytesPerSecond(sizes.bulkBytes, median(bulk)),
  }
}
