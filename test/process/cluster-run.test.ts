import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { Cluster } from '../../src/index.js'
import { silentLogger } from '../../src/common/log.js'
import { binPath, processAlive, repoRoot, startProcess, tempDir, type Proc, type Teardown } from '../helpers/processes.js'

/**
 * Writes a script inside the repository (so that `import ... from 'jsparallel'` resolves through package.json's
 * "exports" to the build) and removes it when the test ends.
 */
function writeScript(t: Teardown, code: string): string {
  const parent = join(repoRoot, 'dist', 'cluster-run-scripts')
  mkdirSync(parent, { recursive: true })
  const dir = mkdtempSync(join(parent, 'run-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'script.mjs')
  writeFileSync(file, code)
  return file
}

/** The PIDs a `cluster` command reports starting (its controller and engines), killed at teardown if still there. */
function childPids(t: Teardown, proc: Proc): number[] {
  const pids = [...proc.output().matchAll(/started, pid (\d+)/g)].map((m) => Number(m[1]))
  t.teardown(() => {
    for (const pid of pids) if (processAlive(pid)) process.kill(pid, 'SIGKILL')
  })
  return pids
}

const ceiling = 120_000

t.test('cluster run: a bare new Client() in the script finds the cluster; the script\'s arguments and exit code pass through', async (t) => {
  const ipythonDir = tempDir(t)
  const script = writeScript(t, `
import { Client } from 'jsparallel'
const client = new Client()
console.log('ids', JSON.stringify(client.ids.length === 0 ? await client.waitForEngines(2, { timeoutMs: 60000 }).then(() => client.ids) : client.ids))
console.log('squares', JSON.stringify(await client.loadBalancedView().map((x) => x * x, [1, 2, 3])))
console.log('args', JSON.stringify(process.argv.slice(2)))
await client.close()
process.exit(3)
`)
  const run = startProcess(t, process.execPath, [binPath('cluster'), 'run', '-n', '2', '--ipython-dir', ipythonDir, script, '--', '--generations', '50'])
  const { code } = await run.exited
  const pids = childPids(t, run)
  t.equal(code, 3, 'the script\'s exit code', { output: run.output() })
  t.match(run.output(), /ids \[0,1\]/)
  t.match(run.output(), /squares \[1,4,9\]/)
  t.match(run.output(), /args \["--generations","50"\]/)
  t.equal(pids.length, 3, 'a controller and 2 engines were started')
  for (const pid of pids) t.notOk(processAlive(pid), `process ${pid} has exited`)
})

t.test('cluster run: a script that crashes exits non-zero and leaves no process', async (t) => {
  const script = writeScript(t, "throw new Error('the script crashed')\n")
  const run = startProcess(t, process.execPath, [binPath('cluster'), 'run', '-n', '1', '--ipython-dir', tempDir(t), script])
  const { code } = await run.exited
  const pids = childPids(t, run)
  t.equal(code, 1)
  t.match(run.output(), /the script crashed/)
  for (const pid of pids) t.notOk(processAlive(pid), `process ${pid} has exited`)
})

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  t.test(`cluster run: ${signal} to the command stops the script and the cluster; no process is left`, async (t) => {
    const script = writeScript(t, `
import { Client } from 'jsparallel'
const client = new Client()
await client.waitForEngines(1, { timeoutMs: 60000 })
console.log('script pid', process.pid)
setInterval(() => {}, 1000)
`)
    const run = startProcess(t, process.execPath, [binPath('cluster'), 'run', '-n', '1', '--ipython-dir', tempDir(t), script])
    const [, scriptPid] = await run.waitForOutput(/script pid (\d+)/, ceiling)
    const pids = [...childPids(t, run), Number(scriptPid)]
    t.teardown(() => {
      if (processAlive(Number(scriptPid))) process.kill(Number(scriptPid), 'SIGKILL')
    })
    t.equal(pids.length, 3, 'controller, engine and script')
    run.child.kill(signal) // to the command alone, not its process group
    const { code } = await run.exited
    t.equal(code, signal === 'SIGINT' ? 130 : 143, `128 + the signal's number`)
    for (const pid of pids) t.notOk(processAlive(pid), `process ${pid} has exited`)
  })
}

t.test('cluster run: SIGINT while the cluster is still starting stops what has started; no process is left', async (t) => {
  const script = writeScript(t, "console.log('the script ran')\n")
  const run = startProcess(t, process.execPath, [binPath('cluster'), 'run', '-n', '2', '--ipython-dir', tempDir(t), script])
  await run.waitForOutput(/controller started, pid \d+/, ceiling)
  run.child.kill('SIGINT')
  const { code } = await run.exited
  const pids = childPids(t, run)
  t.equal(code, 130)
  t.notMatch(run.output(), /the script ran/, 'the script never started')
  t.ok(pids.length >= 1, `the processes it had started: ${pids.join(', ')}`)
  for (const pid of pids) t.notOk(processAlive(pid), `process ${pid} has exited`)
})

t.test('cluster start with a hostfile: this machine\'s names start engines; another host is refused naming its line', async (t) => {
  const dir = tempDir(t)
  const remote = join(dir, 'remote-hosts')
  writeFileSync(remote, '# two machines\nlocalhost 1\nnode7 slots=2\n')
  const refused = startProcess(t, process.execPath, [binPath('cluster'), 'start', '--hostfile', remote, '--profile-dir', join(dir, 'profile_r')])
  t.equal((await refused.exited).code, 1)
  t.match(refused.output(), new RegExp(`--engines=local starts engines on this machine only, but ${remote}:3 names host 'node7'`))
  const slurm = startProcess(t, process.execPath, [binPath('cluster'), 'start', '--engines=slurm', '--host', 'a', '--profile-dir', join(dir, 'profile_s')])
  t.equal((await slurm.exited).code, 1)
  t.match(slurm.output(), /engine launcher 'slurm' is not available yet .*available: local, ssh, mpi/)
  const bad = join(dir, 'bad-hosts')
  writeFileSync(bad, 'localhost two\n')
  const badRun = startProcess(t, process.execPath, [binPath('cluster'), 'start', '--hostfile', bad, '--profile-dir', join(dir, 'profile_b')])
  t.equal((await badRun.exited).code, 1)
  t.match(badRun.output(), new RegExp(`${bad}:1: unexpected 'two' after the host name`))

  const local = join(dir, 'local-hosts')
  writeFileSync(local, `localhost 1\n${hostname()}\n127.0.0.1 slots=1\n`)
  const ipythonDir = join(dir, 'base')
  const start = startProcess(t, process.execPath, [binPath('cluster'), 'start', '--hostfile', local, '-n', '2', '--ipython-dir', ipythonDir, '--profile', 'hosts'])
  await start.waitForOutput(/cluster ready: 2 engines/, ceiling)
  const pids = childPids(t, start)
  t.equal(pids.length, 3, '-n 2 against the hostfile\'s slots: 2 engines')

  // cluster list sees it, and a cluster a program started in the same base directory.
  const program = await Cluster.start({ n: 1, ipythonDir, profile: 'program', log: silentLogger })
  t.teardown(() => program.stop())
  const list = startProcess(t, process.execPath, [binPath('cluster'), 'list', '--json', '--ipython-dir', ipythonDir])
  t.equal((await list.exited).code, 0)
  const states = JSON.parse(list.output()) as { profileDir: string; ownerPid: number; controller: { pid: number }; engines: { id: number; pid: number }[] }[]
  t.same(states.map((s) => [s.profileDir, s.ownerPid, s.engines.length]), [[join(ipythonDir, 'profile_hosts'), start.pid, 2], [join(ipythonDir, 'profile_program'), process.pid, 1]])
  t.same(states[0]?.engines.map((e) => e.pid).sort(), pids.slice(1).sort(), 'the engines\' pids')
  t.equal(states[0]?.controller.pid, pids[0], 'the controller\'s pid')
  const text = startProcess(t, process.execPath, [binPath('cluster'), 'list', '--ipython-dir', ipythonDir])
  t.equal((await text.exited).code, 0)
  t.match(text.output(), new RegExp(`profile_hosts .*owner pid ${start.pid} +controller pid ${pids[0]} +2 engines`))

  // stop --all stops what a cluster command runs, and leaves a program's cluster to the program.
  const stopAll = startProcess(t, process.execPath, [binPath('cluster'), 'stop', '--all', '--ipython-dir', ipythonDir])
  t.equal((await stopAll.exited).code, 0)
  t.match(stopAll.output(), new RegExp(`sent SIGINT to cluster ${start.pid}`))
  t.match(stopAll.output(), /not stopping .*profile_program.*started it with Cluster\.start/)
  t.equal((await start.exited).code, 0)
  for (const pid of pids) t.notOk(processAlive(pid), `process ${pid} has exited`)
  t.ok(program.engines.every((e) => e.running), 'the program\'s cluster still runs')
  await program.stop()
  const empty = startProcess(t, process.execPath, [binPath('cluster'), 'list', '--ipython-dir', ipythonDir])
  await empty.exited
  t.match(empty.output(), /no running clusters/)
})
