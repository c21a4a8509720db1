/**
 * Section 3: ipyparallel 7.1's Python client and 2 ipengines, first with ipyparallel's own `ipcontroller` (the
 * baseline every "x ipyparallel" ratio refers to), then with our controller in its place. The workloads are
 * those of the stack section, run by bench/ipp_bench.py.
 */
import type { Sizes } from './lib/config.js'
import { startIpcontroller, startIpengines, startOurController, type Scope } from './lib/processes.js'
import { runPythonScript } from './lib/python.js'
import { ENGINES, type StackFigures } from './stack.js'

export const IPP_CONFIGS = ['ipcontroller', 'our controller'] as const
export type IppConfig = (typeof IPP_CONFIGS)[number]

export async function measureIpyparallel(scope: Scope, config: IppConfig, sizes: Sizes): Promise<Partial<StackFigures>> {
  // Both at their default scheme and hwm: leastload, hwm 1.
  const ping = `--ping=${sizes.clusterPingMs}`
  const controller = config === 'ipcontroller' ? await startIpcontroller(scope, [ping]) : await startOurController(scope, [ping])
  startIpengines(scope, controller.profileDir, ENGINES)
  const options = {
    profile_dir: controller.profileDir,
    engines: ENGINES,
    warmup: sizes.warmup,
    sequential: sizes.sequential,
    tasks: sizes.tasks,
    map_items: sizes.mapItems,
    chunksize: sizes.chunksize,
    bulk_bytes: sizes.bulkBytes,
    bulk_reps: sizes.bulkReps,
    workloads: ['latency', 'throughput', 'map', 'bulk'],
  }
  return (await runPythonScript(scope, 'ipp_bench.py', [JSON.stringify(options)], 900_000)) as Partial<StackFigures>
}
