import { existsSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { Cluster, ConfigError } from '../../src/index.js'
import { silentLogger } from '../../src/common/log.js'
import { processAlive, tempDir, type Teardown } from '../helpers/processes.js'

/** Every PID a cluster started: its controller and its engines. */
const pidsOf = (cluster: Cluster): number[] => [cluster.controllerPid, ...cluster.engines.map((e) => e.pid)].filter((p): p is number => p !== undefined)

/** Kills whatever of these is still running when the test ends, pass or fail (they are this test's children). */
function killLeftovers(t: Teardown, pids: () => number[]): void {
  t.teardown(() => {
    for (const pid of pids()) if (processAlive(pid)) process.kill(pid, 'SIGKILL')
  })
}

t.test('Cluster.start, connect, map, addEngines, stopEngines and stop', async (t) => {
  const profileDir = join(tempDir(t), 'profile_api')
  const cluster = await Cluster.start({ n: 2, profileDir, pingMs: 250, log: silentLogger })
  const seen = new Set<number>()
  const remember = (): number[] => {
    for (const pid of pidsOf(cluster)) seen.add(pid)
    return [...seen]
  }
  killLeftovers(t, remember)
  t.teardown(() => cluster.stop())
  t.equal(cluster.profileDir, profileDir)
  t.ok(existsSync(cluster.connectionFile), 'the client connection file is in the profile')
  const client = await cluster.connect()
  t.same(client.ids, [0, 1], 'connect() gives a client that sees both engines')
  t.same(await client.loadBalancedView().map((x: number) => x * x, [1, 2, 3, 4]), [1, 4, 9, 16])

  const added = await cluster.addEngines(2)
  t.same([...added].sort(), [2, 3], 'addEngines resolves with the new ids once registered')
  remember()
  t.same(cluster.engines.map((e) => e.id).sort(), [0, 1, 2, 3], 'four engines, each with its id')
  const stoppedPid = cluster.engines.find((e) => e.id === 1)?.pid
  await cluster.stopEngines([1])
  t.notOk(stoppedPid !== undefined && processAlive(stoppedPid), 'the stopped engine process is gone')
  t.same(cluster.engines.filter((e) => e.running).map((e) => e.id).sort(), [0, 2, 3], 'three still running')
  await t.rejects(cluster.stopEngines([1]), /no running engine with id 1/, 'an engine stopped already')
  const directIds = await client.directView('all').apply(() => process.pid)
  t.equal(directIds.length, 3, 'the controller runs tasks on the three left')

  await cluster.stop()
  for (const pid of remember()) t.notOk(processAlive(pid), `process ${pid} has exited`)
  t.notOk(existsSync(cluster.connectionFile), 'the controller removed its connection files')
  t.notOk(existsSync(join(profileDir, 'pid', 'cluster.json')), 'the state file is gone')
  await t.rejects(cluster.connect(), ConfigError, 'a stopped cluster gives no client')
  await cluster.stop() // a second stop is harmless
})

t.test('await using stops every process at the end of the block; a temporary profile is removed', async (t) => {
  let pids: number[] = []
  let profileDir = ''
  killLeftovers(t, () => pids)
  {
    await using cluster = await Cluster.start({ n: 2, log: silentLogger })
    pids = pidsOf(cluster)
    profileDir = cluster.profileDir
    t.equal(pids.length, 3)
    t.ok(pids.every(processAlive), 'running inside the block')
    const client = await cluster.connect()
    t.equal(await client.loadBalancedView().apply((a: number, b: number) => a + b, 2, 3), 5)
  }
  for (const pid of pids) t.notOk(processAlive(pid), `process ${pid} has exited`)
  t.notOk(existsSync(profileDir), 'the temporary profile directory is gone')
})

t.test('Cluster.run returns what main returns and stops the cluster', async (t) => {
  let pids: number[] = []
  killLeftovers(t, () => pids)
  const value = await Cluster.run(async (client, cluster) => {
    pids = pidsOf(cluster)
    return client.loadBalancedView().map((x: number) => x + 1, [1, 2, 3])
  }, { n: 2, log: silentLogger })
  t.same(value, [2, 3, 4])
  t.equal(pids.length, 3)
  for (const pid of pids) t.notOk(processAlive(pid), `process ${pid} has exited`)
})

t.test('Cluster.run stops the cluster when main throws, and rejects with its error', async (t) => {
  let pids: number[] = []
  killLeftovers(t, () => pids)
  await t.rejects(Cluster.run((_client, cluster) => {
    pids = pidsOf(cluster)
    throw new Error('main failed')
  }, { n: 1, log: silentLogger }), /main failed/)
  t.equal(pids.length, 2)
  for (const pid of pids) t.notOk(processAlive(pid), `process ${pid} has exited`)
})

t.test('aborting the signal while Cluster.start runs stops what has started and rejects with the abort', async (t) => {
  const abort = new AbortController()
  const pids: number[] = []
  killLeftovers(t, () => pids)
  const info = (line: string): void => {
    const pid = /started, pid (\d+)/.exec(line)?.[1]
    if (pid === undefined) return
    pids.push(Number(pid))
    if (line.startsWith('controller')) abort.abort(new Error('the user changed their mind'))
  }
  const log = { ...silentLogger, info }
  await t.rejects(Cluster.start({ n: 2, log, signal: abort.signal }), /the user changed their mind/)
  t.ok(pids.length >= 1, `it had started ${pids.join(', ')}`)
  for (const pid of pids) t.notOk(processAlive(pid), `process ${pid} has exited`)
})

t.test('bad options are refused before anything starts, naming the option', async (t) => {
  await t.rejects(Cluster.start({ n: -1 }), /Cluster option n must be a whole number >= 0, got -1/)
  await t.rejects(Cluster.start({ n: 1, engines: 'slurm' }), /engine launcher 'slurm' is not available yet .*available: local, ssh, mpi/)
  await t.rejects(Cluster.start({ n: 1, engines: 'nope' }), /unknown engine launcher 'nope'; available: local, ssh, mpi/)
  await t.rejects(Cluster.start({ engines: 'mpi', hosts: ['node7'] }), /the mpi launcher starts engines on this machine only, but the hosts option names host 'node7'/)
  await t.rejects(Cluster.start({ n: 1, engines: 'ssh' }), /the ssh launcher needs hosts: give hostfile or hosts/)
  await t.rejects(Cluster.start({ engines: 'ssh', hosts: ['node7'] }), /the controller listens on 127\.0\.0\.1 unless told otherwise, which engines on node7 cannot reach/)
  await t.rejects(Cluster.start({ hosts: ['node7'] }), /the local launcher starts engines on this machine only, but the hosts option names host 'node7'/)
  await t.rejects(Cluster.start({ engines: 'ssh', hosts: ['localhost'], ssh: { comand: ['ssh'] } as never }), /unknown ssh option 'comand'/)
  await t.rejects(Cluster.start({ n: 1, ssh: { node: 'node' } }), /Cluster option ssh applies to engines: 'ssh', not 'local'/)
  await t.rejects(Cluster.start({ n: 1, env: { 'A-B': '1' } }), /Cluster option env: 'A-B' is not a variable name/)
  await t.rejects(Cluster.start({ engines: 'ssh', hostfile: '/nonexistent/hosts' }), /hostfile: cannot read \/nonexistent\/hosts/)
  await t.rejects(Cluster.start({ nn: 2 } as never), /unknown Cluster option 'nn'/)
  await t.rejects(Cluster.start({ n: 1, signal: AbortSignal.abort() }), /aborted/i, 'an aborted signal starts nothing')
})
