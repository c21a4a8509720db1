import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import t from 'tap'
import { Client } from '../../src/index.js'
import { silentLogger } from '../../src/common/log.js'
import { binPath, processAlive, startProcess, tempDir, waitFor, type Proc, type Teardown } from '../helpers/processes.js'

/**
 * ipyparallel's launcher sends SIGKILL this long after SIGTERM (`stop_seconds_until_kill`, default 5): a controller
 * slower to stop than that is killed and leaves its connection files behind. Ours drains for at most 500 ms.
 */
const LAUNCHER_SIGKILL_MS = 5000

/** `cluster start` in a fresh profile; resolves when it says it is ready, with the PIDs of its children. */
async function startLocalCluster(t: Teardown, n: number, args: string[] = []): Promise<{ proc: Proc; profileDir: string; childPids: number[] }> {
  const profileDir = join(tempDir(t), 'profile_cli')
  const proc = startProcess(t, process.execPath, [binPath('cluster'), 'start', '-n', String(n), '--profile-dir', profileDir, ...args])
  await proc.waitForOutput(/cluster ready/, 60_000)
  const childPids = [...proc.output().matchAll(/started, pid (\d+)/g)].map((m) => Number(m[1]))
  // The children are ours too: make sure they go when the test ends, whatever happens to the cluster process.
  t.teardown(() => {
    for (const pid of childPids) if (processAlive(pid)) process.kill(pid, 'SIGKILL')
  })
  return { proc, profileDir, childPids }
}

t.test('cluster start runs a controller and N engines; Ctrl-C leaves no process behind', async (t) => {
  const { proc, profileDir, childPids } = await startLocalCluster(t, 2)
  t.equal(childPids.length, 3, 'a controller and 2 engines')
  const client = new Client({ profileDir, log: silentLogger })
  t.teardown(() => client.close())
  await client.waitForEngines(2, { timeoutMs: 30_000 })
  t.same(await client.loadBalancedView().map((x: number) => x + 1, [1, 2, 3]), [2, 3, 4])
  await client.close()
  proc.child.kill('SIGINT')
  const { code } = await proc.exited
  t.equal(code, 0)
  for (const pid of childPids) t.notOk(processAlive(pid), `child ${pid} has exited`)
  t.notOk(existsSync(join(profileDir, 'security', 'ipcontroller-client.json')), 'connection files removed')
})

t.test('an engine that exits is unregistered at once, without waiting for the heartbeat', async (t) => {
  // With --ping=3000 the heartbeat gives an engine up only after 10 missed beats, 30 s; the cluster's watch of its
  // children is immediate. Waiting at most half the heartbeat's time, and reading why the controller let the engine
  // go, tells the two apart on any machine.
  const heartbeatMs = 3000 * 10
  const { proc, profileDir, childPids } = await startLocalCluster(t, 2, ['--ping=3000'])
  const client = new Client({ profileDir, log: silentLogger })
  t.teardown(() => client.close())
  await client.waitForEngines(2, { timeoutMs: 30_000 })
  const started = Date.now()
  process.kill(childPids[1] as number, 'SIGKILL')
  await waitFor(() => client.ids.length === 1, 'the engine to be unregistered', heartbeatMs / 2)
  t.comment(`unregistered ${Date.now() - started} ms after the kill`)
  t.match(proc.output(), new RegExp(`engine \\d+ \\(pid ${childPids[1]}\\) exited \\(SIGKILL\\); unregistering it`), 'the cluster saw the exit')
  const controllerLog = join(profileDir, 'log', 'controller.log')
  const reason = await waitFor(() => /engine \d+ unregistered \((.*)\)/.exec(readFileSync(controllerLog, 'utf8'))?.[1], 'the controller to log the unregistration')
  t.equal(reason, 'unregistration request', 'the controller let it go because the cluster asked, not for the heartbeat')
})

t.test('cluster stop stops the cluster of that profile', async (t) => {
  const { proc, profileDir, childPids } = await startLocalCluster(t, 1)
  const stop = startProcess(t, process.execPath, [binPath('cluster'), 'stop', '--profile-dir', profileDir])
  t.equal((await stop.exited).code, 0)
  t.equal((await proc.exited).code, 0)
  for (const pid of childPids) t.notOk(processAlive(pid), `child ${pid} has exited`)
  t.equal(proc.output().match(/stopping the cluster/g)?.length, 1, 'it said once that it was stopping')
  const again = startProcess(t, process.execPath, [binPath('cluster'), 'stop', '--profile-dir', profileDir])
  t.equal((await again.exited).code, 1)
  t.match(again.output(), /no cluster is running/)
})

t.test('cluster start exits with a failure when its controller dies without being asked to stop', async (t) => {
  const { proc, childPids } = await startLocalCluster(t, 1)
  const controllerPid = Number(/controller started, pid (\d+)/.exec(proc.output())?.[1])
  t.ok(childPids.includes(controllerPid), `the controller is pid ${controllerPid}`)
  process.kill(controllerPid, 'SIGKILL')
  const { code } = await proc.exited
  t.equal(code, 1)
  t.match(proc.output(), /controller exited unexpectedly/)
  for (const pid of childPids) t.notOk(processAlive(pid), `child ${pid} has exited`)
})

t.test('cluster stop signals no process through a stale pid file', async (t) => {
  // A cluster command killed outright leaves its pid file; here it names a live process that is no cluster.
  const bystander = startProcess(t, process.execPath, ['-e', 'setInterval(() => {}, 1000); console.log("up")'])
  await bystander.waitForOutput(/up/, 30_000)
  const profileDir = join(tempDir(t), 'profile_stale')
  mkdirSync(join(profileDir, 'pid'), { recursive: true })
  const file = join(profileDir, 'pid', 'cluster.pid')
  writeFileSync(file, String(bystander.child.pid))
  const stop = startProcess(t, process.execPath, [binPath('cluster'), 'stop', '--profile-dir', profileDir])
  t.equal((await stop.exited).code, 1)
  t.match(stop.output(), /not a running cluster command \(a stale file, now removed\)/)
  t.ok(processAlive(bystander.child.pid ?? -1), 'the process the file named was not signalled')
  t.notOk(existsSync(file), 'the stale file is gone')
})

t.test('cluster start fails at once, saying so, when its controller is killed by a signal while starting', async (t) => {
  // A preload that makes the controller SIGKILL itself before it writes its connection files; engines never start.
  const dir = tempDir(t)
  const preload = join(dir, 'kill-controller.mjs')
  writeFileSync(preload, "if (process.argv[1]?.endsWith('controller.js')) process.kill(process.pid, 'SIGKILL')\n")
  const proc = startProcess(t, process.execPath, [binPath('cluster'), 'start', '-n', '1', '--profile-dir', join(dir, 'profile_killed'), '--timeout', '600'], {
    env: { NODE_OPTIONS: `--import=${pathToFileURL(preload).href}` },
  })
  const { code } = await proc.exited
  t.not(code, 0)
  t.match(proc.output(), /controller exited unexpectedly \(SIGKILL\)/)
  t.match(proc.output(), /the controller exited; see its log/, 'not a wait for the 600 s timeout')
})

t.test('every command explains itself with --help', async (t) => {
  for (const [bin, args, pattern] of [
    ['cluster', ['--help'], /start.*run.*list.*stop/s],
    ['cluster', ['start', '--help'], /--n <count>.*--scheme.*--curve/s],
    ['cluster', ['run', '--help'], /<script>.*--engines <launcher>.*--hostfile.*--node <path>/s],
    ['cluster', ['list', '--help'], /--json/],
    ['cluster', ['stop', '--help'], /--all/],
    ['controller', ['--help'], /--ping.*--scheme.*--hwm.*--curve.*--profile-dir/s],
    ['engine', ['--help'], /--file.*--uuid.*--profile-dir/s],
  ] as const) {
    const p = startProcess(t, process.execPath, [binPath(bin), ...args])
    t.equal((await p.exited).code, 0, `${bin} ${args.join(' ')}`)
    t.match(p.output(), pattern)
  }
})

t.test('bad command-line values are refused naming the option', async (t) => {
  const hwm = startProcess(t, process.execPath, [binPath('controller'), '--hwm=-1', '--profile-dir', tempDir(t)])
  t.not((await hwm.exited).code, 0)
  t.match(hwm.output(), /--hwm must be a whole number >= 0/)
  const engine = startProcess(t, process.execPath, [binPath('engine'), '--profile-dir', tempDir(t), '--timeout', '1'])
  t.not((await engine.exited).code, 0)
  t.match(engine.output(), /ipcontroller-engine\.json/)
})

/** `count` consecutive loopback ports that are free now (checked by binding them), starting somewhere random. */
async function freePortRange(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 30_000)
    const servers: Server[] = []
    try {
      for (let p = base; p < base + count; p++) {
        const server = createServer()
        servers.push(server)
        await new Promise<void>((resolve, reject) => server.once('error', reject).listen(p, '127.0.0.1', resolve))
      }
      return base
    } catch {
      // taken: try another range
    } finally {
      await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))))
    }
  }
  throw new Error(`no ${count} consecutive free ports found`)
}

t.test('started as ipyparallel starts ipcontroller: profile in $IPYTHONDIR, foreign options tolerated, SIGTERM ends it', async (t) => {
  const ipythonDir = tempDir(t)
  const proc = startProcess(t, process.execPath, [
    binPath('controller'), '--profile=iptest', '--log-level=10', '--ping=250', '--dictdb', '--usethreads', '--IPController.broadcast_scheduler_depth=2',
  ], { env: { IPYTHONDIR: ipythonDir } })
  const profile = join(ipythonDir, 'profile_iptest')
  const clientFile = join(profile, 'security', 'ipcontroller-client.json')
  await waitFor(() => existsSync(clientFile) || proc.child.exitCode !== null, 'the client connection file')
  t.equal(proc.child.exitCode, null, 'running')
  t.equal(statSync(join(profile, 'security')).mode & 0o777, 0o700, 'security/ is 0700')
  t.equal(statSync(join(profile, 'pid')).mode & 0o777, 0o700, 'pid/ is 0700')
  t.ok(existsSync(join(profile, 'log')) && existsSync(join(profile, 'startup')), 'log/ and startup/ made')
  t.match(proc.output(), /ignoring option --IPController\.broadcast_scheduler_depth=2/, 'a foreign trait is named in a warning')
  t.notMatch(proc.output(), /ignoring option --usethreads/, 'a known ipyparallel flag with no meaning here is accepted quietly')
  const started = performance.now()
  proc.child.kill('SIGTERM')
  const { code, signal } = await proc.exited
  const exitMs = Math.round(performance.now() - started)
  t.same({ code, signal }, { code: 0, signal: null }, 'it stopped itself: SIGTERM was handled, not fatal')
  t.match(proc.output(), /INFO stopping/, 'and said so')
  t.ok(exitMs < LAUNCHER_SIGKILL_MS, `exited ${exitMs} ms after SIGTERM, before ipyparallel's launcher would kill it (${LAUNCHER_SIGKILL_MS} ms)`)
  t.notOk(existsSync(clientFile), 'connection files removed')
})

t.test('--cluster-id with no value is the empty id; --ports chooses the ports bound', async (t) => {
  const base = await freePortRange(16)
  const profileDir = join(tempDir(t), 'profile_x')
  const proc = startProcess(t, process.execPath, [binPath('controller'), '--profile-dir', profileDir, '--cluster-id', `--ports=${base}-${base + 7},${base + 8}-${base + 15}`])
  const clientFile = join(profileDir, 'security', 'ipcontroller-client.json')
  const engineFile = join(profileDir, 'security', 'ipcontroller-engine.json')
  await waitFor(() => (existsSync(clientFile) && existsSync(engineFile)) || proc.child.exitCode !== null, 'connection files without a cluster id in their names')
  const client = JSON.parse(readFileSync(clientFile, 'utf8')) as Record<string, unknown>
  const engine = JSON.parse(readFileSync(engineFile, 'utf8')) as Record<string, unknown>
  t.equal(client.registration, base, 'registration takes the first port')
  const bound = new Set([client, engine].flatMap((info) => Object.entries(info)
    .filter(([k]) => !['interface', 'location', 'key', 'ssh', 'pack', 'unpack', 'signature_scheme', 'task_scheme', 'curve_serverkey'].includes(k))
    .flatMap(([, v]) => (Array.isArray(v) ? v : [v]) as number[])))
  t.ok([...bound].every((p) => p >= base && p < base + 16), `every port from the list: ${[...bound].join(',')}`)
  const c = new Client({ profileDir, log: silentLogger })
  t.teardown(() => c.close())
  t.same(await c.queueStatus(), { unassigned: 0 }, 'the controller answers on them')
  const bad = startProcess(t, process.execPath, [binPath('controller'), '--profile-dir', tempDir(t), '--ports=10-5'])
  t.not((await bad.exited).code, 0)
  t.match(bad.output(), /--ports: '10-5' is not a port/)
})
