/**
 * `npm run bench`: the benchmark suite of issue 6. Starts everything it measures (on free loopback ports, stopped
 * at the end and on failure), interleaves the configurations within each run so that drift of a shared machine
 * falls on all of them alike, and writes bench/results/latest.json and latest.md (`--help` for the options).
 *
 * Sections: floor (bench/floor.ts), stack (bench/stack.ts), ipyparallel (bench/ipyparallel.ts), memory
 * (bench/memory.ts), storm (bench/storm.ts). A measurement that fails is recorded under `errors` and the others go on.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseConfig, USAGE, type Config } from './lib/config.js'
import { describeMachine, load1 } from './lib/machine.js'
import { repoRoot, stopAll, withScope, type Scope } from './lib/processes.js'
import { ipyparallelProblem } from './lib/python.js'
import { medianOf } from './lib/stats.js'
import { measureFloor } from './floor.js'
import { IPP_CONFIGS, measureIpyparallel } from './ipyparallel.js'
import { measureMemory } from './memory.js'
import { judgeTargets, markdown, type Measured, type Results } from './report.js'
import { measureStack } from './stack.js'
import { measureStorm, STORM_CONTROLLERS } from './storm.js'

const DOCS_START = '<!-- bench:results:start -->'
const DOCS_END = '<!-- bench:results:end -->'

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void stopAll().finally(() => process.exit(130))
  })
}

const log = (line: string): void => console.error(line)

function brief(figures: object): string {
  return Object.entries(figures)
    .map(([k, v]) => `${k} ${typeof v === 'number' ? (Math.abs(v) >= 100 ? Math.round(v) : Number(v.toPrecision(3))) : String(v)}`)
    .join(', ')
}

async function main(): Promise<void> {
  const parsed = parseConfig(process.argv.slice(2), join(repoRoot, 'bench', 'results'))
  if (parsed === 'help') {
    console.log(USAGE)
    return
  }
  const config: Config = parsed
  const started = performance.now()
  const sizes = config.sizes
  const results: Results = {
    meta: {
      date: new Date().toISOString(), mode: config.mode, sections: config.sections, sizes,
      machine: describeMachine(), load1AtStart: load1(), load1AtEnd: Number.NaN, durationSeconds: Number.NaN,
    },
    targets: [],
    errors: [],
  }
  const has = (s: Config['sections'][number]): boolean => config.sections.includes(s)
  const python = has('ipyparallel') || has('storm') ? ipyparallelProblem() : undefined

  /** Runs one measurement in a scope of its own; a failure is recorded and the suite goes on. */
  const attempt = async <F extends object>(section: string, name: string, measure: (scope: Scope) => Promise<F>): Promise<F | undefined> => {
    try {
      const figures = await withScope(measure)
      log(`  ${section} ${name}: ${brief(figures)}`)
      return figures
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e)
      log(`  ${section} ${name}: FAILED: ${message}`)
      results.errors.push({ section, config: name, message })
      return undefined
    }
  }
  /** Runs stay aligned by index (null for a failed one), so that ratios pair figures of the same run. */
  const collect = <F>(into: Record<string, (F | null)[]>, name: string, figures: F | undefined, run: number): void => {
    const runs = (into[name] ??= [])
    while (runs.length < run - 1) runs.push(null)
    runs.push(figures ?? null)
  }

  const floorRuns: Record<string, (Awaited<ReturnType<typeof measureFloor>> | null)[]> = {}
  const stackRuns: Record<string, (Awaited<ReturnType<typeof measureStack>> | null)[]> = {}
  const ippRuns: Record<string, (Awaited<ReturnType<typeof measureIpyparallel>> | null)[]> = {}
  const repeated = has('floor') || has('stack') || has('ipyparallel')
  for (let run = 1; repeated && run <= sizes.runs; run++) {
    log(`run ${run} of ${sizes.runs}`)
    if (has('floor')) collect(floorRuns, 'floor', await attempt('floor', 'raw zeromq', (s) => measureFloor(s, sizes)), run)
    if (has('stack')) {
      for (const name of config.stackConfigs) collect(stackRuns, name, await attempt('stack', name, (s) => measureStack(s, name, sizes, config.cpuProfDir)), run)
    }
    if (has('ipyparallel') && !python) {
      for (const name of IPP_CONFIGS) collect(ippRuns, name, await attempt('ipyparallel', name, (s) => measureIpyparallel(s, name, sizes)), run)
    }
  }
  const summarise = <F extends object>(runs: (F | null)[]): Measured<F> => ({
    runs,
    median: medianOf(runs.filter((r): r is F => r !== null) as Partial<Record<string, number>>[]) as Partial<F>,
  })
  if (floorRuns.floor) results.floor = summarise(floorRuns.floor)
  if (has('stack')) results.stack = Object.fromEntries(Object.entries(stackRuns).map(([k, v]) => [k, summarise(v)]))
  if (has('ipyparallel')) {
    results.ipyparallel = python ? { skipped: python } : Object.fromEntries(Object.entries(ippRuns).map(([k, v]) => [k, summarise(v)]))
  }

  if (has('memory')) {
    log('memory')
    results.memory = await attempt('memory', 'leastload hwm=0', (s) => measureMemory(s, sizes))
  }
  if (has('storm')) {
    log('registration storm')
    results.storm = python ? { skipped: python } : {}
    for (const which of STORM_CONTROLLERS) {
      if (which === 'ipcontroller' && python) continue
      const figures = await attempt('storm', which, (s) => measureStorm(s, which, sizes))
      if (figures) results.storm[which] = figures
    }
  }

  results.meta.load1AtEnd = load1()
  results.meta.durationSeconds = (performance.now() - started) / 1000
  results.targets = judgeTargets(results)
  const md = markdown(results)
  mkdirSync(config.outDir, { recursive: true })
  writeFileSync(join(config.outDir, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`)
  writeFileSync(join(config.outDir, 'latest.md'), md)
  if (config.updateDocs) updateDocs(md)
  console.log(md)
  log(`wrote ${join(config.outDir, 'latest.json')} and latest.md${config.updateDocs ? '; updated docs/performance.md' : ''}`)
}

/** Replaces the results part of docs/performance.md (between its markers) with the new table. */
function updateDocs(md: string): void {
  const path = join(repoRoot, 'docs', 'performance.md')
  const text = readFileSync(path, 'utf8')
  const from = text.indexOf(DOCS_START)
  const to = text.indexOf(DOCS_END)
  if (from < 0 || to < from) throw new Error(`docs/performance.md has no ${DOCS_START} ... ${DOCS_END} markers`)
  writeFileSync(path, `${text.slice(0, from + DOCS_START.length)}\n${md}${text.slice(to)}`)
}

try {
  await main()
} catch (e) {
  console.error(`bench: ${e instanceof Error ? e.message : String(e)}`)
  process.exitCode = 1
}
