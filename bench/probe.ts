/**
 * The quick before/after probe behind "What the changes bought" in docs/performance.md: one cluster (our
 * controller, 2 JS engines, the JS client in this process), one workload repeated, and the CPU each process
 * spent on it, by thread. Much shorter than `npm run bench`, so a change can be judged by running it on the
 * commits before and after, one right after the other.
 *
 *   node dist/bench/probe.js [--workload throughput|map|latency] [--scheme leastload] [--hwm 1] [--n <count>]
 *                            [--rounds 3] [--cpu-prof <dir>]
 *
 * throughput: n echo tasks submitted at once (default 10,000); map: a map of n items (default 100,000) with
 * chunksize 1,000; latency: n sequential applies (default 1,000), median and p10. CPU is per thread name: `main`
 * is the JavaScript thread, `node` V8's helper threads (and, in an engine, its executor thread), `ZMQbg/IO/0`
 * ZeroMQ's I/O thread; /proc counts in ticks of 10 ms.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { withScope } from './lib/processes.js'
import { median, percentile } from './lib/stats.js'
import { mapItemsPerSecond, sequentialLatencies, startStack, tasksPerSecond, warmUp } from './stack.js'

const WORKLOADS = ['throughput', 'map', 'latency'] as const
type Workload = (typeof WORKLOADS)[number]
const DEFAULT_N: Record<Workload, number> = { throughput: 10_000, map: 100_000, latency: 1_000 }

const { values } = parseArgs({
  options: {
    workload: { type: 'string', default: 'throughput' },
    scheme: { type: 'string', default: 'leastload' },
    hwm: { type: 'string', default: '1' },
    n: { type: 'string' },
    rounds: { type: 'string', default: '3' },
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
if (!(Number.isInteger(n) && n > 0 && Number.isInteger(rounds) && rounds > 0)) usage('--n and --rounds must be positive integers')

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
  }
  return out
}

function spent(before: Map<string, number>, after: Map<string, number>): string {
  const parts = [...after].map(([name, ms]) => [name, ms - (before.get(name) ?? 0)] as const).filter(([, ms]) => ms > 0)
  return parts.map(([name, ms]) => `${name} ${ms}`).join(', ') || 'none measurable'
}

await withScope(async (scope) => {
  const { controller, engines, client } = await startStack(scope, [`--scheme=${values.scheme}`, `--hwm=${values.hwm}`], 'probe', values['cpu-prof'])
  const view = client.loadBalancedView()
  await warmUp(view, 200)
  const processes: [string, number][] = [
    ['controller', controller.proc.child.pid as number],
    ...engines.map((e, i): [string, number] => [`engine ${i}`, e.child.pid as number]),
    ['client', process.pid],
  ]
  console.log(`probe: ${workload}, n ${n}, ${values.scheme} hwm ${values.hwm}, ${rounds} rounds`)
  for (let round = 1; round <= rounds; round++) {
    const before = processes.map(([, pid]) => cpuByThread(pid))
    let figure: string
    if (workload === 'throughput') {
      figure = `${Math.round(await tasksPerSecond(view, n))} tasks/s`
    } else if (workload === 'map') {
      const perSec = await mapItemsPerSecond(view, n, 1000)
      figure = `${((n / perSec) * 1000).toFixed(0)} ms, ${Math.round(perSec)} items/s`
    } else {
      const latencies = await sequentialLatencies(view, n)
      figure = `median ${median(latencies).toFixed(3)} ms, p10 ${percentile(latencies, 10).toFixed(3)} ms`
    }
    console.log(`round ${round}: ${figure}`)
    processes.forEach(([name, pid], i) => console.log(`  ${name} CPU ms: ${spent(before[i] as Map<string, number>, cpuByThread(pid))}`))
  }
})
