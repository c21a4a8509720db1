import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { ConfigError } from '../common/errors.js'
import { createLogger, type Logger, type LogLevel } from '../common/log.js'
import { resolveProfileDir, connectionFilePath } from '../protocol/connection-file.js'
import { Client, type ClientOptions } from '../client/client.js'
import { clientEnvironment } from '../client/environment.js'
import { controllerLauncher, engineLauncher } from './launchers/index.js'
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
  /** Engine launcher by name. Default and, for now, only: `'local'` (docs/launchers.md). */
  engines?: string
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

/** An engine of the cluster as `Cluster.engines` shows it. */
export interface ClusterEngine {
  /** The controller's id for it; undefined until it has registered. */
  readonly id: number | undefined
  readonly uuid: string
  /** Its process id (undefined where the launcher does not know it). */
  readonly pid: number | undefined
  readonly running: boolean
}

const OPTION_NAMES = new Set(['n', 'profile', 'profileDir', 'ipythonDir', 'clusterId', 'engines', 'controller', 'scheme', 'hwm', 'pingMs', 'curve', 'plugins',
  'controllerArgs', 'engineArgs', 'logLevel', 'timeoutMs', 'stopGraceMs', 'log', 'signal'])

function wholeNumber(name: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) throw new ConfigError(`Cluster option ${name} must be a whole number >= ${min}, got ${String(value)}`)
  return value
}

function controllerArgsOf(options: ClusterOptions, logLevel: LogLevel): string[] {
  const args = [`--log-level=${logLevel}`]
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
    const n = options.n === undefined ? availableParallelism() : wholeNumber('n', options.n, 0)
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
    return this.processes.engines.map((e) => ({ id: e.id, uuid: e.uuid, pid: e.process.pid, running: !e.process.exited }))
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
        engines: this.processes.running().map((e) => ({ id: e.id, pid: e.process.pid })),
      })
    } catch (e) {
      this.log.warn(`could not write the cluster's state file: ${(e as Error).message}`)
    }
  }

  private readonly startedAt = new Date().toISOString()
}
