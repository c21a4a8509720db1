/**
 * The results file's shape, the issue-6 targets judged from it, and the Markdown table. Every figure is shown
 * absolute and as ratios to the floor and to ipyparallel measured in the same run.
 */
import type { Config, Sizes } from './lib/config.js'
import type { Machine } from './lib/machine.js'
import { median, ratio } from './lib/stats.js'
import type { FloorFigures } from './floor.js'
import type { IppConfig } from './ipyparallel.js'
import type { AfterGc, MemoryFigures } from './memory.js'
import type { StackFigures } from './stack.js'
import type { StormController, StormFigures } from './storm.js'

export interface Measured<F> {
  /** One entry per run, aligned across configurations (null: that run failed). */
  runs: (F | null)[]
  /** The median of each figure over the runs. */
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

/**
 * The median over runs of a figure of `a` divided by a figure of `b` from the same run: on a shared machine
 * the two sides of a ratio drift together within a run, not across runs.
 */
export function paired<A, B>(a: Measured<A> | undefined, aKey: keyof A, b: Measured<B> | undefined, bKey: keyof B): number | undefined {
  if (!a || !b) return undefined
  const ratios: number[] = []
  for (let i = 0; i < Math.min(a.runs.length, b.runs.length); i++) {
    const r = ratio(a.runs[i]?.[aKey] as number | undefined, b.runs[i]?.[bKey] as number | undefined)
    if (r !== undefined) ratios.push(r)
  }
  return ratios.length > 0 ? median(ratios) : undefined
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
  const floor = r.floor
  const hwm1 = r.stack?.['leastload hwm=1']
  const hwm0 = r.stack?.['leastload hwm=0']
  const ipp = r.ipyparallel?.ipcontroller
  const pyOurs = r.ipyparallel?.['our controller']
  const mem = r.memory
  const storm = r.storm?.ours
  return [
    judge('throughput-hwm1', 'JS stack, hwm 1: throughput ≥ 30× ipyparallel', paired(hwm1, 'tasksPerSec', ipp, 'tasksPerSec'), (v) => v >= 30, (v) => x(v, 1)),
    judge('throughput-hwm0', 'JS stack, hwm 0: throughput ≥ 0.5× the pipelined floor', paired(hwm0, 'tasksPerSec', floor, 'pipelinedMsgsPerSec'), (v) => v >= 0.5, (v) => x(v)),
    judge('latency-floor', 'JS stack: median sequential apply ≤ 2× the floor round trip', paired(hwm1, 'latencyMedianMs', floor, 'latencyMedianMs'), (v) => v <= 2, (v) => x(v)),
    judge('latency-ipyparallel', 'JS stack: median sequential apply ≥ 7× better than ipyparallel', paired(ipp, 'latencyMedianMs', hwm1, 'latencyMedianMs'), (v) => v >= 7, (v) => `${x(v, 1)} better`),
    judge('map', 'JS stack: map of 100,000 items ≥ 3× ipyparallel', paired(hwm1, 'mapItemsPerSec', ipp, 'mapItemsPerSec'), (v) => v >= 3, (v) => x(v)),
    judge('bulk', 'JS stack: 64 MiB echo ≥ 0.8× the floor', paired(hwm1, 'bulkMBps', floor, 'bulkMBps'), (v) => v >= 0.8, (v) => x(v)),
    judge('python-throughput', 'Python client + ipengines: our controller ≥ 3× the throughput of ipcontroller', paired(pyOurs, 'tasksPerSec', ipp, 'tasksPerSec'), (v) => v >= 3, (v) => x(v)),
    judge('python-latency', 'Python client + ipengines: our controller ≤ 1/3 the latency of ipcontroller', paired(pyOurs, 'latencyMedianMs', ipp, 'latencyMedianMs'), (v) => v <= 1 / 3, (v) => x(v)),
    judge('memory-per-task', 'Controller RSS < 2 KB per queued small task', mem?.perQueuedTaskBytes, (v) => v < 2048, (v) => `${int(v)} B/task`),
    judge('memory-after-purge', 'Controller RSS back within 10% of idle after the tasks finish and are purged', mem?.purgedBytes == null ? undefined : ratio(mem.purgedBytes, mem.idleBytes), (v) => v <= 1.1, (v) => `${x(v)} idle`,
      mem === undefined ? '' : mem.purgedBytes === null ? `purge not available; after finishing ${x(ratio(mem.finishedBytes, mem.idleBytes))} idle` : `after finishing, before purge: ${x(ratio(mem.finishedBytes, mem.idleBytes))} idle`),
    judge('storm', '1,000 engines registered within 10 s, none lost', storm?.registeredMs ?? undefined, (v) => v <= 10_000 && storm?.lost === 0 && storm.engines >= 1000, (v) => `${(v / 1000).toFixed(2)} s, ${storm?.lost ?? '?'} lost`,
      storm && storm.engines < 1000 ? `only ${storm.engines} engines in this run` : ''),
  ]
}

/** One row of the workload table: each median with its ratios (paired by run) to the floor and to ipyparallel. */
function row(name: string, m: Measured<Partial<StackFigures>> | undefined, floor: Measured<FloorFigures> | undefined, ipp: Measured<Partial<StackFigures>> | undefined): string {
  const f = m?.median
  if (!m || !f) return `| ${name} | — | — | — | — | — |`
  const lat = `${fmt(f.latencyMedianMs, 3)} ms (${x(paired(m, 'latencyMedianMs', floor, 'latencyMedianMs'))} floor, ${x(paired(m, 'latencyMedianMs', ipp, 'latencyMedianMs'))} ipp)`
  const p99 = `${fmt(f.latencyP99Ms, 3)} ms (${x(paired(m, 'latencyP99Ms', floor, 'latencyP99Ms'))}, ${x(paired(m, 'latencyP99Ms', ipp, 'latencyP99Ms'))})`
  const tput = `${int(f.tasksPerSec)} (${x(paired(m, 'tasksPerSec', floor, 'pipelinedMsgsPerSec'))} floor, ${x(paired(m, 'tasksPerSec', ipp, 'tasksPerSec'), 1)} ipp)`
  const map = `${int(f.mapItemsPerSec)} (${x(paired(m, 'mapItemsPerSec', ipp, 'mapItemsPerSec'))} ipp)`
  const bulk = `${fmt(f.bulkMBps, 0)} (${x(paired(m, 'bulkMBps', floor, 'bulkMBps'))} floor, ${x(paired(m, 'bulkMBps', ipp, 'bulkMBps'))} ipp)`
  return `| ${name} | ${lat} | ${p99} | ${tput} | ${map} | ${bulk} |`
}

export function markdown(r: Results): string {
  const m = r.meta
  const s = m.sizes
  const floor = r.floor?.median
  const ipp = r.ipyparallel?.ipcontroller
  const lines: string[] = []
  lines.push(`Measured ${m.date} (${m.mode} run, median of ${s.runs} run${s.runs === 1 ? '' : 's'}, ${Math.round(m.durationSeconds)} s) on ${m.machine.cpu}, ${m.machine.cores} cores, ${m.machine.os}; Node ${m.machine.node}, zeromq.js ${m.machine.zeromqJs} (libzmq ${m.machine.libzmq}), ipyparallel ${m.machine.ipyparallel}. 1-minute load average ${fmt(m.load1AtStart, 2)} at the start, ${fmt(m.load1AtEnd, 2)} at the end (the machine is shared).`)
  lines.push('')
  if (r.floor || r.stack || r.ipyparallel) {
    lines.push(`### Workloads (2 engines)`)
    lines.push('')
    lines.push(`Latency: ${s.sequential} sequential applies of an echo function. Throughput: ${s.tasks.toLocaleString('en-US')} echo tasks submitted at once. Map: ${s.mapItems.toLocaleString('en-US')} items, chunksize ${s.chunksize}. Binary: a ${(s.bulkBytes / 1024 / 1024).toFixed(0)} MiB echo (Uint8Array from JS, bytes from Python), MB/s = 10^6 bytes per second of round trip. The floor row is raw zeromq through a JavaScript broker (one 100-byte frame per message; its "throughput" is pipelined messages/s); the second floor row sends 8 frames of an apply_request's sizes instead, since zeromq.js pays per frame. Ratios are this row's figure divided by the same figure of the floor (first row) and of ipyparallel (\`ipcontroller\` + Python client + 2 ipengines), taken within each run and then the median over runs: for latency lower is better, for the rest higher.`)
    lines.push('')
    lines.push('| Configuration | Latency median | p99 | Tasks/s | Map items/s | Binary MB/s |')
    lines.push('|---|---|---|---|---|---|')
    if (floor) {
      lines.push(`| floor: raw zeromq, JS broker | ${fmt(floor.latencyMedianMs, 3)} ms | ${fmt(floor.latencyP99Ms, 3)} ms | ${int(floor.pipelinedMsgsPerSec)} msgs/s | — | ${fmt(floor.bulkMBps, 0)} |`)
      lines.push(`| floor, messages shaped like an apply_request (8 frames) | ${fmt(floor.shapedLatencyMedianMs, 3)} ms | — | ${int(floor.shapedPipelinedMsgsPerSec)} msgs/s | — | — |`)
    }
    for (const [name, measured] of Object.entries(r.stack ?? {})) lines.push(row(`JS stack: ${name}`, measured, r.floor, ipp))
    if (r.ipyparallel?.skipped) lines.push(`| ipyparallel | skipped: ${r.ipyparallel.skipped} | | | | |`)
    if (r.ipyparallel?.ipcontroller) lines.push(row('ipyparallel 7.1: Python client, ipcontroller, ipengines', ipp, r.floor, ipp))
    if (r.ipyparallel?.['our controller']) lines.push(row('Python client, **our controller** (leastload hwm=1), ipengines', r.ipyparallel['our controller'], r.floor, ipp))
    lines.push('')
  }
  if (r.memory) {
    const mem = r.memory
    lines.push('### Controller memory (RSS)')
    lines.push('')
    lines.push(`${mem.tasks.toLocaleString('en-US')} small echo tasks queued with no engine registered, then run by 2 engines (leastload, hwm 0). RSS is the lowest over 3 s of idleness; then the controller is made to run a full GC (a preloaded probe, bench/lib/memory-probe.ts) and reports its own figures.`)
    lines.push('')
    lines.push('| Moment | RSS | RSS after a forced GC | V8 heap held / used after GC | External (Buffers, zeromq) after GC |')
    lines.push('|---|---|---|---|---|')
    const moment = (name: string, rss: number | null, gc: AfterGc | null): void => {
      lines.push(`| ${name} | ${mib(rss)}${rss !== null && name !== 'idle' ? ` (${x(ratio(rss, mem.idleBytes))} idle)` : ''} | ${mib(gc?.rss)} | ${mib(gc?.heapTotal)} / ${mib(gc?.heapUsed)} | ${mib(gc?.external)} |`)
    }
    moment('idle', mem.idleBytes, mem.afterGc.idle)
    moment(`${mem.tasks.toLocaleString('en-US')} tasks queued`, mem.queuedBytes, mem.afterGc.queued)
    moment('after they ran', mem.finishedBytes, mem.afterGc.finished)
    if (mem.purgedBytes === null) lines.push(`| after purge | ${mem.purge} | | | |`)
    else moment('after purgeResults', mem.purgedBytes, mem.afterGc.purged)
    lines.push('')
    lines.push(`Per queued task: ${int(mem.perQueuedTaskBytes)} B of RSS (${int((mem.afterGc.queued.rss - mem.afterGc.idle.rss) / mem.tasks)} B after GC). Peak RSS ${mib(mem.peakBytes)}. Submitting took ${fmt(mem.submitSeconds, 1)} s, running ${fmt(mem.runSeconds, 1)} s.`)
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
