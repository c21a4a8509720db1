/**
 * The quick before/after probe behind "What the changes bought" in docs/performance.md: one cluster (our
 * controller, 2 JS engines, the JS client in this process), one workload repeated, and the CPU each process
 * spent on it, by thread. Much shorter than `npm run bench`, so a change can be judged by running it on the
 * commits before and after, one right after the other.
 *
 *   node dist/bench/probe.js [--workload throughput|map|latency|spin] [--scheme leastload] [--hwm 1] [--n <count>]
 *                            [--task-ms 2] [--rounds 3] [--cpu-prof <dir>] [--controller-arg=--db=none ...]
 *
 * throughput: n echo tasks submitted at once (default 10,000); map: a map of n items (default 100,000) with
 * chunksize 1,000; latency: n sequential applies (default 1,000), median and p10; spin: a map of n calls
 * (default 1,000) of a CPU-bound function of about `--task-ms` ms each, chunksize 1 (one task per call), the shape
 * of docs/cpu-bound-work.md's maps, whose tasks arrive one at a time rather than in bursts. CPU is per thread name:
 * `main` is the JavaScript thread, `node` V8's helper threads (and, in an engine, its executor thread), `ZMQbg/IO/0`
 * ZeroMQ's I/O thread, then how much of it all was spent in the kernel; /proc counts in ticks of 10 ms. Each round
 * also prints the CPU µs per task of each process, for the engines beyond the work itself (the same calls' CPU in
 * this process, measured once before the first round).
 */
import { readdirSync, readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { withScope } from './lib/processes.js'
import { median, percentile } from './lib/stats.js'
import { mapItemsPerSecond, sequentialLatencies, startStack, tasksPerSecond, warmUp } from './stack.js'
import { spin } from './speedup.js'

const WORKLOADS = ['throughput', 'map', 'latency', 'spin'] as const
type Workload = (typeof WORKLOADS)[number]
const DEFAULT_N: Record<Workload, number> = { throughput: 10_000, map: 100_000, latency: 1_000, spin: 1_000 }

const { values } = parseArgs({
  options: {
    workload: { type: 'string', default: 'throughput' },
    scheme: { type: 'string', default: 'leastload' },
    hwm: { type: 'string', default: '1' },
    n: { type: 'string' },
    rounds: { type: 'string', default: '3' },
    'task-ms': { type: 'string', default: '2' },
    'controller-arg': { type: 'string', multiple: true, default: [] },
    'cpu-prof': { type: 'string' },
  },
})
function usage(problem: string): never {
  console.error(`probe: ${problem}`)
  process.exit(2)
}
const workload = values.workload as Workload
if (!WORKLOADS.includes(workload)) usage(`--workload must be one of ${WORKLOADS.join(', ')}, not '${values.workload}'`)
const n = values.n === undefined ? DEFAULT_N[workload] : Number(values.n)
const rounds = Number(values.rounds)
const taskMs = Number(values['task-ms'])
if (!(Number.isInteger(n) && n > 0 && Number.isInteger(rounds) && rounds > 0)) usage('--n and --rounds must be positive integers')
if (!(taskMs > 0)) usage('--task-ms must be a positive number')

/** The key of `cpuByThread` under which the kernel's share of all threads is summed (already in each thread's figure). */
const SYSTEM = 'kernel'

/** CPU milliseconds of each thread of a process, summed by thread name (ZMQbg/IO/0, node, …). */
function cpuByThread(pid: number): Map<string, number> {
  const out = new Map<string, number>()
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const ticks = Number(fields[11]) + Number(fields[12]) // utime + stime, in clock ticks of 10 ms
    // The first thread carries the process's name and is its main (JavaScript) thread.
    const key = tid === String(pid) ? 'main' : name
    out.set(key, (out.get(key) ?? 0) + ticks * 10)
    out.set(SYSTEM, (out.get(SYSTEM) ?? 0) + Number(fields[12]) * 10)
  }
  return out
}

/** Items for `n` calls of `spin` of about `taskMs` ms each, and the CPU ms one call takes in this process. */
function calibrateSpin(n: number, taskMs: number): { spinItems: number[]; workMsPerCall: number } {
  const probeN = 10_000_000
  for (let i = 0; i < 3; i++) spin(probeN) // optimised before it is timed
  let before = process.cpuUsage()
  spin(probeN)
  let used = process.cpuUsage(before)
  const perMs = probeN / ((used.user + used.system) / 1000)
  const spinItems = Array.from({ length: n }, (_, i) => Math.round(taskMs * perMs) + i)
  const sample = spinItems.slice(0, Math.min(n, Math.ceil(500 / taskMs)))
  before = process.cpuUsage()
  for (const x of sample) spin(x)
  used = process.cpuUsage(before)
  return { spinItems, workMsPerCall: (used.user + used.system) / 1000 / sample.length }
}

function spent(before: Map<string, number>, after: Map<string, number>): string {
  const parts = [...after].map(([name, ms]) => [name, ms - (before.get(name) ?? 0)] as const).filter(([name, ms]) => ms > 0 && name !== SYSTEM)
  const kernel = (after.get(SYSTEM) ?? 0) - (before.get(SYSTEM) ?? 0)
  return `${parts.map(([name, ms]) => `${name} ${ms}`).join(', ') || 'none measurable'}${kernel > 0 ? ` (${kernel} of it in the kernel)` : ''}`
}

await withScope(async (scope) => {
  const { controller, engines, client } = await startStack(scope, [`--scheme=${values.scheme}`, `--hwm=${values.hwm}`, ...values['controller-arg']], 'probe', values['cpu-prof'])
  const view = client.loadBalancedView()
  await warmUp(view, 200)
  const processes: [string, number][] = [
    ['controller', controller.proc.child.pid as number],
    ...engines.map((e, i): [string, number] => [`engine ${i}`, e.child.pid as number]),
    ['client', process.pid],
  ]
  const { spinItems, workMsPerCall } = workload === 'spin' ? calibrateSpin(n, taskMs) : { spinItems: [], workMsPerCall: 0 }
  console.log(`probe: ${workload}, n ${n}, ${values.scheme} hwm ${values.hwm}, ${rounds} rounds${workload === 'spin' ? `, ${workMsPerCall.toFixed(2)} ms of CPU per call` : ''}`)
  for (let round = 1; round <= rounds; round++) {
    const before = processes.map(([, pid]) => cpuByThread(pid))
    let figure: string
    if (workload === 'throughput') {
      figure = `${Math.round(await tasksPerSecond(view, n))} tasks/s`
    } else if (workload === 'map') {
      const perSec = await mapItemsPerSecond(view, n, 1000)
      figure = `${((n / perSec) * 1000).toFixed(0)} ms, ${Math.round(perSec)} items/s`
    } else if (workload === 'latency') {
      const latencies = await sequentialLatencies(view, n)
      figure = `median ${median(latencies).toFixed(3)} ms, p10 ${percentile(latencies, 10).toFixed(3)} ms`
    } else {
      const t0 = performance.now()
      const results = await view.map(spin, spinItems, { chunksize: 1 })
      if (results.length !== n) throw new Error('the spin map returned other items')
      figure = `${(performance.now() - t0).toFixed(0)} ms`
    }
    console.log(`round ${round}: ${figure}`)
    const totals = new Map<string, number>()
    processes.forEach(([name, pid], i) => {
      const after = cpuByThread(pid)
      const was = before[i] as Map<string, number>
      console.log(`  ${name} CPU ms: ${spent(was, after)}`)
      const key = name.startsWith('engine') ? 'engines' : name
      const ms = [...after].filter(([thread]) => thread !== SYSTEM).reduce((sum, [thread, ms]) => sum + ms - (was.get(thread) ?? 0), 0)
      totals.set(key, (totals.get(key) ?? 0) + ms)
    })
    // The engines' figure leaves out the calls' own CPU, as measured in this process.
    if (workload === 'spin') totals.set('engines', (totals.get('engines') ?? 0) - n * workMsPerCall)
    const perTask = [...totals].map(([name, ms]) => `${name} ${Math.round((1000 * ms) / n)}`)
    console.log(`  CPU µs per task${workload === 'spin' ? ' (engines: beyond the work)' : ''}: ${perTask.join(', ')}; all ${Math.round((1000 * [...totals.values()].reduce((a, b) => a + b, 0)) / n)}`)
  }
})
