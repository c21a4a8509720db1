/**
 * Section 2, our stack: the JS client (this process), our controller and 2 JS engines, for one scheme and hwm.
 * The same four workloads as ipyparallel's section: sequential applies (latency), echo tasks submitted at once
 * (throughput), a chunked map, and a binary echo.
 */
import { Client, type LoadBalancedView } from '../src/index.js'
import { silentLogger } from '../src/common/log.js'
import { controllerArgsOf, type Sizes } from './lib/config.js'
import { profileFlags, startJsEngines, startOurController, type ControllerHandle, type Proc, type Scope } from './lib/processes.js'
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
  const { client } = await startStack(scope, [...controllerArgsOf(config), `--ping=${sizes.clusterPingMs}`], tag, cpuProfDir)
  return runWorkloads(client, sizes)
}

/**
 * Our controller (with `controllerArgs`), ENGINES JS engines and a JS client in this process, the engines
 * registered. `tag` names the CPU profiles when `cpuProfDir` is given.
 */
export async function startStack(scope: Scope, controllerArgs: string[], tag: string, cpuProfDir?: string): Promise<{ controller: ControllerHandle; engines: Proc[]; client: Client }> {
  const controller = await startOurController(scope, controllerArgs, profileFlags(cpuProfDir, `controller-${tag}`))
  const engines = startJsEngines(scope, controller.profileDir, ENGINES, (i) => profileFlags(cpuProfDir, `engine${i}-${tag}`))
  const client = new Client({ profileDir: controller.profileDir, log: silentLogger })
  scope.teardown(() => client.close())
  await client.waitForEngines(ENGINES, { timeoutMs: 60_000 })
  return { controller, engines, client }
}

/** `n` echo tasks submitted at once, so that each engine has run some before a measurement. */
export async function warmUp(view: LoadBalancedView, n: number): Promise<void> {
  await Promise.all(Array.from({ length: n }, (_, i) => view.apply(echo, i)))
}

/** Milliseconds of each of `n` sequential echo applies. */
export async function sequentialLatencies(view: LoadBalancedView, n: number): Promise<number[]> {
  const latencies: number[] = []
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    await view.apply(echo, i)
    latencies.push(performance.now() - t0)
  }
  return latencies
}

/** Echo tasks per second, `n` of them submitted at once. */
export async function tasksPerSecond(view: LoadBalancedView, n: number): Promise<number> {
  const t0 = performance.now()
  await Promise.all(Array.from({ length: n }, (_, i) => view.apply(echo, i)))
  return n / ((performance.now() - t0) / 1000)
}

/** Items per second of an echo map over `n` integers; checks that the items came back. */
export async function mapItemsPerSecond(view: LoadBalancedView, n: number, chunksize: number): Promise<number> {
  const items = Array.from({ length: n }, (_, i) => i)
  const t0 = performance.now()
  const mapped = await view.map(echo, items, { chunksize })
  const perSec = n / ((performance.now() - t0) / 1000)
  if (mapped.length !== n || mapped[n - 1] !== n - 1) throw new Error('map returned other items')
  return perSec
}

/** The four workloads through a connected JS client with engines registered. */
export async function runWorkloads(client: Client, sizes: Sizes): Promise<StackFigures> {
  const view = client.loadBalancedView()
  await warmUp(view, sizes.warmup)
  const latencies = await sequentialLatencies(view, sizes.sequential)
  const tasksPerSec = await tasksPerSecond(view, sizes.tasks)
  const mapItemsPerSec = await mapItemsPerSecond(view, sizes.mapItems, sizes.chunksize)

  const data = new Uint8Array(sizes.bulkBytes).fill(7)
  const bulk: number[] = []
  for (let i = 0; i < sizes.bulkReps; i++) {
    const t0 = performance.now()
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
