// `npm run bench:speedup` runs end to end on a tiny scale and prints its table. No thresholds: speedups on a shared
// 2-core machine move with the neighbours' load. The bench itself fails when a run's results differ from serial.
import { join } from 'node:path'
import t from 'tap'
import { repoRoot, startProcess } from '../helpers/processes.js'

t.test('the speedup section measures one-max and a spin map on 1 engine and prints one row each', async (t) => {
  const args = ['--engines', '1', '--hwm', '1', '--runs', '1', '--scale', '0.05', '--workloads', 'onemax,map-5ms']
  const proc = startProcess(t, process.execPath, [join(repoRoot, 'dist', 'bench', 'speedup.js'), ...args])
  const ceiling = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 150_000).unref())
  const ended = await Promise.race([proc.exited, ceiling])
  if (ended === 'timeout') throw new Error(`bench:speedup did not finish within 150 s; output:\n${proc.output()}`)
  t.equal(ended.code, 0, `exits cleanly; output:\n${proc.output()}`)
  const rows = proc.output().split('\n').filter((l) => /^\| (onemax|map-5ms) \| 1 \| 1 \| \d+\.\d\dx \| \d+\.\d\dx \| \d+\.\d\d \(.+\) \| \d+\.\d\d \| \d+\.\d\d ms \|$/.test(l))
  t.equal(rows.length, 2, 'a row for each workload')
})

t.test('an unknown workload is refused with its name', async (t) => {
  const proc = startProcess(t, process.execPath, [join(repoRoot, 'dist', 'bench', 'speedup.js'), '--workloads', 'nope', '--engines', '1'])
  const { code } = await proc.exited
  t.equal(code, 1)
  t.match(proc.output(), /unknown workload 'nope'/)
})
