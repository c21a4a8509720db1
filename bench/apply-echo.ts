/**
 * `npm run bench`: throughput and latency of load-balanced `apply` of an echo function, 2 engines.
 * Each run starts a fresh controller with the same two jsparallel engines and the same jsparallel client, so
 * only the controller differs: ipyparallel 7.1's own `ipcontroller` (the baseline), ours with leastload, and
 * with `--schemes`, ours with every scheme at hwm 1 and hwm 0. Reports medians over the runs and ratios
 * against the baseline.
 *
 *   npm run bench -- --runs 5 --tasks 10000 --sequential 1000 [--schemes] [--no-baseline]
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Client } from '../src/index.js'

const root = fileURLToPath(new URL('../../', import.meta.url))
const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, tasks: { type: 'string', default: '10000' }, sequential: { type: 'string', default: '1000' }, 'no-baseline': { type: 'boolean', default: false }, schemes: { type: 'boolean', default: false } } })
const runs = Number(values.runs)
const tasks = Number(values.tasks)
const sequential = Number(values.sequential)

interface Figures { tasksPerSecond: number; medianLatencyMs: number }

const ours = (...args: string[]) => (dir: string): string[] => [process.execPath, join(root, 'bin/controller.js'), '--profile-dir', dir, '--log-level=warn', ...args]
const controllers: Record<string, (profileDir: string) => string[]> = {
  ipyparallel: (dir) => ['/usr/bin/python3', '-m', 'ipyparallel.controller', '--profile-dir', dir, '--log-level=40'],
  jsparallel: ours(),
}
if (values.schemes) {
  for (const scheme of ['leastload', 'lru', 'plainrandom', 'twobin', 'weighted']) {
    for (const hwm of [1, 0]) controllers[`${scheme} hwm=${hwm}`] = ours(`--scheme=${scheme}`, `--hwm=${hwm}`)
  }
  controllers.pure = ours('--scheme=pure')
}

async function measure(name: string): Promise<Figures> {
  const dir = mkdtempSync(join(tmpdir(), 'jsparallel-bench-'))
  const children: ChildProcess[] = []
  const start = (argv: string[]): void => {
    children.push(spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'ignore', 'inherit'] }))
  }
  try {
    start((controllers[name] as (d: string) => string[])(dir))
    const file = join(dir, 'security', 'ipcontroller-client.json')
    const deadline = Date.now() + 30_000
    while (!existsSync(file) || !existsSync(join(dir, 'security', 'ipcontroller-engine.json'))) {
      if (Date.now() > deadline) throw new Error(`${name} controller did not start`)
      await new Promise((r) => setTimeout(r, 50))
    }
    for (let i = 0; i < 2; i++) start([process.execPath, join(root, 'bin/engine.js'), '--profile-dir', dir, '--log-level=warn'])
    const client = new Client({ profileDir: dir })
    try {
      await client.waitForEngines(2, { timeoutMs: 60_000 })
      const lview = client.loadBalancedView()
      const echo = (x: number): number => x
      await Promise.all(Array.from({ length: 100 }, (_, i) => lview.apply(echo, i))) // warm up
      let t0 = performance.now()
      const all = Array.from({ length: tasks }, (_, i) => lview.apply(echo, i))
      await Promise.all(all)
      const tasksPerSecond = tasks / ((performance.now() - t0) / 1000)
      const latencies: number[] = []
      for (let i = 0; i < sequential; i++) {
        t0 = performance.now()
        await lview.apply(echo, i)
        latencies.push(performance.now() - t0)
      }
      return { tasksPerSecond, medianLatencyMs: median(latencies) }
    } finally {
      await client.close()
    }
  } finally {
    await Promise.all(children.map((c) => new Promise<void>((resolve) => {
      if (c.exitCode !== null || c.signalCode !== null) return resolve()
      c.once('exit', () => resolve())
      c.kill('SIGTERM')
      setTimeout(() => c.kill('SIGKILL'), 5000).unref()
    })))
    rmSync(dir, { recursive: true, force: true })
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2
}

const names = Object.keys(controllers).filter((n) => n !== 'ipyparallel' || (!values['no-baseline'] && existsSync('/usr/lib/python3/dist-packages/ipyparallel')))
const results: Record<string, Figures[]> = {}
for (let run = 1; run <= runs; run++) {
  for (const name of names) {
    const f = await measure(name)
    ;(results[name] ??= []).push(f)
    console.log(`run ${run} ${name.padEnd(21)} ${f.tasksPerSecond.toFixed(0).padStart(6)} tasks/s   median latency ${f.medianLatencyMs.toFixed(2)} ms`)
  }
}
console.log(`\n${tasks} concurrent applies, ${sequential} sequential, 2 engines, median of ${runs} runs:`)
const summary = Object.fromEntries(names.map((n) => [n, { tasksPerSecond: median(results[n]!.map((f) => f.tasksPerSecond)), medianLatencyMs: median(results[n]!.map((f) => f.medianLatencyMs)) }]))
const base = summary.ipyparallel
for (const [n, f] of Object.entries(summary)) {
  const ratio = base && n !== 'ipyparallel' ? `   vs ipyparallel: throughput x${(f.tasksPerSecond / base.tasksPerSecond).toFixed(2)}, latency x${(f.medianLatencyMs / base.medianLatencyMs).toFixed(2)}` : ''
  console.log(`${n.padEnd(21)} ${f.tasksPerSecond.toFixed(0).padStart(6)} tasks/s   median latency ${f.medianLatencyMs.toFixed(2).padStart(6)} ms${ratio}`)
}
