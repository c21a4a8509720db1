/**
 * The results file's shape, the issue-6 targets judged from it, and the Markdown table. Every figure is shown
 * absolute and as ratios to the floor and to ipyparallel measured in the same run.
 */
import type { Config, Sizes } from './lib/config.js'
import type { Machine } from './lib/machine.js'
import { ratio } from './lib/stats.js'
import type { FloorFigures } from './floor.js'
import type { IppConfig } from './ipyparallel.js'
import type { MemoryFigures } from './memory.js'
import type { StackFigures } from './stack.js'
import type { StormController, StormFigures } from './storm.js'

export interface Measured<F> {
  runs: F[]
  median: Partial<F>
}

export interface Target {
  id: string
  goal: string
  /** The measured ratio (or value) the goal is about. */
  measured: number | undefined
  /** Human-readable form of `measured`. */
  shown: string
  /** null when the figures it needs were not measured. */
  met: boolean | null
  note: string
}

export interface Results {
  meta: {
    date: string
    mode: Config['mode']
    sections: Config['sections']
    sizes: Sizes
    machine: Machine
    load1AtStart: number
    load1AtEnd: number
    durationSeconds: number
  }
  floor?: Measured<FloorFigures>
  stack?: Record<string, Measured<StackFigures>>
  ipyparallel?: Partial<Record<IppConfig, Measured<Partial<StackFigures>>>> & { skipped?: string }
  memory?: MemoryFigures
  storm?: Partial<Record<StormController, StormFigures>> & { skipped?: string }
  targets: Target[]
  errors: { section: string; config: string; message: string }[]
}

const x = (r: number | undefined, digits = 2): string => (r === undefined ? '—' : `${r.toFixed(digits)}×`)
const fmt = (v: number | undefined, digits: number): string => (v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(digits))
const int = (v: number | undefined): string => (v === undefined || !Number.isFinite(v) ? '—' : Math.round(v).toLocaleString('en-US'))
const mib = (bytes: number | null | undefined): string => (bytes === null || bytes === undefined ? '—' : `${(bytes / 1024 / 1024).toFixed(1)} MiB`)

function judge(id: string, goal: string, measured: number | undefined, ok: (v: number) => boolean, shown: (v: number) => string, note = ''): Target {
  return { id, goal, measured, shown: measured === undefined ? 'not measured' : shown(measured), met: measured === undefined ? null : ok(measured), note }
}

/** The issue's targets, judged on the leastload configurations (the default scheme). */
export function judgeTargets(r: Results): Target[] {
  const floor = r.floor?.median
  const hwm1 = r.stack?.['leastload hwm=1']?.median
  const hwm0 = r.stack?.['leastload hwm=0']?.median
  const ipp = r.ipyparallel?.ipcontroller?.median
  const pyOurs = r.ipyparallel?.['our controller']?.median
  const mem = r.memory
  const storm = r.storm?.ours
  return [
    judge('throughput-hwm1', 'JS stack, hwm 1: throughput ≥ 30× ipyparallel', ratio(hwm1?.tasksPerSec, ipp?.tasksPerSec), (v) => v >= 30, (v) => x(v, 1)),
    judge('throughput-hwm0', 'JS stack, hwm 0: throughput ≥ 0.5× the pipelined floor', ratio(hwm0?.tasksPerSec, floor?.pipelinedMsgsPerSec), (v) => v >= 0.5, (v) => x(v)),
    judge('latency-floor', 'JS stack: median sequential apply ≤ 2× the floor round trip', ratio(hwm1?.latencyMedianMs, floor?.latencyMedianMs), (v) => v <= 2, (v) => x(v)),
    judge('latency-ipyparallel', 'JS stack: median sequential apply ≥ 7× better than ipyparallel', ratio(ipp?.latencyMedianMs, hwm1?.latencyMedianMs), (v) => v >= 7, (v) => `${x(v, 1)} better`),
    judge('map', 'JS stack: map of 100,000 items ≥ 3× ipyparallel', ratio(hwm1?.mapItemsPerSec, ipp?.mapItemsPerSec), (v) => v >= 3, (v) => x(v)),
    judge('bulk', 'JS stack: 64 MiB echo ≥ 0.8× the floor', ratio(hwm1?.bulkMBps, floor?.bulkMBps), (v) => v >= 0.8, (v) => x(v)),
    judge('python-throughput', 'Python client + ipengines: our controller ≥ 3× the throughput of ipcontroller', ratio(pyOurs?.tasksPerSec, ipp?.tasksPerSec), (v) => v >= 3, (v) => x(v)),
    judge('python-latency', 'Python client + ipengines: our controller ≤ 1/3 the latency of ipcontroller', ratio(pyOurs?.latencyMedianMs, ipp?.latencyMedianMs), (v) => v <= 1 / 3, (v) => x(v)),
    judge('memory-per-task', 'Controller RSS < 2 KB per queued small task', mem?.perQueuedTaskBytes, (v) => v < 2048, (v) => `${int(v)} B/task`),
    judge('memory-after-purge', 'Controller RSS back within 10% of idle after the tasks finish and are purged', mem?.purgedBytes == null ? undefined : ratio(mem.purgedBytes, mem.idleBytes), (v) => v <= 1.1, (v) => `${x(v)} idle`,
      mem === undefined ? '' : mem.purgedBytes === null ? `purge not available; after finishing ${x(ratio(mem.finishedBytes, mem.idleBytes))} idle` : `after finishing, before purge: ${x(ratio(mem.finishedBytes, mem.idleBytes))} idle`),
    judge('storm', '1,000 engines registered within 10 s, none lost', storm?.registeredMs ?? undefined, (v) => v <= 10_000 && storm?.lost === 0 && storm.engines >= 1000, (v) => `${(v / 1000).toFixed(2)} s, ${storm?.lost ?? '?'} lost`,
      storm && storm.engines < 1000 ? `only ${storm.engines} engines in this run` : ''),
  ]
}

/** One row of the workload table: a figure with its ratios to the floor and to ipyparallel. */
function row(name: string, f: Partial<StackFigures> | undefined, floor: Partial<FloorFigures> | undefined, ipp: Partial<StackFigures> | undefined): string {
  if (!f) return `| ${name} | — | — | — | — | — |`
  const lat = `${fmt(f.latencyMedianMs, 3)} ms (${x(ratio(f.latencyMedianMs, floor?.latencyMedianMs))} floor, ${x(ratio(f.latencyMedianMs, ipp?.latencyMedianMs))} ipp)`
  const p99 = `${fmt(f.latencyP99Ms, 3)} ms (${x(ratio(f.latencyP99Ms, floor?.latencyP99Ms))}, ${x(ratio(f.latencyP99Ms, ipp?.latencyP99Ms))})`
  const tput = `${int(f.tasksPerSec)} (${x(ratio(f.tasksPerSec, floor?.pipelinedMsgsPerSec))} floor, ${x(ratio(f.tasksPerSec, ipp?.tasksPerSec), 1)} ipp)`
  const map = `${int(f.mapItemsPerSec)} (${x(ratio(f.mapItemsPerSec, ipp?.mapItemsPerSec))} ipp)`
  const bulk = `${fmt(f.bulkMBps, 0)} (${x(ratio(f.bulkMBps, floor?.bulkMBps))} floor, ${x(ratio(f.bulkMBps, ipp?.bulkMBps))} ipp)`
  return `| ${name} | ${lat} | ${p99} | ${tput} | ${map} | ${bulk} |`
}

export function markdown(r: Results): string {
  const m = r.meta
  const s = m.sizes
  const floor = r.floor?.median
  const ipp = r.ipyparallel?.ipcontroller?.median
  const lines: string[] = []
  lines.push(`Measured ${m.date} (${m.mode} run, median of ${s.runs} run${s.runs === 1 ? '' : 's'}, ${Math.round(m.durationSeconds)} s) on ${m.machine.cpu}, ${m.machine.cores} cores, ${m.machine.os}; Node ${m.machine.node}, zeromq.js ${m.machine.zeromqJs} (libzmq ${m.machine.libzmq}), ipyparallel ${m.machine.ipyparallel}. 1-minute load average ${fmt(m.load1AtStart, 2)} at the start, ${fmt(m.load1AtEnd, 2)} at the end (the machine is shared).`)
  lines.push('')
  if (r.floor || r.stack || r.ipyparallel) {
    lines.push(`### Workloads (2 engines)`)
    lines.push('')
    lines.push(`Latency: ${s.sequential} sequential applies of an echo function. Throughput: ${s.tasks.toLocaleString('en-US')} echo tasks submitted at once. Map: ${s.mapItems.toLocaleString('en-US')} items, chunksize ${s.chunksize}. Binary: a ${(s.bulkBytes / 1024 / 1024).toFixed(0)} MiB echo (Uint8Array from JS, bytes from Python), MB/s = 10^6 bytes per second of round trip. The floor row is raw zeromq through a JavaScript broker (one 100-byte frame per message; its "throughput" is pipelined messages/s); the second floor row sends 8 frames of an apply_request's sizes instead, since zeromq.js pays per frame. Ratios to the floor are to the first row. Ratios are this row's figure divided by the floor's and by ipyparallel's (\`ipcontroller\` + Python client + 2 ipengines) same figure: for latency lower is better, for the rest higher.`)
    lines.push('')
    lines.push('| Configuration | Latency median | p99 | Tasks/s | Map items/s | Binary MB/s |')
    lines.push('|---|---|---|---|---|---|')
    if (floor) {
      lines.push(`| floor: raw zeromq, JS broker | ${fmt(floor.latencyMedianMs, 3)} ms | ${fmt(floor.latencyP99Ms, 3)} ms | ${int(floor.pipelinedMsgsPerSec)} msgs/s | — | ${fmt(floor.bulkMBps, 0)} |`)
      lines.push(`| floor, messages shaped like an apply_request (8 frames) | ${fmt(floor.shapedLatencyMedianMs, 3)} ms | — | ${int(floor.shapedPipelinedMsgsPerSec)} msgs/s | — | — |`)
    }
    for (const [name, measured] of Object.entries(r.stack ?? {})) lines.push(row(`JS stack: ${name}`, measured.median, floor, ipp))
    if (r.ipyparallel?.skipped) lines.push(`| ipyparallel | skipped: ${r.ipyparallel.skipped} | | | | |`)
    if (r.ipyparallel?.ipcontroller) lines.push(row('ipyparallel 7.1: Python client, ipcontroller, ipengines', ipp, floor, ipp))
    if (r.ipyparallel?.['our controller']) lines.push(row('Python client, **our controller** (leastload hwm=1), ipengines', r.ipyparallel['our controller'].median, floor, ipp))
    lines.push('')
  }
  if (r.memory) {
    const mem = r.memory
    lines.push('### Controller memory (RSS)')
    lines.push('')
    lines.push(`${mem.tasks.toLocaleString('en-US')} small echo tasks queued with no engine registered, then run by 2 engines (leastload, hwm 0). Each figure is the lowest RSS over 3 s of idleness.`)
    lines.push('')
    lines.push('| Idle | Queued | Per queued task | After they ran | After purge | Peak |')
    lines.push('|---|---|---|---|---|---|')
    lines.push(`| ${mib(mem.idleBytes)} | ${mib(mem.queuedBytes)} | ${int(mem.perQueuedTaskBytes)} B | ${mib(mem.finishedBytes)} (${x(ratio(mem.finishedBytes, mem.idleBytes))} idle) | ${mem.purgedBytes === null ? mem.purge : `${mib(mem.purgedBytes)} (${x(ratio(mem.purgedBytes, mem.idleBytes))} idle)`} | ${mib(mem.peakBytes)} |`)
    lines.push('')
  }
  if (r.storm) {
    lines.push('### Registration storm')
    lines.push('')
    if (r.storm.skipped) lines.push(`ipcontroller skipped: ${r.storm.skipped}`)
    lines.push('Protocol-level simulated engines register at the same moment. Registration completes with an engine\'s first heartbeat, so "all registered" includes up to one or two heartbeat periods.')
    lines.push('')
    lines.push('| Controller | Engines | Heartbeat | All replies | All registered | Lost |')
    lines.push('|---|---|---|---|---|---|')
    const base = r.storm.ipcontroller
    for (const name of ['ours', 'ipcontroller'] as const) {
      const f = r.storm[name]
      if (!f) continue
      const vs = name === 'ours' && base ? ` (${x(ratio(f.registeredMs ?? undefined, base.registeredMs ?? undefined))} ipcontroller)` : ''
      lines.push(`| ${name} | ${f.engines} | ${f.pingMs} ms | ${int(f.repliesMs)} ms | ${f.registeredMs === null ? 'not within the ceiling' : `${int(f.registeredMs)} ms${vs}`} | ${f.lost} |`)
    }
    lines.push('')
  }
  lines.push('### Targets (issue 6)')
  lines.push('')
  lines.push('| Target | Measured | Met | Note |')
  lines.push('|---|---|---|---|')
  for (const t of r.targets) lines.push(`| ${t.goal} | ${t.shown} | ${t.met === null ? '—' : t.met ? 'met' : '**not met**'} | ${t.note} |`)
  if (r.errors.length > 0) {
    lines.push('')
    lines.push('### Errors')
    lines.push('')
    for (const e of r.errors) lines.push(`- ${e.section} ${e.config}: ${e.message.split('\n')[0] ?? ''}`)
  }
  return `${lines.join('\n')}\n`
}
