/**
 * `npm run bench:store`: the controller's memory (RSS) with 100,000 finished tasks, for each task store, and
 * the time to fetch results and query the records. Each store gets a fresh controller, 2 jsparallel engines
 * and the jsparallel client; the tasks are no-op echoes submitted in batches.
 *
 *   npm run bench:store -- --tasks 100000 --stores memory,sqlite,none --runs 1
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Client } from '../src/index.js'

const root = fileURLToPath(new URL('../../', import.meta.url))
const { values } = parseArgs({ options: {
  tasks: { type: 'string', default: '100000' },
  stores: { type: 'string', default: 'memory,sqlite,none' },
  runs: { type: 'string', default: '1' },
  batch: { type: 'string', default: '5000' },
} })
const tasks = Number(values.tasks)
const batch = Number(values.batch)
const runs = Number(values.runs)

interface Figures {
  idleRssMiB: number
  finishedRssMiB: number
  purgedRssMiB: number
  tasksPerSecond: number
  dbFileMiB: number | null
  queryMs: number
}

const rssMiB = (pid: number): number => {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return match ? Number(match[1]) / 1024 : Number.NaN
}

async function measure(store: string): Promise<Figures> {
  const dir = mkdtempSync(join(tmpdir(), 'jsparallel-bench-store-'))
  const children: ChildProcess[] = []
  const start = (argv: string[]): ChildProcess => {
    const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'ignore', 'inherit'] })
    children.push(child)
    return child
  }
  try {
    const controller = start([process.execPath, join(root, 'bin/controller.js'), '--profile-dir', dir, '--log-level=warn', `--db=${store}`])
    const deadline = Date.now() + 30_000
    while (!existsSync(join(dir, 'security', 'ipcontroller-client.json'))) {
      if (Date.now() > deadline) throw new Error('the controller did not start')
      await new Promise((r) => setTimeout(r, 50))
    }
    for (let i = 0; i < 2; i++) start([process.execPath, join(root, 'bin/engine.js'), '--profile-dir', dir, '--log-level=warn'])
    const client = await Client.connect({ profileDir: dir })
    try {
      await client.waitForEngines(2, { timeoutMs: 60_000 })
      const lview = client.loadBalancedView()
      const echo = (x: number): number => x
      await Promise.all(Array.from({ length: 200 }, (_, i) => lview.apply(echo, i)))
      await client.purgeResults({ msgIds: 'all' })
      const pid = controller.pid as number
      const idleRssMiB = rssMiB(pid)
      const t0 = performance.now()
      for (let done = 0; done < tasks; done += batch) {
        await Promise.all(Array.from({ length: Math.min(batch, tasks - done) }, (_, i) => lview.apply(echo, done + i)))
      }
      const tasksPerSecond = tasks / ((performance.now() - t0) / 1000)
      const finishedRssMiB = rssMiB(pid)
      const q0 = performance.now()
      if (store !== 'none') await client.dbQuery({ msg_id: { $in: ['none-such'] } }, ['msg_id'])
      const queryMs = performance.now() - q0
      const dbFile = join(dir, 'tasks.db')
      const dbFileMiB = existsSync(dbFile) ? statSync(dbFile).size / 1024 / 1024 : null
      await client.purgeResults({ msgIds: 'all' })
      const purgedRssMiB = rssMiB(pid)
      return { idleRssMiB, finishedRssMiB, purgedRssMiB, tasksPerSecond, dbFileMiB, queryMs }
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

const median = (xs: number[]): number => {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN
}

const rows: string[] = []
for (const store of values.stores.split(',')) {
  const figures: Figures[] = []
  for (let i = 0; i < runs; i++) figures.push(await measure(store))
  const m = (key: keyof Figures): number => median(figures.map((f) => f[key] ?? Number.NaN))
  const perTaskBytes = ((m('finishedRssMiB') - m('idleRssMiB')) * 1024 * 1024) / tasks
  rows.push(`| ${store} | ${m('idleRssMiB').toFixed(1)} | ${m('finishedRssMiB').toFixed(1)} (${perTaskBytes.toFixed(0)} B/task) | ${m('purgedRssMiB').toFixed(1)} | ${m('tasksPerSecond').toFixed(0)} | ${Number.isNaN(m('dbFileMiB')) ? '-' : m('dbFileMiB').toFixed(1)} | ${m('queryMs').toFixed(1)} |`)
}
console.log(`controller RSS with ${tasks.toLocaleString('en')} finished tasks, medians of ${runs} run(s)`)
console.log('| store | idle MiB | finished MiB | after purge MiB | tasks/s | tasks.db MiB | query ms |')
console.log('|---|---|---|---|---|---|---|')
for (const row of rows) console.log(row)
