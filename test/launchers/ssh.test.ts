// The ssh launcher for real: three "hosts" made as network namespaces with their own sshd and hostname
// (test/helpers/netns-hosts.ts, the reference's §3.3 recipe). The `cluster` command runs on host 1 (its controller
// bound on 10.251.0.1 with --ip) and starts engines over ssh on hosts 1, 2 and 3; a fourth host has no sshd, so
// ssh to it is refused. Every test checks that nothing it started is left running on any host.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { netnsHosts, netnsUnavailable, type NetnsHosts } from '../helpers/netns-hosts.js'
import { binPath, processAlive, repoRoot, startProcess, tempDir, waitFor, type Proc, type Teardown } from '../helpers/processes.js'

const ceiling = 90_000
const unavailable = netnsUnavailable()

/** A directory inside the repository (so that `import 'jsparallel'` resolves to the build), removed at the end. */
function scriptDir(t: Teardown): string {
  const parent = join(repoRoot, 'dist', 'launcher-scripts')
  mkdirSync(parent, { recursive: true })
  const dir = mkdtempSync(join(parent, 'ssh-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** `cluster <subcommand> <args>` run on host 1 with the test's ssh key and the controller on host 1's address. */
function clusterOnHost1(t: Teardown, hosts: NetnsHosts, [subcommand, ...args]: string[]): Proc {
  // Before the rest: after `cluster run`'s script they would be the script's.
  const [command, argv] = hosts.exec(1, process.execPath, [binPath('cluster'), subcommand ?? 'start', '--engines=ssh', '--ip', hosts.address(1), '--ssh', hosts.ssh,
    '--engine-node', process.execPath, '--timeout', '30', ...args])
  return startProcess(t, command, argv)
}

/** Resolves once no process but its sshd is left in each of these hosts' namespaces. */
async function nothingLeft(t: Test, hosts: NetnsHosts, which: number[]): Promise<void> {
  await waitFor(() => which.every((n) => hosts.strays(n).length === 0), 'the hosts to have nothing of ours running', 30_000)
    .catch(() => undefined)
  for (const n of which) t.same(hosts.strays(n), [], `nothing left running on host ${n} but its sshd`)
}

t.test('ssh launcher across network-namespace hosts', { skip: unavailable }, async (t) => {
  const hosts = await netnsHosts(t, 4, [1, 2, 3])

  t.test('cluster run: engines on the three hosts of a hostfile; a map\'s results name their hosts; nothing left after', async (t) => {
    const dir = scriptDir(t)
    const workDir = tempDir(t)
    writeFileSync(join(dir, 'hosts.txt'), `# the three hosts\n${hosts.address(1)} 1\n${hosts.address(2)} slots=2\n${hosts.address(3)}:1\n`)
    writeFileSync(join(dir, 'where.mjs'), `
import { hostname, networkInterfaces } from 'node:os'
export function where(i) {
  const ips = Object.values(networkInterfaces()).flat().filter((a) => a && a.family === 'IPv4' && !a.internal).map((a) => a.address)
  return { i, host: hostname(), ips, cwd: process.cwd(), env: process.env.JSP_LAUNCHER_TEST ?? null }
}
`)
    writeFileSync(join(dir, 'script.mjs'), `
import { Client, moduleFunction } from 'jsparallel'
const client = new Client()
await client.waitForEngines(4, { timeoutMs: 60000 })
const where = moduleFunction(new URL('./where.mjs', import.meta.url), 'where')
console.log('where', JSON.stringify(await client.directView().map(where, [0, 1, 2, 3])))
await client.close()
`)
    const run = clusterOnHost1(t, hosts, ['run', '--hostfile', join(dir, 'hosts.txt'), '--ipython-dir', tempDir(t), '--path', workDir,
      '--env', 'JSP_LAUNCHER_TEST=over ssh', join(dir, 'script.mjs')])
    const { code } = await run.exited
    t.equal(code, 0, 'cluster run exits with the script\'s code', { output: run.output() })
    const match = /where (\[.*\])/.exec(run.output())
    t.ok(match, 'the script printed where its tasks ran')
    const where = JSON.parse(match?.[1] ?? '[]') as { i: number; host: string; ips: string[]; cwd: string; env: string | null }[]
    t.same(where.map((w) => w.i), [0, 1, 2, 3], 'every item came back, in order')
    t.same(where.map((w) => w.host).sort(), ['host1', 'host2', 'host2', 'host3'], 'the engines ran on the hosts the hostfile names, with its counts')
    for (const w of where) {
      t.same(w.ips, [`10.251.0.${w.host.slice(4)}`], `${w.host}'s engine has that host's address only`)
      t.equal(w.cwd, workDir, '--path is the engines\' working directory')
      t.equal(w.env, 'over ssh', '--env reaches the engines')
    }
    await nothingLeft(t, hosts, [1, 2, 3])
  })

  t.test('Cluster.start({ engines: \'ssh\', hosts }): engines know their host and pid there; addEngines goes round the hosts; stopEngines stops one', async (t) => {
    const dir = scriptDir(t)
    writeFileSync(join(dir, 'api.mjs'), `
import { Cluster } from 'jsparallel'
const [ssh, hosts, ip, node] = JSON.parse(process.argv[2])
const cluster = await Cluster.start({ engines: 'ssh', hosts, ip, ssh: { command: ssh.split(' '), node }, timeoutMs: 30000 })
try {
  const [added] = await cluster.addEngines(1)
  console.log('engines', JSON.stringify(cluster.engines.map((e) => [e.host, e.running, typeof e.pid])))
  console.log('ids', JSON.stringify(cluster.engines.map((e) => e.id)), 'added', added)
  await cluster.stopEngines([added])
  console.log('running', JSON.stringify(cluster.engines.filter((e) => e.running).map((e) => e.host)))
} finally {
  await cluster.stop()
}
`)
    const [command, argv] = hosts.exec(1, process.execPath, [join(dir, 'api.mjs'), JSON.stringify([hosts.ssh, [hosts.address(2), hosts.address(3)], hosts.address(1), process.execPath])])
    const api = startProcess(t, command, argv)
    t.equal((await api.exited).code, 0, api.output())
    const [a2, a3] = [hosts.address(2), hosts.address(3)]
    // In start order; the first two may register (and get their ids) in either order.
    t.match(api.output(), `engines ${JSON.stringify([[a2, true, 'number'], [a3, true, 'number'], [a2, true, 'number']])}`, 'the added engine went to the first host again')
    t.match(api.output(), /ids \[(0,1|1,0),2\] added 2/, 'the added engine has the next id')
    t.match(api.output(), `running ${JSON.stringify([a2, a3])}`, 'stopEngines stopped the added one only')
    await nothingLeft(t, hosts, [1, 2, 3])
  })

  t.test('cluster stop stops the engines on every host', async (t) => {
    const dir = tempDir(t)
    const profileDir = join(dir, 'profile_stop')
    const start = clusterOnHost1(t, hosts, ['start', '--host', `${hosts.address(2)},${hosts.address(2)},${hosts.address(3)}`, '--profile-dir', profileDir])
    await start.waitForOutput(/cluster ready: 3 engines/, ceiling)
    t.equal(hosts.strays(2).length >= 2 && hosts.strays(3).length >= 1, true, 'engines run on hosts 2 and 3')
    const stop = startProcess(t, process.execPath, [binPath('cluster'), 'stop', '--profile-dir', profileDir])
    t.equal((await stop.exited).code, 0, stop.output())
    t.equal((await start.exited).code, 0, 'cluster start ends once it has stopped everything')
    await nothingLeft(t, hosts, [1, 2, 3])
  })

  t.test('a cluster killed with SIGKILL leaves no engine behind: they stop when their ssh session ends', async (t) => {
    const start = clusterOnHost1(t, hosts, ['start', '--host', `${hosts.address(2)},${hosts.address(3)}`, '--profile-dir', join(tempDir(t), 'profile_kill')])
    await start.waitForOutput(/cluster ready: 2 engines/, ceiling)
    const controller = /controller started, pid (\d+)/.exec(start.output())
    t.teardown(() => {
      if (controller && processAlive(Number(controller[1]))) process.kill(Number(controller[1]), 'SIGKILL')
    })
    await start.stop('SIGKILL')
    await nothingLeft(t, hosts, [2, 3])
  })

  t.test('a host that refuses ssh fails the start, naming it; nothing is left on the others', async (t) => {
    const dir = tempDir(t)
    writeFileSync(join(dir, 'hosts.txt'), `${hosts.address(2)} 1\n${hosts.address(4)} 1\n`)
    const start = clusterOnHost1(t, hosts, ['start', '--hostfile', join(dir, 'hosts.txt'), '--profile-dir', join(dir, 'profile_refused')])
    const began = Date.now()
    t.equal((await start.exited).code, 1, 'cluster start fails')
    t.match(start.output(), new RegExp(`ssh to ${hosts.address(4).replace(/\./g, '\\.')} failed: .*Connection refused`))
    t.ok(Date.now() - began < 25_000, `it fails fast (${Date.now() - began} ms), well before --timeout`)
    await nothingLeft(t, hosts, [1, 2])
  })

  t.test('a host name that does not resolve fails the start, naming it', async (t) => {
    const start = clusterOnHost1(t, hosts, ['start', '--host', 'no-such-host.invalid', '--profile-dir', join(tempDir(t), 'profile_unknown')])
    t.equal((await start.exited).code, 1, 'cluster start fails')
    t.match(start.output(), /ssh to no-such-host\.invalid failed: .*(Could not resolve|not known|Name or service)/i)
    await nothingLeft(t, hosts, [1])
  })

  t.test('engines that never register: the timeout names the hosts that did not answer; they are killed', async (t) => {
    const dir = scriptDir(t)
    // Stands in for an engine that cannot reach the controller: it runs, ignores stdin, and never registers.
    writeFileSync(join(dir, 'silent.mjs'), 'setInterval(() => {}, 1000)\n')
    const [command, argv] = hosts.exec(1, process.execPath, [binPath('cluster'), 'start', '--engines=ssh', '--ip', hosts.address(1), '--ssh', hosts.ssh,
      '--engine-node', process.execPath, '--engine-script', join(dir, 'silent.mjs'), '--timeout', '4',
      '--host', `${hosts.address(2)},${hosts.address(3)}`, '--profile-dir', join(tempDir(t), 'profile_silent')])
    const start = startProcess(t, command, argv)
    t.equal((await start.exited).code, 1, 'cluster start fails')
    t.match(start.output(), /timed out after 4000 ms waiting for 2 engines to register; not registered: engine-0 on 10\.251\.0\.2, engine-1 on 10\.251\.0\.3 \(hosts that did not answer: 10\.251\.0\.2, 10\.251\.0\.3\)/)
    await nothingLeft(t, hosts, [1, 2, 3])
  })
})

t.test('bad input to the ssh launcher is refused, naming what was wrong', async (t) => {
  const dir = tempDir(t)
  const cluster = (args: string[]): Proc => startProcess(t, process.execPath, [binPath('cluster'), 'start', '--profile-dir', join(dir, 'profile'), '--timeout', '20', ...args])
  const noHosts = cluster(['--engines=ssh'])
  t.equal((await noHosts.exited).code, 1)
  t.match(noHosts.output(), /--engines=ssh needs hosts: give --hostfile FILE or --host NAMES/)
  const loopback = cluster(['--engines=ssh', '--host', 'node7'])
  t.equal((await loopback.exited).code, 1)
  t.match(loopback.output(), /the controller listens on 127\.0\.0\.1 unless told otherwise, which engines on node7 cannot reach/)
  const sshWithLocal = cluster(['--path', '/tmp', '-n', '1'])
  t.equal((await sshWithLocal.exited).code, 1)
  t.match(sshWithLocal.output(), /--path applies to --engines=ssh only/)
  const badEnv = cluster(['--engines=ssh', '--host', 'localhost', '--env', '1X=2'])
  t.equal((await badEnv.exited).code, 1)
  t.match(badEnv.output(), /--env: '1X=2' is not NAME=VALUE/)
  const noSsh = cluster(['--engines=ssh', '--host', 'localhost', '--ssh', '/nonexistent/ssh -v'])
  t.equal((await noSsh.exited).code, 1)
  t.match(noSsh.output(), /cannot run the ssh command '\/nonexistent\/ssh' for host localhost: spawn \/nonexistent\/ssh ENOENT/)
  const controller = /controller started, pid (\d+)/.exec(noSsh.output())
  t.ok(controller, 'the controller had started')
  t.notOk(controller && processAlive(Number(controller[1])), 'and was stopped')
})
