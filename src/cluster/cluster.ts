import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { availableParallelism, hostname, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { ConfigError } from '../common/errors.js'
import { createLogger, type Logger, type LogLevel } from '../common/log.js'
import { resolveProfileDir, connectionFilePath } from '../protocol/connection-file.js'
import { Client, type ClientOptions } from '../client/client.js'
import { clientEnvironment } from '../client/environment.js'
import { distributeEngines, hostsFromList, mergeHosts, parseHostfile, type HostSource } from './hosts.js'
import { controllerLauncher, engineLauncher } from './launchers/index.js'
import type { EngineLauncherSettings } from './launchers/launcher.js'
import { localEngineScript } from './launchers/local.js'
import { ClusterProcesses } from './processes.js'
import { removeClusterState, writeClusterState } from './state.js'

/** How to start a cluster. Every field is optional; the defaults are in each field's note. */
export interface ClusterOptions {
  /** Number of engines to start (0 or more). Default: the number of CPUs (`os.availableParallelism()`). */
  n?: number
  /**
   * Where the cluster's connection files, logs and state go. With none of `profile`, `profileDir` and `ipythonDir`,
   * a temporary profile directory is made and removed at `stop()`: only `connect()` reaches such a cluster. Give
   * one (as `new Client()` takes them, `$IPYTHONDIR` included) to let other processes find it.
   */
  profile?: string
  profileDir?: string
  ipythonDir?: string
  /** Cluster id, part of the connection files' names, so that several clusters share a profile. Default: ''. */
  clusterId?: string
  /** Engine launcher by name: `'local'` (the default), `'ssh'` or `'mpi'` (docs/launchers.md). */
  engines?: string
  /**
   * Where engines run: a hostfile's path (lines `host [n]`, `host slots=N`, `node[01-04]`; docs/launchers.md), or
   * host names, one per engine (`['a', 'a', 'b']`). `n`, when given, is spread over them by SCOOP's rules; a host
   * without a count takes this machine's number of CPUs. The `local` launcher takes only this machine's names.
   */
  hostfile?: string
  hosts?: string[]
  /**
   * The address the controller binds, which engines on other hosts connect to. Default: 127.0.0.1, which only
   * this machine reaches: engines on other hosts need an address of this machine they can reach (prefer `curve`).
   */
  ip?: string
  /** More environment variables for every engine, local or remote. */
  env?: Record<string, string>
  /** How the `ssh` launcher reaches the hosts and starts engines there. */
  ssh?: SshOptions
  /** Controller launcher by name. Default and only: `'local'`. */
  controller?: string
  /** The controller's task scheduler scheme (`controller --help` lists them). Default: the controller's (`leastload`). */
  scheme?: string
  /** Most tasks one engine holds at once (0 = unlimited). Default: the controller's. */
  hwm?: number
  /** Heartbeat period in milliseconds. Default: the controller's. */
  pingMs?: number
  /** Encrypt and authenticate with CurveZMQ. Default: false. */
  curve?: boolean
  /** Scheme plugin modules for the controller (paths resolved against the current directory). */
  plugins?: string[]
  /** More command-line arguments for the controller and for each engine, as `controller --help` and `engine --help` list them. */
  controllerArgs?: string[]
  engineArgs?: string[]
  /** The log level of the controller and engines, in their log files under `<profile dir>/log`. Default: `'info'`. */
  logLevel?: LogLevel
  /** How long to wait for the controller to start, engines to register or stopped engines to go, in ms. Default: 60000. */
  timeoutMs?: number
  /** Between SIGTERM and SIGKILL when stopping a process, in ms. Default: 5000. */
  stopGraceMs?: number
  /** Where the cluster's own messages go. Default: warnings and errors to stderr. */
  log?: Logger
  /** Aborting it while `start` runs stops what has started and rejects `start`. */
  signal?: AbortSignal
}

/** How the `ssh` launcher starts engines (docs/launchers.md). */
export interface SshOptions {
  /** The ssh command and its options, one word each. Default: `['ssh']`; `BatchMode=yes`, `ConnectTimeout=15` and `-T` follow them. */
  command?: string[]
  /** The `node` on the hosts. Default: `'node'` (found on the PATH of a non-interactive ssh session). */
  node?: string
  /** The directory engines run in on the hosts. Default: the login directory. */
  path?: string
  /**
   * The engine script on the hosts, relative to `path` unless absolute. Default: this install's `bin/engine.js`,
   * so hosts need jsparallel at the same path (a shared or identical install).
   */
  engineScript?: string
}

/** An engine of the cluster as `Cluster.engines` shows it. */
export interface ClusterEngine {
  /** The controller's id for it; undefined until it has registered. */
  readonly id: number | undefined
  readonly uuid: string
  /** Its process id, on `host` (undefined where the launcher does not know it). */
  readonly pid: number | undefined
  /** The host it runs on; undefined for a child process on this machine. */
  readonly host: string | undefined
  readonly running: boolean
}

const OPTION_NAMES = new Set(['n', 'profile', 'profileDir', 'ipythonDir', 'clusterId', 'engines', 'hostfile', 'hosts', 'ip', 'env', 'ssh', 'controller', 'scheme', 'hwm', 'pingMs', 'curve', 'plugins',
  'controllerArgs', 'engineArgs', 'logLevel', 'timeoutMs', 'stopGraceMs', 'log', 'signal'])

function wholeNumber(name: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) throw new ConfigError(`Cluster option ${name} must be a whole number >= ${min}, got ${String(value)}`)
  return value
}

/** This machine's names: the only hosts the `local` launcher can start engines on. */
export function isThisMachine(host: string): boolean {
  const name = hostname()
  return ['localhost', '127.0.0.1', '::1', name, name.split('.')[0]].includes(host)
}

const isLoopback = (ip: string | undefined): boolean => ip === undefined || ip === 'localhost' || ip === '::1' || ip.startsWith('127.')

/**
 * The host of each engine to start, in order (a, b, b, c), from `hostfile` or `hosts` and `n` by SCOOP's rules;
 * undefined when neither is given (then all run here).
 */
function placementOf(options: ClusterOptions): string[] | undefined {
  if (options.hostfile !== undefined && options.hosts !== undefined) throw new ConfigError('give the Cluster option hostfile or hosts, not both')
  let sources: HostSource[]
  if (options.hostfile !== undefined) {
    if (typeof options.hostfile !== 'string' || options.hostfile === '') throw new ConfigError('Cluster option hostfile must be a file path')
    let text: string
    try {
      text = readFileSync(options.hostfile, 'utf8')
    } catch (e) {
      throw new ConfigError(`hostfile: cannot read ${options.hostfile}: ${(e as Error).message}`, { cause: e })
    }
    sources = parseHostfile(text, options.hostfile)
  } else if (options.hosts !== undefined) {
    if (!Array.isArray(options.hosts) || options.hosts.length === 0 || !options.hosts.every((h) => typeof h === 'string')) {
      throw new ConfigError('Cluster option hosts must be a non-empty array of host names, one per engine')
    }
    sources = hostsFromList(options.hosts, 'the hosts option')
  } else {
    return undefined
  }
  const perHost = distributeEngines(mergeHosts(sources, () => availableParallelism()), options.n === undefined ? undefined : wholeNumber('n', options.n, 0))
  const placement = perHost.flatMap((h) => Array<string>(h.engines).fill(h.host))
  const launcher = options.engines ?? 'local'
  // mpi: on this machine only until engines on other hosts through mpiexec are tested.
  const local = launcher === 'local' || launcher === 'mpi'
  const remote = placement.find((h) => !isThisMachine(h))
  if (local && remote !== undefined) {
    throw new ConfigError(`the ${launcher} launcher starts engines on this machine only, but ${sources.find((s) => s.host === remote)?.origin ?? 'hosts'} names host '${remote}'; use engines: 'ssh' for other hosts`)
  }
  if (!local && remote !== undefined && isLoopback(options.ip) && !(options.controllerArgs ?? []).some((a) => a.startsWith('--ip'))) {
    throw new ConfigError(`the controller listens on 127.0.0.1 unless told otherwise, which engines on ${remote} cannot reach: ` +
      'give ip (--ip) an address of this machine that the hosts reach (and consider curve)')
  }
  return placement
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

function launcherSettingsOf(options: ClusterOptions): EngineLauncherSettings {
  const env = options.env ?? {}
  if (typeof env !== 'object' || env === null) throw new ConfigError('Cluster option env must be an object of names to strings')
  for (const [k, v] of Object.entries(env)) {
    if (!ENV_NAME.test(k)) throw new ConfigError(`Cluster option env: '${k}' is not a variable name (letters, digits and _, not starting with a digit)`)
    if (typeof v !== 'string') throw new ConfigError(`Cluster option env: ${k} must be a string, got ${typeof v}`)
  }
  const ssh = options.ssh ?? {}
  if (options.ssh !== undefined && options.engines !== 'ssh') throw new ConfigError(`Cluster option ssh applies to engines: 'ssh', not '${options.engines ?? 'local'}'`)
  for (const key of Object.keys(ssh)) if (!['command', 'node', 'path', 'engineScript'].includes(key)) throw new ConfigError(`unknown ssh option '${key}'; known: command, node, path, engineScript`)
  const command = ssh.command ?? ['ssh']
  if (!Array.isArray(command) || command.length === 0 || !command.every((w) => typeof w === 'string' && w !== '')) {
    throw new ConfigError('ssh option command must be a non-empty array of words, e.g. [\'ssh\', \'-i\', \'key\']')
  }
  const text = (name: string, value: unknown, fallback: string): string => {
    if (value === undefined) return fallback
    if (typeof value !== 'string' || value === '') throw new ConfigError(`ssh option ${name} must be a non-empty string`)
    return value
  }
  return { env, ssh: command, node: text('node', ssh.node, 'node'), path: text('path', ssh.path, ''), engineScript: text('engineScript', ssh.engineScript, localEngineScript) }
}

function controllerArgsOf(options: ClusterOptions, logLevel: LogLevel): string[] {
  const args = [`--log-level=${logLevel}`]
  if (options.ip !== undefined) {
    if (typeof options.ip !== 'string' || options.ip === '') throw new ConfigError('Cluster option ip must be an address of this machine')
    args.push(`--ip=${options.ip}`)
  }
  if (options.scheme !== undefined) args.push(`--scheme=${options.scheme}`)
  if (options.hwm !== undefined) args.push(`--hwm=${wholeNumber('hwm', options.hwm, 0)}`)
  if (options.pingMs !== undefined) args.push(`--ping=${wholeNumber('pingMs', options.pingMs, 1)}`)
  if (options.curve === true) args.push('--curve')
  for (const plugin of options.plugins ?? []) args.push(`--plugin=${resolve(plugin)}`)
  return [...args, ...(options.controllerArgs ?? [])]
}

/**
 * A controller and engines started together, for a program: `Cluster.start({ n: 4 })`, then `connect()` for a
 * client, `addEngines`, `stopEngines` and `stop()` (or `await using`, which stops it at the end of the block).
 * `Cluster.run(main, { n })` starts one, runs `main(client)` and stops it whatever happens.
 *
 * ```js
 * await using cluster = await Cluster.start({ n: 4 })
 * const client = await cluster.connect()
 * ```
 */
export class Cluster {
  /** Resolves once the cluster has stopped: by `stop()`, or because its controller exited. */
  readonly stopped: Promise<void>
  private stopping: Promise<void> | undefined
  private readonly clients = new Set<Client>()
  private resolveStopped: () => void = () => {}

  /** Use `Cluster.start`. */
  private constructor(
    private readonly processes: ClusterProcesses,
    private readonly temporaryProfile: boolean,
    private readonly log: Logger,
  ) {
    this.stopped = new Promise((resolve) => {
      this.resolveStopped = resolve
    })
  }

  /** Starts a controller and `n` engines; resolves once every engine has registered. Stops what it started if it fails. */
  static async start(options: ClusterOptions = {}): Promise<Cluster> {
    options.signal?.throwIfAborted()
    for (const name of Object.keys(options)) if (!OPTION_NAMES.has(name)) throw new ConfigError(`unknown Cluster option '${name}'; known: ${[...OPTION_NAMES].join(', ')}`)
    const placement = placementOf(options)
    if (options.engines === 'ssh' && placement === undefined) throw new ConfigError('the ssh launcher needs hosts: give hostfile or hosts (--hostfile or --host)')
    const settings = launcherSettingsOf(options)
    const n = placement?.length ?? (options.n === undefined ? availableParallelism() : wholeNumber('n', options.n, 0))
    const timeoutMs = wholeNumber('timeoutMs', options.timeoutMs ?? 60_000, 1)
    const stopGraceMs = wholeNumber('stopGraceMs', options.stopGraceMs ?? 5000, 0)
    const logLevel = options.logLevel ?? 'info'
    const log = options.log ?? createLogger('cluster', 'warn')
    const engines = engineLauncher(options.engines ?? 'local')
    const controller = controllerLauncher(options.controller ?? 'local')
    const temporaryProfile = options.profile === undefined && options.profileDir === undefined && options.ipythonDir === undefined
    const profileDir = temporaryProfile ? mkdtempSync(join(tmpdir(), 'jsparallel-cluster-')) : resolveProfileDir(options, clientEnvironment())
    const processes = new ClusterProcesses({
      profileDir, clusterId: options.clusterId ?? '', controllerLauncher: controller, engineLauncher: engines,
      placement: placement ?? [], settings,
      controllerArgs: controllerArgsOf(options, logLevel), engineArgs: [`--log-level=${logLevel}`, ...(options.engineArgs ?? [])], timeoutMs, stopGraceMs, log,
    })
    const cluster = new Cluster(processes, temporaryProfile, log)
    processes.onChange = () => cluster.saveState()
    processes.onControllerExit = () => {
      cluster.stop().catch((e: unknown) => log.error(`stopping after the controller exited: ${String(e)}`))
    }
    const abort = (): void => {
      log.info('start aborted: stopping what has started')
      void cluster.stop()
    }
    options.signal?.addEventListener('abort', abort, { once: true })
    try {
      await processes.start(n)
      options.signal?.throwIfAborted()
    } catch (e) {
      await cluster.stop()
      // An abort ends the waits with "the cluster is stopping"; the caller asked for it, so say so.
      if (options.signal?.aborted) throw options.signal.reason
      throw e
    } finally {
      options.signal?.removeEventListener('abort', abort)
    }
    return cluster
  }

  /**
   * Starts a cluster, connects a client, runs `main(client, cluster)` and stops the cluster when `main` settles,
   * whether it returned or threw (DTM's `start(main)`). Resolves to what `main` returned.
   */
  static async run<T>(main: (client: Client, cluster: Cluster) => T | Promise<T>, options: ClusterOptions = {}): Promise<T> {
    const cluster = await Cluster.start(options)
    try {
      return await main(await cluster.connect(), cluster)
    } finally {
      await cluster.stop()
    }
  }

  get profileDir(): string {
    return this.processes.options.profileDir
  }

  get clusterId(): string {
    return this.processes.options.clusterId
  }

  /** The client connection file (`<profile dir>/security/ipcontroller[-<id>]-client.json`), for Python's client too. */
  get connectionFile(): string {
    return connectionFilePath(this.profileDir, 'client', this.clusterId)
  }

  get controllerPid(): number | undefined {
    return this.processes.controller?.pid
  }

  /** Every engine started, running or not, in the order started. */
  get engines(): ClusterEngine[] {
    return this.processes.engines.map((e) => ({ id: e.id, uuid: e.uuid, pid: e.process.pid, host: e.process.host, running: !e.process.exited }))
  }

  /**
   * A client connected to this cluster, with every running engine in `client.ids`. The cluster closes it at
   * `stop()`. `options` may set the client's `timeoutMs` and `log`.
   */
  async connect(options: Pick<ClientOptions, 'timeoutMs' | 'log'> = {}): Promise<Client> {
    if (this.stopping) throw new ConfigError('this cluster has been stopped')
    const client = await Client.connect({ profileDir: this.profileDir, clusterId: this.clusterId, ...options })
    this.clients.add(client)
    await client.waitForEngines(this.processes.running().filter((e) => e.id !== undefined).length, { timeoutMs: this.processes.options.timeoutMs })
    return client
  }

  /** Starts `k` more engines; resolves with their ids once they have registered. */
  async addEngines(k: number): Promise<number[]> {
    wholeNumber('addEngines(k)', k, 1)
    if (this.stopping) throw new ConfigError('this cluster has been stopped')
    const added = await this.processes.addEngines(k)
    return added.map((e) => e.id as number)
  }

  /** Stops these engines; resolves once their processes have exited and the controller has let them go. */
  async stopEngines(ids: readonly number[]): Promise<void> {
    await this.processes.stopEngines(ids)
  }

  /** Closes the clients `connect()` made, stops the engines, then the controller. Safe to call more than once. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      try {
        await Promise.allSettled([...this.clients].map((c) => c.close()))
        await this.processes.stop()
      } finally {
        removeClusterState(this.profileDir, this.clusterId)
        if (this.temporaryProfile) rmSync(this.profileDir, { recursive: true, force: true })
        this.resolveStopped()
      }
    })()
    return this.stopping
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop()
  }

  private saveState(): void {
    if (this.stopping) return
    try {
      mkdirSync(join(this.profileDir, 'pid'), { recursive: true, mode: 0o700 })
      writeClusterState({
        profileDir: this.profileDir,
        clusterId: this.clusterId,
        ownerPid: process.pid,
        launcher: this.processes.options.engineLauncher.name,
        startedAt: this.startedAt,
        controller: { pid: this.processes.controller?.pid },
        engines: this.processes.running().map((e) => ({ id: e.id, pid: e.process.pid, ...(e.process.host === undefined ? {} : { host: e.process.host }) })),
      })
    } catch (e) {
      this.log.warn(`could not write the cluster's state file: ${(e as Error).message}`)
    }
  }

  private readonly startedAt = new Date().toISOString()
}
