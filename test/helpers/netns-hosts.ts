/**
 * "Hosts" for launcher tests, after the reference's §3.3 recipe: network namespaces `<prefix>-h1..hN` joined by a
 * bridge in a namespace of its own (`<prefix>-br`), host n at 10.251.0.n/24, each (where asked) with its own sshd in
 * its own UTS namespace (hostname `hostN`), keys in a temporary directory. Nothing is reachable from the root
 * namespace and no packet leaves the machine; the filesystem and the pid space are shared.
 *
 * Teardown (registered before anything is made, so it runs when setup or the test fails): every process left in
 * the namespaces (the sshds, and whatever a test started there) is killed by pid, then the namespaces are deleted.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startProcess, tempDir, waitFor, type Proc, type Teardown } from './processes.js'

export const SSHD = '/usr/sbin/sshd'

export interface NetnsHosts {
  /** The namespace of host n (1-based). */
  ns(n: number): string
  address(n: number): string
  /** The ssh command, one string, as `cluster --ssh` takes it: the test key, root, no host key checks. */
  ssh: string
  /** `ip netns exec <ns> command ...args`, as a command and its arguments. */
  exec(n: number, command: string, args: string[]): [string, string[]]
  /** Pids of the processes in host n's namespace other than its sshd listener. */
  strays(n: number): number[]
}

const ip = (args: string[]): void => {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] })
}

/** Pids of the processes whose network namespace is `ns` (what `ip netns pids` lists). */
function pidsIn(ns: string): number[] {
  const result = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' })
  if (result.status !== 0) return []
  return result.stdout.split('\n').filter((l) => /^\d+$/.test(l.trim())).map(Number)
}

/** Why these tests cannot run here, or undefined when they can (root, iproute2, sshd, and netns permitted). */
export function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'network namespaces need root'
  if (!existsSync(SSHD)) return `${SSHD} is missing (apt-get install openssh-server)`
  const probe = `jsp${process.pid}-probe`
  const add = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' })
  if (add.error) return `cannot run ip: ${add.error.message}`
  if (add.status !== 0) return `ip netns add is not permitted here: ${add.stderr.trim()}`
  spawnSync('ip', ['netns', 'del', probe])
  return undefined
}

/**
 * Makes `count` hosts; those listed in `withSshd` run an sshd. Resolves once every sshd listens.
 */
export async function netnsHosts(t: Teardown, count: number, withSshd: number[]): Promise<NetnsHosts> {
  const prefix = `jsp${process.pid}-${Math.random().toString(36).slice(2, 6)}`
  const bridge = `${prefix}-br`
  const ns = (n: number): string => `${prefix}-h${n}`
  const made: string[] = []
  const sshds = new Map<number, Proc>()
  t.teardown(async () => {
    for (const name of made) for (const pid of pidsIn(name)) killQuietly(pid)
    await waitFor(() => made.every((name) => pidsIn(name).length === 0), 'the processes in the test namespaces to exit', 10_000).catch(() => {})
    for (const name of made.reverse()) spawnSync('ip', ['netns', 'del', name])
  })

  ip(['netns', 'add', bridge])
  made.push(bridge)
  ip(['-n', bridge, 'link', 'add', 'br0', 'type', 'bridge'])
  ip(['-n', bridge, 'link', 'set', 'br0', 'up'])
  for (let n = 1; n <= count; n++) {
    ip(['netns', 'add', ns(n)])
    made.push(ns(n))
    ip(['-n', bridge, 'link', 'add', `vb${n}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns(n)])
    ip(['-n', bridge, 'link', 'set', `vb${n}`, 'master', 'br0'])
    ip(['-n', bridge, 'link', 'set', `vb${n}`, 'up'])
    ip(['-n', ns(n), 'addr', 'add', `10.251.0.${n}/24`, 'dev', 'eth0'])
    ip(['-n', ns(n), 'link', 'set', 'eth0', 'up'])
    ip(['-n', ns(n), 'link', 'set', 'lo', 'up'])
  }

  const dir = tempDir(t, 'jsparallel-netns-')
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'hostkey')])
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'userkey')])
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'userkey.pub')))
  writeFileSync(join(dir, 'sshd_config'), [
    'Port 22', `HostKey ${join(dir, 'hostkey')}`, 'PermitRootLogin prohibit-password', `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
    'StrictModes no', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'UsePAM no', 'PidFile none', '',
  ].join('\n'))
  // sshd's privilege separation directory (Debian's default path; the package's service would make it).
  mkdirSync('/run/sshd', { recursive: true })
  for (const n of withSshd) {
    const sshd = startProcess(t, 'ip', ['netns', 'exec', ns(n), 'unshare', '--uts', 'sh', '-c', `hostname host${n} && exec ${SSHD} -D -e -f ${join(dir, 'sshd_config')}`])
    sshds.set(n, sshd)
  }
  for (const sshd of sshds.values()) await sshd.waitForOutput(/Server listening/, 20_000)

  return {
    ns,
    address: (n) => `10.251.0.${n}`,
    ssh: `ssh -i ${join(dir, 'userkey')} -l root -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR`,
    exec: (n, command, args) => ['ip', ['netns', 'exec', ns(n), command, ...args]],
    strays: (n) => pidsIn(ns(n)).filter((pid) => pid !== sshds.get(n)?.pid),
  }
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL')
  } catch {
    // gone already
  }
}
