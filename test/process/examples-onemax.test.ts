// examples/onemax.ts, as a user runs it against a cluster of the default profile: it finishes, and its run on the
// engines gives exactly the serial run's results (it prints and exits non-zero otherwise).
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { binPath, repoRoot, startProcess, tempDir, waitFor } from '../helpers/processes.js'

t.test('the one-max example gives the serial results on 2 engines', async (t) => {
  const ipythonDir = tempDir(t, 'jsparallel-onemax-')
  const env = { IPYTHONDIR: ipythonDir }
  const controller = startProcess(t, process.execPath, [binPath('controller'), '--ping=250', '--log-level=warn'], { env })
  const clientFile = join(ipythonDir, 'profile_default', 'security', 'ipcontroller-client.json')
  await waitFor(() => existsSync(clientFile) || controller.child.exitCode !== null, 'the controller connection file')
  for (let i = 0; i < 2; i++) startProcess(t, process.execPath, [binPath('engine'), '--log-level=warn'], { env })
  const example = startProcess(t, process.execPath, [join(repoRoot, 'dist', 'examples', 'onemax.js'), '--engines', '2', '--generations', '5'], { env })
  const ceiling = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 120_000).unref())
  const ended = await Promise.race([example.exited, ceiling])
  if (ended === 'timeout') throw new Error(`the example did not finish within 120 s; output:\n${example.output()}`)
  t.equal(ended.code, 0, `the example exits cleanly; output:\n${example.output()}`)
  t.match(example.output(), /identical to serial: true/)
  t.match(example.output(), /best fitness by generation: (\d+ ){4}\d+\n/, 'one best fitness per generation')
})
