/**
 * `npm run bench:speedup`: how much faster CPU-bound work runs on engines than serially, and what share that is of
 * what plain worker threads reach on the same work in the same run. The machine's cores are shared, so the
 * speedup alone drifts with the neighbours' load; the share of the plain-thread speedup drifts less, and when the
 * machine is oversubscribed (more runnable threads than cores) only the CPU share below holds from run to run.
 *
 *   node dist/bench/speedup.js [--engines 1,2,4] [--hwm 1,2] [--runs 3] [--workloads onemax,map-1ms,map-5ms,map-20ms]
 *                              [--scheme leastload] [--scale 1] [--cpu-prof <dir>]
 *
 * Workloads: `onemax` is examples/onemax.ts (population 300, 40 generations, ~0.2 ms per evaluation, chunksize
 * 25); `map-<t>ms` is a map of a CPU-bound function whose every call takes about t ms, chunksize 1 (each call one
 * task). For each run, engine count and hwm, each workload runs three ways one right after the other: serially in
 * this process, split over as many plain worker threads (one message per thread per map, no framework), and over
 * that many engines of a fresh cluster (our controller; the client is this process). Results must be identical
 * to the serial ones. `--scale` multiplies the amount of work (0.25 for a smoke run).
 *
 * The CPU share is the plain threads' CPU time over the CPU time of every process of the engines' run (from
 * /proc, in 10 ms ticks): what the share tends to when the cores are contended, since throughput then follows CPU
 * spent. On a quiet machine the share is limited instead by the time an engine waits between tasks, also
 * printed (from the tasks' `started` and `completed`, in whole milliseconds).
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { Worker } from 'node:worker_threads'
import { Client, type LoadBalancedView, type ResultMetadata } from '../src/index.js'
import { silentLogger } from '../src/common/log.js'
import { evaluate, evolve } from '../examples/onemax.js'
import { describeMachine, load1 } from './lib/machine.js'
import { profileFlags, startJsEngines, startOurController, withScope } from './lib/processes.js'
import { median } from './lib/stats.js'

/** About `n` multiply-adds: the CPU-bound function of the map workloads (sent as source, so self-contained). */
export const spin = (n: number): number => {
  let x = 1
  for (let i = 0; i < n; i++) x = (Math.imul(x, 1103515245) + 12345 + i) | 0
  return x
}

/** One workload of the section, run the same way whatever does its maps. */
interface Workload {
  name: string
  /** Runs the workload with `mapper` doing every map; returns its result for comparison. */
  run(mapper: Mapper): Promise<unknown>
}

/** Maps a function (given as itself: its source is what travels) over items, by some means. */
type Mapper = (fn: (x: never) => unknown, items: unknown[], chunksize: number) => Promise<unknown[]> | unknown[]

/** Iterations of `spin` per millisecond of CPU on this machine (median of 5; CPU time, so neighbours' load does not shrink the tasks). */
function calibrate(): number {
  const n = 20_000_000
  spin(n)
  const times: number[] = []
  for (let i = 0; i < 5; i++) {
    const before = process.cpuUsage()
    spin(n)
    const used = process.cpuUsage(before)
    times.push((used.user + used.system) / 1000)
  }
  return n / median(times)
}

function workloads(names: string[], scale: number, perMs: number): Workload[] {
  return names.map((name): Workload => {
    if (name === 'onemax') {
      const generations = Math.max(2, Math.round(40 * scale))
      return { name, run: (mapper) => evolve((population) => mapper(evaluate, population, 25) as Promise<number[]> | number[], { seed: 1, generations }) }
    }
    const m = /^map-(\d+(?:\.\d+)?)ms$/.exec(name)
    if (!m) throw new Error(`unknown workload '${name}': onemax or map-<t>ms`)
    const ms = Number(m[1])
    // About 1.6 s of serial work whatever the task size.
    const count = Math.max(4, Math.round((1600 * scale) / ms))
    const items = Array.from({ length: count }, (_, i) => Math.round(ms * perMs) + i)
    return { name, run: async (mapper) => mapper(spin, items, 1) }
  })
}

/** `n` plain worker threads; a map sends each thread one contiguous share of the items in one message. */
class PlainThreads {
  private readonly workers: Worker[]

  constructor(n: number) {
    const code = [
      "const { parentPort } = require('node:worker_threads')",
      'const compiled = new Map()',
      'parentPort.on("message", ({ source, items }) => {',
      '  let f = compiled.get(source)',
      '  if (!f) { f = (0, eval)(`(${source})`); compiled.set(source, f) }',
      '  parentPort.postMessage(items.map((x) => f(x)))',
      '})',
    ].join('\n')
    this.workers = Array.from({ length: n }, () => new Worker(code, { eval: true }))
  }

  readonly map: Mapper = async (fn, items) => {
    const source = fn.toString()
    const share = Math.ceil(items.length / this.workers.length)
    const parts = await Promise.all(this.workers.map((w, i) => new Promise<unknown[]>((resolve, reject) => {
      w.once('message', resolve)
      w.once('error', reject)
      w.postMessage({ source, items: items.slice(i * share, (i + 1) * share) })
    })))
    for (const w of this.workers) w.removeAllListeners('error')
    return parts.flat()
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()))
  }
}

const serialMapper: Mapper = (fn, items) => items.map((x) => (fn as (x: unknown) => unknown)(x))
/** Where an engine's time went during maps, from the tasks' own `started`/`completed` (ms, summed over engines). */
class EngineTime {
  tasks = 0
  /** Running tasks. */
  busy = 0
  /** Between one task's end and the next one's start on the same engine, within a map. */
  between = 0

  /** Adds one map's tasks. */
  add(metadata: readonly ResultMetadata[]): void {
    const byEngine = new Map<number | undefined, ResultMetadata[]>()
    for (const m of metadata) byEngine.set(m.engineId, [...(byEngine.get(m.engineId) ?? []), m])
    for (const list of byEngine.values()) {
      const ran = list.filter((m) => m.started && m.completed).sort((a, b) => (a.started as Date).getTime() - (b.started as Date).getTime())
      ran.forEach((m, i) => {
        this.tasks++
        this.busy += (m.completed as Date).getTime() - (m.started as Date).getTime()
        const previous = ran[i - 1]
        if (previous) this.between += Math.max(0, (m.started as Date).getTime() - (previous.completed as Date).getTime())
      })
    }
  }
}

const engineMapper = (view: LoadBalancedView, time: EngineTime): Mapper => async (fn, items, chunksize) => {
  const mapped = view.map(fn as (x: unknown) => unknown, items, { chunksize })
  const values = await mapped
  time.add(mapped.metadata)
  return values
}

/** CPU milliseconds (user + system) a process has spent so far; /proc counts in ticks of 10 ms. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 10
}

/** Wall time of one run of `workload`, the CPU time each of `pids` spent meanwhile, and the result. */
async function timed(workload: Workload, mapper: Mapper, pids: number[]): Promise<{ ms: number; cpu: number[]; result: string }> {
  const before = pids.map(cpuMs)
  const t0 = performance.now()
  const result = await workload.run(mapper)
  const ms = performance.now() - t0
  return { ms, cpu: pids.map((pid, i) => cpuMs(pid) - (before[i] as number)), result: JSON.stringify(result) }
}

export interface SpeedupRow {
  workload: string
  engines: number
  hwm: string
  /** Per run: serial ms / engines ms. */
  engineSpeedups: number[]
  /** Per run: serial ms / plain threads ms. */
  threadSpeedups: number[]
  /** Per run: engine speedup / thread speedup. */
  shares: number[]
  /**
   * Per run: CPU the plain threads' run took (this process) / CPU the engines' run took (engines, controller and
   * this process). What the share tends to when every core is contended, as throughput then follows CPU spent.
   */
  cpuShares: number[]
  /** Per run: ms an engine waited between two tasks of a map, per task. */
  waits: number[]
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      engines: { type: 'string', default: '1,2,4' },
      runs: { type: 'string', default: '3' },
      workloads: { type: 'string', default: 'onemax,map-1ms,map-5ms,map-20ms' },
      scheme: { type: 'string', default: 'leastload' },
      hwm: { type: 'string', default: '1,2' },
      scale: { type: 'string', default: '1' },
      'cpu-prof': { type: 'string' },
    },
  })
  const engineCounts = values.engines.split(',').map(Number)
  const hwms = values.hwm.split(',')
  const runs = Number(values.runs)
  const scale = Number(values.scale)
  if (!engineCounts.every((n) => Number.isInteger(n) && n > 0) || !(Number.isInteger(runs) && runs > 0) || !(scale > 0)) {
    console.error('speedup: --engines must list positive integers, --runs must be a positive integer and --scale a positive number')
    process.exit(2)
  }
  const perMs = calibrate()
  const list = workloads(values.workloads.split(','), scale, perMs)
  const machine = describeMachine()
  console.error(`speedup over serial: ${machine.cpu}, ${machine.cores} cores, node ${machine.node}, load ${load1().toFixed(2)}; spin ${Math.round(perMs)} iterations/ms`)
  const rows = new Map<string, SpeedupRow>()
  for (let run = 1; run <= runs; run++) {
    for (const [n, hwm] of engineCounts.flatMap((n) => hwms.map((hwm) => [n, hwm] as const))) {
      await withScope(async (scope) => {
        const controller = await startOurController(scope, [`--scheme=${values.scheme}`, `--hwm=${hwm}`], profileFlags(values['cpu-prof'], `controller-${n}-hwm${hwm}`))
        const engineProcs = startJsEngines(scope, controller.profileDir, n, (i) => profileFlags(values['cpu-prof'], `engine${i}-of-${n}-hwm${hwm}`))
        const client = new Client({ profileDir: controller.profileDir, log: silentLogger })
        scope.teardown(() => client.close())
        await client.waitForEngines(n, { timeoutMs: 60_000 })
        const threads = new PlainThreads(n)
        scope.teardown(() => threads.close())
        const warmUp = engineMapper(client.loadBalancedView(), new EngineTime())
        // One pass of each to compile and optimise everywhere before timing.
        await warmUp(spin, Array.from({ length: 4 * n }, () => Math.round(5 * perMs)), 1)
        await threads.map(spin, Array.from({ length: 4 * n }, () => Math.round(5 * perMs)), 1)
        await warmUp(evaluate, Array.from({ length: 100 }, () => Array.from({ length: 100 }, () => 1)), 25)
        await threads.map(evaluate, Array.from({ length: 100 }, () => Array.from({ length: 100 }, () => 1)), 25)
        for (const workload of list) {
          const pids = [process.pid, controller.proc.child.pid as number, ...engineProcs.map((p) => p.child.pid as number)]
          const serial = await timed(workload, serialMapper, pids)
          const plain = await timed(workload, threads.map, pids)
          const time = new EngineTime()
          const engines = await timed(workload, engineMapper(client.loadBalancedView(), time), pids)
          if (plain.result !== serial.result || engines.result !== serial.result) throw new Error(`${workload.name}: results differ from the serial run`)
          const key = `${workload.name} ${n} ${hwm}`
          const row = rows.get(key) ?? { workload: workload.name, engines: n, hwm, engineSpeedups: [], threadSpeedups: [], shares: [], cpuShares: [], waits: [] }
          rows.set(key, row)
          const engineSpeedup = serial.ms / engines.ms
          const threadSpeedup = serial.ms / plain.ms
          row.engineSpeedups.push(engineSpeedup)
          row.threadSpeedups.push(threadSpeedup)
          row.shares.push(engineSpeedup / threadSpeedup)
          row.waits.push(time.between / time.tasks)
          row.cpuShares.push((plain.cpu[0] as number) / engines.cpu.reduce((a, b) => a + b, 0))
          console.error(`  run ${run}, ${n} engine(s) hwm ${hwm}, ${workload.name}: serial ${serial.ms.toFixed(0)} ms, threads ${plain.ms.toFixed(0)} ms (${threadSpeedup.toFixed(2)}x), engines ${engines.ms.toFixed(0)} ms (${engineSpeedup.toFixed(2)}x), share ${(engineSpeedup / threadSpeedup).toFixed(2)}; engine wait between tasks ${(time.between / time.tasks).toFixed(2)} ms per task (running ${(time.busy / time.tasks).toFixed(2)}); CPU ms serial ${serial.cpu[0]}, threads ${plain.cpu[0]}, engines ${engines.cpu.slice(2).join('+')} controller ${engines.cpu[1]} client ${engines.cpu[0]}`)
        }
      })
    }
  }
  console.log(table([...rows.values()], runs))
  console.error(`load at the end ${load1().toFixed(2)}`)
}

/** The markdown table: medians over runs, the share's range beside it. */
export function table(rows: SpeedupRow[], runs: number): string {
  const fmt = (x: number): string => x.toFixed(2)
  const lines = [
    `| workload | engines | hwm | speedup over serial | plain threads' speedup | share of plain threads (median, range of ${runs} runs) | CPU share | engine wait between tasks |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  ]
  for (const r of rows) {
    lines.push(`| ${r.workload} | ${r.engines} | ${r.hwm} | ${fmt(median(r.engineSpeedups))}x | ${fmt(median(r.threadSpeedups))}x | ${fmt(median(r.shares))} (${fmt(Math.min(...r.shares))}–${fmt(Math.max(...r.shares))}) | ${fmt(median(r.cpuShares))} | ${fmt(median(r.waits))} ms |`)
  }
  return lines.join('\n')
}

if (process.argv[1]?.endsWith('speedup.js')) {
  try {
    await main()
  } catch (e) {
    console.error(`speedup: ${e instanceof Error ? e.message : String(e)}`)
    process.exitCode = 1
  }
}
