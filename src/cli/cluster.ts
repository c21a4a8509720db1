import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, constants, homedir } from 'node:os'
import { join, resolve } from 'node:path'
import { Command, Option } from 'commander'
import { createLogger, type Logger } from '../common/log.js'
import { ConfigError } from '../common/errors.js'
import { clusterRunEnvironment } from '../client/environment.js'
import { Cluster, isThisMachine, type ClusterOptions } from '../cluster/cluster.js'
import { allocationFromEnv, distributeEngines, hostsFromList, mergeHosts, parseHostfile, type HostSource } from '../cluster/hosts.js'
import { availableEngineLaunchers, engineLauncher, plannedLaunchers } from '../cluster/launchers/index.js'
import { clusterStatesIn, clusterStatesUnder, type ClusterState } from '../cluster/state.js'
import { knownTaskSchemes } from '../controller/task-channels.js'
import { SchemeRegistry } from '../schedulers/schemes.js'
import { addProfileOptions, clusterIdOf, intOption, logLevelOf, onTerminate, packageVersion, profileDirOf, type ProfileFlags } from './common.js'

interface StartFlags extends ProfileFlags {
  n?: number
  engines: string
  hostfile?: string
  host?: string[]
  scheme?: string
  hwm?: number
  ping?: number
  plugin: string[]
  timeout: number
  curve?: boolean
  ip?: string
  ssh?: string
  engineNode?: string
  path?: string
  engineScript?: string
  env: Record<string, string>
}

function pidFile(profileDir: string, clusterId: string): string {
  return join(profileDir, 'pid', `cluster${clusterId ? `-${clusterId}` : ''}.pid`)
}

/** The options `cluster start` and `cluster run` share: how many engines, where, and the controller's settings. */
function addStartOptions(command: Command): Command {
  return addProfileOptions(command)
    .option('-n, --n <count>', 'number of engines (default: the hosts\' count from --hostfile/--host or a batch allocation, else the number of CPUs)', intOption('-n', 1))
    .option('--engines <launcher>', `engine launcher: ${availableEngineLaunchers().join(', ')} (planned: ${plannedLaunchers.join(', ')})`, 'local')
    .option('--hostfile <file>', 'hosts to start engines on: lines of `host [n]`, `host slots=N` or `node[01-04]` (docs/launchers.md)')
    .option('--host <hosts...>', 'hosts to start engines on, one name per engine (a a b, or a,a,b: 2 on a, 1 on b)')
    .option('--scheme <name>', `task scheduler scheme: ${knownTaskSchemes(new SchemeRegistry()).join(', ')}`)
    .option('--hwm <n>', 'most tasks one engine holds at once (0 = unlimited)', intOption('--hwm', 0))
    .option('--ping <ms>', 'heartbeat period in milliseconds', intOption('--ping', 10))
    .option('--plugin <module>', 'a scheme plugin module for the controller (repeatable)', (v: string, all: string[]) => [...all, v], [] as string[])
    .option('--curve', 'the controller encrypts and authenticates with CurveZMQ (see controller --help)')
    .option('--timeout <seconds>', 'how long to wait for the controller and engines to start', intOption('--timeout', 1), 60)
    .option('--ip <address>', 'address the controller binds, for engines on other hosts (default 127.0.0.1: this machine only; consider --curve)')
    .option('--env <K=V>', 'an environment variable for every engine (repeatable)', envOption, {} as Record<string, string>)
    .option('--ssh <command>', 'with --engines=ssh: the ssh command and its options, split at spaces (default: ssh; BatchMode=yes unless these options say otherwise)')
    .option('--engine-node <path>', 'with --engines=ssh: the node on the hosts (default: node on their PATH)')
    .option('--path <dir>', 'with --engines=ssh: the directory engines run in on the hosts (default: the login directory)')
    .option('--engine-script <path>', 'with --engines=ssh: the engine script on the hosts (default: this install\'s bin/engine.js)')
}

function envOption(value: string, all: Record<string, string>): Record<string, string> {
  const eq = value.indexOf('=')
  const name = value.slice(0, eq)
  if (eq < 1 || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new ConfigError(`--env: '${value}' is not NAME=VALUE with NAME a variable name`)
  return { ...all, [name]: value.slice(eq + 1) }
}

const SSH_ONLY = ['ssh', 'engineNode', 'path', 'engineScript'] as const

/** The `ssh` launcher's settings from the flags; refused with another launcher, where they would be ignored. */
function sshOptionsOf(flags: StartFlags): ClusterOptions['ssh'] {
  const given = SSH_ONLY.filter((k) => flags[k] !== undefined)
  if (flags.engines !== 'ssh') {
    if (given.length > 0) throw new ConfigError(`--${given[0]?.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`) ?? ''} applies to --engines=ssh only`)
    return undefined
  }
  const command = flags.ssh?.trim().split(/\s+/)
  if (command !== undefined && command[0] === '') throw new ConfigError('--ssh: empty command')
  return { command, node: flags.engineNode, path: flags.path, engineScript: flags.engineScript }
}

/**
 * How many engines to start, and where: from -n, the hostfile or --host list, or the batch allocation this runs
 * in, with SCOOP's rules for -n against the hosts. The local launcher refuses hosts other than this machine; for
 * the others, `hosts` names each engine's host.
 */
function enginePlacement(flags: StartFlags, env: NodeJS.ProcessEnv, log: Logger): { n: number; hosts?: string[] } {
  const launcher = engineLauncher(flags.engines).name
  let hosts: HostSource[] | undefined
  let total: number | undefined
  if (flags.hostfile !== undefined && flags.host !== undefined) throw new ConfigError('give --hostfile or --host, not both')
  if (flags.hostfile !== undefined) {
    let text: string
    try {
      text = readFileSync(flags.hostfile, 'utf8')
    } catch (e) {
      throw new ConfigError(`--hostfile: cannot read ${flags.hostfile}: ${(e as Error).message}`)
    }
    hosts = parseHostfile(text, flags.hostfile)
  } else if (flags.host !== undefined) {
    hosts = hostsFromList(flags.host)
  } else {
    const allocation = allocationFromEnv(env, (path) => readFileSync(path, 'utf8'))
    if (allocation) {
      log.info(`inside a ${allocation.scheduler} allocation: ${allocation.hosts.map((h) => h.host).join(', ')}`)
      hosts = allocation.hosts
      total = allocation.total
    }
  }
  if (!hosts) {
    if (launcher === 'ssh') throw new ConfigError('--engines=ssh needs hosts: give --hostfile FILE or --host NAMES')
    return { n: flags.n ?? availableParallelism() }
  }
  const remote = hosts.find((h) => !isThisMachine(h.host))
  const local = launcher === 'local' || launcher === 'mpi'
  if (remote && local) {
    throw new ConfigError(`--engines=${launcher} starts engines on this machine only, but ${remote.origin} names host '${remote.host}'; ` +
      `use --engines=ssh for other hosts (docs/launchers.md)`)
  }
  const perHost = distributeEngines(mergeHosts(hosts, () => availableParallelism()), flags.n ?? total)
  const n = perHost.reduce((sum, h) => sum + h.engines, 0)
  return local ? { n } : { n, hosts: perHost.flatMap((h) => Array<string>(h.engines).fill(h.host)) }
}

function clusterOptionsOf(flags: StartFlags, env: NodeJS.ProcessEnv, log: Logger, clusterId: string): ClusterOptions {
  const ssh = sshOptionsOf(flags)
  const { n, hosts } = enginePlacement(flags, env, log)
  return {
    n: hosts === undefined || hosts.length === 0 ? n : undefined,
    hosts: hosts !== undefined && hosts.length > 0 ? hosts : undefined,
    profileDir: profileDirOf(flags, env),
    clusterId,
    engines: flags.engines,
    ip: flags.ip,
    env: flags.env,
    ssh,
    scheme: flags.scheme,
    hwm: flags.hwm,
    pingMs: flags.ping,
    curve: flags.curve === true,
    plugins: flags.plugin.map((p) => resolve(p)),
    logLevel: logLevelOf(flags),
    timeoutMs: flags.timeout * 1000,
    log,
  }
}

/** Starts a cluster for a command: Ctrl-C while starting stops what has started. Leaves the `.pid` file for `cluster stop`. */
async function startForCommand(options: ClusterOptions, abort: AbortController): Promise<Cluster> {
  const cluster = await Cluster.start({ ...options, signal: abort.signal })
  const profileDir = cluster.profileDir
  mkdirSync(join(profileDir, 'pid'), { recursive: true, mode: 0o700 })
  writeFileSync(pidFile(profileDir, cluster.clusterId), String(process.pid))
  void cluster.stopped.then(() => rmSync(pidFile(profileDir, cluster.clusterId), { force: true }))
  return cluster
}

const signalExitCode = (signal: NodeJS.Signals): number => 128 + (constants.signals[signal] ?? 0)

function baseDirOf(flags: ProfileFlags, env: NodeJS.ProcessEnv): string {
  return resolve(flags.ipythonDir ?? env.IPYTHONDIR ?? join(homedir(), '.jsparallel'))
}

/** Whether `pid` runs this package's `cluster` command, where /proc can say (elsewhere, assumed so). */
function isClusterCommand(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').some((arg) => /cluster(\.js)?$/.test(arg))
  } catch {
    return !existsSync('/proc/self/cmdline')
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** The running clusters `cluster list` and `cluster stop --all` see: one profile with --profile-dir, else every profile of the base dir. */
function runningClusters(flags: ProfileFlags, env: NodeJS.ProcessEnv): ClusterState[] {
  const states = flags.profileDir !== undefined ? clusterStatesIn(resolve(flags.profileDir)) : clusterStatesUnder(baseDirOf(flags, env))
  return states.filter((s) => processAlive(s.ownerPid))
}

function clusterCommand(env: NodeJS.ProcessEnv): Command {
  const program = new Command('cluster')
    .description('Start, run, list or stop jsparallel clusters: a controller and N engines.')
    .version(packageVersion(), '-V, --version', 'print the jsparallel version and exit')
    .enablePositionalOptions()

  const start = addStartOptions(new Command('start'))
    .description('Start a controller and N engines in the foreground; Ctrl-C stops them all.')
    .option('--node <path>', 'with --engines=ssh: the node on the hosts (the same as --engine-node, which `cluster run` takes)')
    .action(async (flags: StartFlags & { node?: string }) => {
      flags.engineNode ??= flags.node
      const log = createLogger('cluster', logLevelOf(flags))
      const options = clusterOptionsOf(flags, env, log, clusterIdOf(flags))
      const abort = new AbortController()
      const starting = startForCommand(options, abort)
      let stopAsked = false
      onTerminate(async () => {
        stopAsked = true
        log.info('stopping the cluster')
        abort.abort()
        // An aborted start stops what it started before it rejects.
        await (await starting.catch(() => undefined))?.stop()
      })
      const cluster = await starting
      const { profileDir, clusterId } = cluster
      log.info(`cluster ready: ${cluster.engines.length} engines; connect with new Client({ profileDir: '${profileDir}'${clusterId ? `, clusterId: '${clusterId}'` : ''} })`)
      // The controller exiting stops the cluster (Cluster does it); then this command ends, with a failure unless
      // the stop was asked for (Ctrl-C, SIGTERM, `cluster stop`).
      await cluster.stopped
      process.exit(stopAsked ? 0 : 1)
    })

  const run = addStartOptions(new Command('run'))
    .description('Start a cluster, run `node script [args]` against it (a bare `new Client()` there finds it), stop the cluster, exit with the script\'s code.')
    .argument('<script>', 'the program to run under node')
    .argument('[args...]', 'its arguments (after `--` if they look like options)')
    .addOption(new Option('--node <path>', 'the node that runs the script').default(process.execPath, 'this node'))
    .passThroughOptions()
    .action(async (script: string, args: string[], flags: StartFlags & { node: string }, command: Command) => {
      const log = createLogger('cluster', logLevelOf(flags))
      // A run gets a cluster id of its own unless given one, so that runs and a `cluster start` share a profile.
      const clusterId = command.getOptionValueSource('clusterId') === 'default' ? `run-${process.pid}` : clusterIdOf(flags)
      const options = clusterOptionsOf(flags, env, log, clusterId)
      if (!existsSync(script)) throw new ConfigError(`cluster run: no script ${script}`)
      const abort = new AbortController()
      let cluster: Cluster | undefined
      // Set once the script runs; the signal handler, installed before, reads it.
      const running: { child?: ChildProcess } = {}
      let ending: NodeJS.Signals | undefined
      const onSignal = (signal: NodeJS.Signals): void => {
        if (ending) {
          process.exit(signalExitCode(signal))
        }
        ending = signal
        log.info(`${signal}: stopping the script and the cluster`)
        abort.abort()
        const child = running.child
        if (child && child.exitCode === null && child.signalCode === null) {
          child.kill(signal)
          // A script that ignores the signal is killed after a grace period.
          const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
          child.once('exit', () => clearTimeout(timer))
        } else void cluster?.stop().then(() => process.exit(signalExitCode(signal)))
      }
      process.on('SIGINT', onSignal)
      process.on('SIGTERM', onSignal)
      try {
        cluster = await startForCommand(options, abort)
      } catch (e) {
        if (ending) process.exit(signalExitCode(ending))
        throw e
      }
      log.info(`cluster ready: ${cluster.engines.length} engines; running ${script}`)
      const started = cluster
      const spawned = spawn(flags.node, [script, ...(args[0] === '--' ? args.slice(1) : args)], { stdio: 'inherit', env: { ...env, ...clusterRunEnvironment(started.profileDir, started.clusterId) } })
      running.child = spawned
      const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
        spawned.once('exit', (code, signal) => resolve({ code, signal }))
        spawned.once('error', (e) => {
          log.error(`could not run ${script}: ${e.message}`)
          resolve({ code: 127, signal: null })
        })
        void started.stopped.then(() => {
          if (spawned.exitCode === null && spawned.signalCode === null) {
            log.error('the cluster stopped (its controller exited) while the script ran; stopping the script')
            spawned.kill('SIGTERM')
          }
        })
      })
      await started.stop()
      if (ending) process.exit(signalExitCode(ending))
      process.exit(exit.code ?? (exit.signal ? signalExitCode(exit.signal) : 1))
    })

  const list = addProfileOptions(new Command('list'))
    .description('List the running clusters of the profiles under the base directory (or of --profile-dir).')
    .option('--json', 'print JSON: an array of { profileDir, clusterId, ownerPid, controller, engines, ... }')
    .action((flags: ProfileFlags & { json?: boolean }) => {
      const states = runningClusters(flags, env)
      if (flags.json) {
        console.log(JSON.stringify(states, null, 2))
        return
      }
      if (states.length === 0) {
        console.log('no running clusters')
        return
      }
      for (const s of states) {
        const engines = s.engines.map((e) => `${e.id ?? '?'}:${e.pid ?? '?'}${e.host === undefined ? '' : `@${e.host}`}`).join(' ')
        console.log(`${s.profileDir}  cluster-id '${s.clusterId}'  owner pid ${s.ownerPid}  controller pid ${s.controller.pid ?? '?'}  ${s.engines.length} engines (id:pid) ${engines}`)
      }
    })

  const stop = addProfileOptions(new Command('stop'))
    .description('Stop the cluster started with `cluster start` (or `cluster run`) for this profile; --all stops every one under the base directory.')
    .option('--all', 'stop every cluster a `cluster` command runs under the base directory (or --profile-dir)')
    .action((flags: ProfileFlags & { all?: boolean }) => {
      if (!flags.all) {
        const profileDir = profileDirOf(flags, env)
        const clusterId = clusterIdOf(flags)
        const file = pidFile(profileDir, clusterId)
        let text: string
        try {
          text = readFileSync(file, 'utf8').trim()
        } catch {
          throw new Error(`no cluster is running for this profile (${file} not found)`)
        }
        // A cluster command killed outright leaves its pid file; that pid may since belong to another process.
        const pid = Number(text)
        const state = clusterStatesIn(profileDir).find((s) => s.clusterId === clusterId)
        if (!Number.isInteger(pid) || pid <= 0 || !processAlive(pid) || state?.ownerPid !== pid || !isClusterCommand(pid)) {
          rmSync(file, { force: true })
          throw new Error(`no cluster is running for this profile: ${file} named ${text === '' ? 'no pid' : `pid ${text}`}, which is not a running cluster command (a stale file, now removed)`)
        }
        process.kill(pid, 'SIGINT')
        console.log(`sent SIGINT to cluster ${pid}`)
        return
      }
      const states = runningClusters(flags, env)
      if (states.length === 0) console.log('no running clusters')
      for (const s of states) {
        const file = pidFile(s.profileDir, s.clusterId)
        const commandPid = existsSync(file) ? Number(readFileSync(file, 'utf8')) : undefined
        if (commandPid !== s.ownerPid) {
          console.log(`not stopping ${s.profileDir} '${s.clusterId}': a program (pid ${s.ownerPid}) started it with Cluster.start; stop it there`)
          continue
        }
        process.kill(s.ownerPid, 'SIGINT')
        console.log(`sent SIGINT to cluster ${s.ownerPid} (${s.profileDir}${s.clusterId ? ` '${s.clusterId}'` : ''})`)
      }
    })
  return program.addCommand(start).addCommand(run).addCommand(list).addCommand(stop)
}

export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<void> {
  await clusterCommand(env).parseAsync(argv)
}
