/** The suite's options: which sections, which schemes, how big, how many runs. Read once by bench/run.ts. */
import { parseArgs } from 'node:util'
import { MiB } from './stats.js'

export const SECTIONS = ['floor', 'stack', 'ipyparallel', 'memory', 'storm'] as const
export type Section = (typeof SECTIONS)[number]

export const ALL_SCHEMES = ['leastload', 'lru', 'plainrandom', 'twobin', 'weighted', 'pure'] as const

export interface Sizes {
  /** Runs of each measurement; figures are medians over them. */
  runs: number
  /** Sequential applies (and floor round trips) for latency. */
  sequential: number
  /** Echo tasks submitted at once (and floor messages pipelined). */
  tasks: number
  mapItems: number
  chunksize: number
  /** Size of the binary echo, bytes. */
  bulkBytes: number
  /** Binary echoes per run; their median counts. */
  bulkReps: number
  /** Round trips before anything is timed. */
  warmup: number
  /** Small tasks queued on the controller for the memory section. */
  memoryTasks: number
  stormEngines: number
  /** Processes the simulated engines are spread over. */
  stormProcesses: number
  /** Heartbeat period of the controllers in the storm, ms (both default to 3000). */
  stormPingMs: number
  /** Heartbeat period of the other controllers, ms: engines register within one or two of these. */
  clusterPingMs: number
}

export interface Config {
  mode: 'quick' | 'full'
  sections: Section[]
  /** Stack configurations: `<scheme> hwm=<n>`, or `pure`. */
  stackConfigs: string[]
  sizes: Sizes
  /** Where latest.json and latest.md go. */
  outDir: string
  /** Rewrite the table in docs/performance.md. */
  updateDocs: boolean
  /** Write CPU profiles of the stack's processes here (controller, engines); undefined = no profiling. */
  cpuProfDir: string | undefined
}

const FULL: Sizes = {
  runs: 3, sequential: 1000, tasks: 10_000, mapItems: 100_000, chunksize: 1000, bulkBytes: 64 * MiB, bulkReps: 3,
  warmup: 200, memoryTasks: 100_000, stormEngines: 1000, stormProcesses: 4, stormPingMs: 3000, clusterPingMs: 3000,
}

const QUICK: Sizes = {
  runs: 1, sequential: 100, tasks: 300, mapItems: 5000, chunksize: 500, bulkBytes: 4 * MiB, bulkReps: 1,
  warmup: 20, memoryTasks: 2000, stormEngines: 40, stormProcesses: 2, stormPingMs: 250, clusterPingMs: 500,
}

export const USAGE = `npm run bench -- [--quick | --full] [options]

  --quick              CI smoke: tiny sizes, one run, leastload only (a minute at most)
  --full               the issue's sizes, median of 3 runs, every scheme (default)
  --only <list>        sections to run: ${SECTIONS.join(',')} (default: all)
  --schemes <list>     schemes for the stack section: ${ALL_SCHEMES.join(',')}; each runs at hwm 1 and hwm 0 (pure has no hwm)
  --runs <n>           runs per measurement (medians are reported)
  --tasks <n> --sequential <n> --map-items <n> --chunksize <n> --bulk-mib <n> --memory-tasks <n> --storm-engines <n> --storm-ping <ms>
                       override one size
  --out <dir>          where latest.json and latest.md go (default bench/results)
  --update-docs        also rewrite the results part of docs/performance.md
  --cpu-prof <dir>     write CPU profiles of the controller and engines of the stack section into <dir>
`

function positiveInt(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  const n = Number(value)
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a whole number > 0, not '${value}'`)
  return n
}

function list<T extends string>(name: string, value: string | undefined, allowed: readonly T[]): T[] | undefined {
  if (value === undefined) return undefined
  const items = value.split(',').map((s) => s.trim()).filter(Boolean)
  const bad = items.filter((s) => !allowed.includes(s as T))
  if (bad.length > 0) throw new Error(`--${name}: unknown ${bad.join(', ')} (known: ${allowed.join(', ')})`)
  return items as T[]
}

/** The stack configurations of some schemes: each at hwm 1 and hwm 0, except pure, which has no hwm. */
export function configsOf(schemes: readonly string[]): string[] {
  return schemes.flatMap((s) => (s === 'pure' ? ['pure'] : [`${s} hwm=1`, `${s} hwm=0`]))
}

export function parseConfig(argv: string[], defaultOutDir: string): Config | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false }, full: { type: 'boolean', default: false }, help: { type: 'boolean', default: false },
      only: { type: 'string' }, schemes: { type: 'string' }, runs: { type: 'string' },
      tasks: { type: 'string' }, sequential: { type: 'string' }, 'map-items': { type: 'string' }, chunksize: { type: 'string' },
      'bulk-mib': { type: 'string' }, 'memory-tasks': { type: 'string' }, 'storm-engines': { type: 'string' }, 'storm-ping': { type: 'string' },
      out: { type: 'string' }, 'update-docs': { type: 'boolean', default: false }, 'cpu-prof': { type: 'string' },
    },
  })
  if (values.help) return 'help'
  if (values.quick && values.full) throw new Error('--quick and --full exclude each other')
  const mode = values.quick ? 'quick' : 'full'
  const base = mode === 'quick' ? QUICK : FULL
  const bulkMiB = positiveInt('bulk-mib', values['bulk-mib'])
  const sizes: Sizes = {
    ...base,
    runs: positiveInt('runs', values.runs) ?? base.runs,
    tasks: positiveInt('tasks', values.tasks) ?? base.tasks,
    sequential: positiveInt('sequential', values.sequential) ?? base.sequential,
    mapItems: positiveInt('map-items', values['map-items']) ?? base.mapItems,
    chunksize: positiveInt('chunksize', values.chunksize) ?? base.chunksize,
    bulkBytes: bulkMiB === undefined ? base.bulkBytes : bulkMiB * MiB,
    memoryTasks: positiveInt('memory-tasks', values['memory-tasks']) ?? base.memoryTasks,
    stormEngines: positiveInt('storm-engines', values['storm-engines']) ?? base.stormEngines,
    stormPingMs: positiveInt('storm-ping', values['storm-ping']) ?? base.stormPingMs,
  }
  const schemes = list('schemes', values.schemes, ALL_SCHEMES) ?? (mode === 'quick' ? ['leastload'] : [...ALL_SCHEMES])
  return {
    mode,
    sections: list('only', values.only, SECTIONS) ?? [...SECTIONS],
    stackConfigs: configsOf(schemes),
    sizes,
    outDir: values.out ?? defaultOutDir,
    updateDocs: values['update-docs'],
    cpuProfDir: values['cpu-prof'],
  }
}

/** Controller flags of a stack configuration name (`leastload hwm=1`, `pure`). */
export function controllerArgsOf(config: string): string[] {
  const m = /^(\w+)(?: hwm=(\d+))?$/.exec(config)
  if (!m) throw new Error(`not a stack configuration: ${config}`)
  return [`--scheme=${m[1] as string}`, ...(m[2] === undefined ? [] : [`--hwm=${m[2]}`])]
}
