// The benchmark suite's quick variant runs and writes well-formed results. No thresholds: figures on a shared
// machine say nothing about correctness, but a suite that no longer runs, or writes other keys, is a bug.
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { repoRoot, startProcess, systemPython, tempDir, type Teardown } from '../helpers/processes.js'

const pythonOk = spawnSync(systemPython, ['-c', 'import ipyparallel'], { encoding: 'utf8' }).status === 0

interface Results {
  meta: { mode: string; machine: Record<string, unknown>; sizes: Record<string, unknown> }
  targets: { id: string; met: boolean | null }[]
  errors: unknown[]
  [section: string]: unknown
}

/** Runs `bench/run.js --quick --only <sections>` into a temporary directory; returns latest.json and latest.md. */
async function quickRun(t: Teardown, sections: string[]): Promise<{ json: Results; md: string }> {
  const out = tempDir(t, 'jsparallel-bench-smoke-')
  const proc = startProcess(t, process.execPath, [join(repoRoot, 'dist', 'bench', 'run.js'), '--quick', '--only', sections.join(','), '--out', out])
  const { code } = await proc.exited
  if (code !== 0) throw new Error(`bench exited with ${code}:\n${proc.output()}`)
  return { json: JSON.parse(readFileSync(join(out, 'latest.json'), 'utf8')) as Results, md: readFileSync(join(out, 'latest.md'), 'utf8') }
}

const workloadKeys = ['latencyMedianMs', 'latencyP99Ms', 'tasksPerSec', 'mapItemsPerSec', 'bulkMBps']
const positive = (o: unknown, keys: string[]): boolean => keys.every((k) => typeof (o as Record<string, unknown>)[k] === 'number' && ((o as Record<string, number>)[k] as number) > 0)

t.test('the floor, the JS stack and ipyparallel sections measure every workload', async (t) => {
  const sections = ['floor', 'stack', ...(pythonOk ? ['ipyparallel'] : [])]
  const { json, md } = await quickRun(t, sections)
  t.same(json.errors, [], 'no measurement failed')
  t.equal(json.meta.mode, 'quick')
  t.ok(typeof json.meta.machine.cpu === 'string' && typeof json.meta.machine.cores === 'number', 'the machine is described')
  t.ok(positive((json.floor as { median: unknown }).median, ['latencyMedianMs', 'latencyP99Ms', 'pipelinedMsgsPerSec', 'bulkMBps']), 'floor figures')
  const stack = json.stack as Record<string, { runs: unknown[]; median: unknown }>
  t.same(Object.keys(stack).sort(), ['leastload hwm=0', 'leastload hwm=1'])
  for (const [name, m] of Object.entries(stack)) t.ok(positive(m.median, workloadKeys), `${name} figures`)
  if (pythonOk) {
    const ipp = json.ipyparallel as Record<string, { median: unknown }>
    t.same(Object.keys(ipp).sort(), ['ipcontroller', 'our controller'])
    for (const [name, m] of Object.entries(ipp)) t.ok(positive(m.median, workloadKeys), `${name} figures`)
  }
  t.same(json.targets.map((x) => x.id), [
    'throughput-hwm1', 'throughput-hwm0', 'latency-floor', 'latency-ipyparallel', 'map', 'bulk',
    'python-throughput', 'python-latency', 'memory-per-task', 'memory-after-purge', 'storm',
  ])
  t.equal(json.targets.find((x) => x.id === 'latency-floor')?.met === null, false, 'a target whose figures were measured is judged')
  t.match(md, /\| floor: raw zeromq/)
  t.match(md, /### Targets \(issue 6\)/)
})

t.test('the memory and registration storm sections report their figures', async (t) => {
  const { json } = await quickRun(t, ['memory', 'storm'])
  t.same(json.errors, [], 'no measurement failed')
  t.ok(positive(json.memory, ['tasks', 'idleBytes', 'queuedBytes', 'finishedBytes', 'peakBytes']), 'memory figures')
  t.match(json.memory, { purge: /^(done|purge not available)$/ })
  const storm = json.storm as Record<string, { engines: number; lost: number; registeredMs: number | null }>
  t.match(storm.ours, { lost: 0, registeredMs: Number })
  if (pythonOk) t.match(storm.ipcontroller, { lost: 0, registeredMs: Number })
})

t.test('the before/after probe runs each workload and reports CPU per process', async (t) => {
  for (const workload of ['throughput', 'map', 'latency', 'spin']) {
    const proc = startProcess(t, process.execPath, [join(repoRoot, 'dist', 'bench', 'probe.js'), '--workload', workload, '--n', '50', '--rounds', '1', '--task-ms', '0.05'])
    const { code } = await proc.exited
    t.equal(code, 0, `${workload} exits cleanly`)
    const out = proc.output()
    t.match(out, new RegExp(`probe: ${workload}, n 50, leastload hwm 1, 1 rounds`))
    t.match(out, /round 1: (\d+ tasks\/s|\d+ ms, \d+ items\/s|median [\d.]+ ms, p10 [\d.]+ ms|\d+ ms)/)
    for (const name of ['controller', 'engine 0', 'engine 1', 'client']) t.match(out, new RegExp(`  ${name} CPU ms: `))
    t.match(out, /  CPU µs per task.*: controller -?\d+, engines -?\d+, client -?\d+; all -?\d+/)
  }
  const bad = startProcess(t, process.execPath, [join(repoRoot, 'dist', 'bench', 'probe.js'), '--workload', 'nope'])
  t.equal((await bad.exited).code, 2)
  t.match(bad.output(), /probe: --workload must be one of throughput, map, latency, spin, not 'nope'/)
})
