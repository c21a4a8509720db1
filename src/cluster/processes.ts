import { join } from 'node:path'
import { JsParallelError, TimeoutError } from '../common/errors.js'
import { newSessionId } from '../common/ids.js'
import type { Logger } from '../common/log.js'
import { waitForFiles } from '../common/wait-for-files.js'
import { channelUrl, connectionFilePath, readConnectionFile, CLIENT_KEYS, type ClientConnectionInfo } from '../protocol/connection-file.js'
import { contentOf } from '../protocol/content-readers.js'
import { Session } from '../protocol/session.js'
import { SocketGroup } from '../transport/socket-group.js'
import { createDealer, createSubscriber, curveClient, type Dealer } from '../transport/sockets.js'
import type { ControllerLauncher, EngineLauncher, EngineLauncherSettings, LaunchedProcess } from './launchers/launcher.js'

/** Everything the processes of a cluster need, filled in (the `Cluster` facade validates and defaults). */
export interface ClusterProcessOptions {
  profileDir: string
  clusterId: string
  controllerLauncher: ControllerLauncher
  engineLauncher: EngineLauncher
  /** The host of each engine, in the order they start; engines added past its end go round it again. Empty: 'localhost'. */
  placement: string[]
  settings: EngineLauncherSettings
  /** Arguments for the controller beyond its profile and cluster id (`--scheme=lru`, `--ping=250`, ...). */
  controllerArgs: string[]
  engineArgs: string[]
  /** How long to wait for the controller's files, for engines to register and for stopped engines to go. */
  timeoutMs: number
  /** How long a stopping process has between SIGTERM and SIGKILL. */
  stopGraceMs: number
  log: Logger
}

/** One engine process of the cluster. */
export interface EngineProcess {
  /** `engine-<n>`, as its log file is named. */
  readonly name: string
  readonly process: LaunchedProcess
  readonly uuid: string
  /** The id the controller gave it; undefined until it has registered. */
  id: number | undefined
  /** True once the cluster has asked it to stop (its exit is then expected, not a failure). */
  stopping: boolean
}

/**
 * A controller and its engines, started by launchers and watched like ipyparallel's nanny watches engines: an
 * engine that exits is unregistered at once, so its tasks fail over without waiting for the heartbeat.
 */
export class ClusterProcesses {
  controller: LaunchedProcess | undefined
  readonly engines: EngineProcess[] = []
  /** Called after any change of the processes or of their ids (the cluster's state file follows it). */
  onChange: () => void = () => {}
  /** Called when the controller exits without having been asked to. */
  onControllerExit: () => void = () => {}
  private session: Session | undefined
  /** Closed once the children have stopped: nothing queued then is still worth waiting for. */
  private readonly sockets: SocketGroup
  private query: Dealer | undefined
  private stopping = false
  private readonly unregistered = new Set<number>()
  private waiters: (() => void)[] = []

  constructor(readonly options: ClusterProcessOptions) {
    this.sockets = new SocketGroup({ log: options.log, drainMs: 0 })
  }

  get clientFile(): string {
    return connectionFilePath(this.options.profileDir, 'client', this.options.clusterId)
  }

  async start(engines: number): Promise<void> {
    const { profileDir, clusterId, log } = this.options
    const controller = await this.options.controllerLauncher.start({
      profileDir, clusterId, log, args: this.options.controllerArgs, logFile: this.logFile('controller'),
    })
    this.controller = controller
    if (this.stopping) {
      // stop() ran while the launcher was starting it: it could not see this process yet.
      await controller.stop(this.options.stopGraceMs)
      throw this.stoppedWhileStarting()
    }
    log.info(`controller started, pid ${controller.pid ?? '?'}, log ${this.logFile('controller')}`)
    controller.onExit((code, signal) => {
      if (this.stopping) return
      log.error(`controller exited unexpectedly (${signal ?? `code ${code}`})`)
      this.wake()
      this.onControllerExit()
    })
    this.onChange()
    const files = [this.clientFile, connectionFilePath(profileDir, 'engine', clusterId)]
    if (!(await waitForFiles(files, { timeoutMs: this.options.timeoutMs, pollMs: 50, giveUp: () => controller.exited }))) {
      const why = controller.exited ? ' (the controller exited; see its log)' : ''
      throw new TimeoutError(`timed out after ${this.options.timeoutMs} ms waiting for the controller to write its connection files${why}`)
    }
    if (this.stopping) throw this.stoppedWhileStarting()
    this.watchRegistrations()
    await this.addEngines(engines)
  }

  /** Starts `k` more engines and resolves once all of them have registered. */
  async addEngines(k: number): Promise<EngineProcess[]> {
    const { profileDir, clusterId, log } = this.options
    const { placement, settings } = this.options
    const specs = Array.from({ length: k }, (_, i) => ({
      profileDir, clusterId, log, uuid: newSessionId(), host: placement[(this.engines.length + i) % placement.length] ?? 'localhost',
      args: this.options.engineArgs, logFile: this.logFile(`engine-${this.engines.length + i}`), settings,
    }))
    if (this.stopping) throw this.stoppedWhileStarting()
    const processes = await this.options.engineLauncher.start(specs)
    if (this.stopping) {
      await Promise.all(processes.map((p) => p.stop(this.options.stopGraceMs)))
      throw this.stoppedWhileStarting()
    }
    const added = processes.map((process, i) => this.watchEngine(process, (specs[i] as { uuid: string }).uuid))
    this.onChange()
    const logs = join(this.options.profileDir, 'log')
    const where = (e: EngineProcess): string => `${e.name}${e.process.host === undefined ? '' : ` on ${e.process.host}`}`
    await this.waitFor(() => added.every((e) => e.id !== undefined), `${k} engine${k === 1 ? '' : 's'} to register`, () => {
      const dead = added.filter((e) => e.id === undefined && e.process.exited)
      if (dead.length === 0) return undefined
      const why = dead.map((e) => e.process.failure ?? `${where(e)} (pid ${e.process.pid ?? '?'}) exited before it registered`)
      return `${[...new Set(why)].join('; ')}; see ${dead.length === 1 ? 'its log' : 'their logs'} in ${logs}`
    }, () => {
      const missing = added.filter((e) => e.id === undefined)
      const hosts = [...new Set(missing.map((e) => e.process.host).filter((h) => h !== undefined))]
      return `; not registered: ${missing.map(where).join(', ')}${hosts.length > 0 ? ` (hosts that did not answer: ${hosts.join(', ')})` : ''}; logs in ${logs}`
    })
    return added
  }

  /**
   * Stops the engines with these ids and resolves once their processes have exited and the controller has
   * unregistered them.
   */
  async stopEngines(ids: readonly number[]): Promise<void> {
    const engines = ids.map((id) => {
      const engine = this.engines.find((e) => e.id === id && !e.process.exited)
      if (!engine) throw new RangeError(`no running engine with id ${id} in this cluster (engines: ${this.running().map((e) => e.id).join(', ') || 'none'})`)
      return engine
    })
    for (const e of engines) e.stopping = true
    await Promise.all(engines.map((e) => e.process.stop(this.options.stopGraceMs)))
    // The exit handler asks the controller to unregister each; the notification says it has.
    await this.waitFor(() => engines.every((e) => this.unregistered.has(e.id as number)), `engines ${ids.join(', ')} to be unregistered`)
    this.onChange()
  }

  running(): EngineProcess[] {
    return this.engines.filter((e) => !e.process.exited)
  }

  /** Stops engines, then the controller; kills what has not exited within the grace period. */
  async stop(): Promise<void> {
    this.stopping = true
    this.wake()
    for (const e of this.engines) e.stopping = true
    await Promise.all(this.engines.map((e) => e.process.stop(this.options.stopGraceMs)))
    if (this.controller) await this.controller.stop(this.options.stopGraceMs)
    await this.sockets.close()
  }

  private stoppedWhileStarting(): JsParallelError {
    return new JsParallelError('the cluster was stopped while it was starting')
  }

  private logFile(name: string): string {
    return join(this.options.profileDir, 'log', `${name}${this.options.clusterId ? `-${this.options.clusterId}` : ''}.log`)
  }

  private watchEngine(process: LaunchedProcess, uuid: string): EngineProcess {
    const engine: EngineProcess = { name: `engine-${this.engines.length}`, process, uuid, id: undefined, stopping: false }
    this.engines.push(engine)
    this.options.log.info(`${engine.name} started${process.host === undefined ? '' : ` on ${process.host}`}, pid ${process.pid ?? '?'}`)
    process.onExit((code, signal) => {
      if (this.stopping) return
      if (!engine.stopping) {
        const who = engine.id === undefined ? `${engine.name}${process.host === undefined ? '' : ` on ${process.host}`}` : `engine ${engine.id}`
        const what = engine.id === undefined ? ` before registering${process.failure === undefined ? '' : `: ${process.failure}`}` : '; unregistering it'
        this.options.log.warn(`${who} (pid ${process.pid ?? '?'}) exited (${signal ?? `code ${code}`})${what}`)
      }
      this.unregister(engine)
      this.wake()
      this.onChange()
    })
    return engine
  }

  /** Follows registration notifications so that an engine's id is known when its process exits. */
  private watchRegistrations(): void {
    const info = readConnectionFile<ClientConnectionInfo>(this.clientFile, CLIENT_KEYS)
    const session = (this.session = new Session({ key: info.key }))
    const curve = curveClient(info.curve_serverkey)
    const notifications = this.sockets.add('notification', createSubscriber({ curve }))
    const query = (this.query = this.sockets.add('registration', createDealer({ curve }), (e) => this.options.log.warn(`could not reach the controller: ${(e as Error).message}`)))
    notifications.connect(channelUrl(info.interface, info.notification, info.location))
    query.connect(channelUrl(info.interface, info.registration, info.location))
    this.sockets.receive(notifications, (frames) => {
      const { msg } = session.deserialize(frames)
      if (msg.header.msg_type === 'unregistration_notification') {
        this.unregistered.add(contentOf(msg, 'unregistration_notification').id)
        this.wake()
        return
      }
      if (msg.header.msg_type !== 'registration_notification') return
      const { id, uuid } = contentOf(msg, 'registration_notification')
      const engine = this.engines.find((e) => e.uuid === uuid)
      if (!engine) return
      engine.id = id
      this.options.log.info(`engine ${id} registered (${engine.process.host === undefined ? '' : `on ${engine.process.host}, `}pid ${engine.process.pid ?? '?'})`)
      this.onChange()
      this.wake()
    })
  }

  private unregister(engine: EngineProcess): void {
    if (engine.id === undefined || !this.session || !this.query) return
    void this.sockets.send(this.query, this.session.serialize(this.session.msg('unregistration_request', { id: engine.id })))
  }

  private wake(): void {
    for (const w of [...this.waiters]) w()
  }

  /** Resolves when `done()` holds; fails at the timeout, or at once when the controller exits or the cluster stops. */
  private waitFor(done: () => boolean, what: string, failed: () => string | undefined = () => undefined, detail: () => string = () => ''): Promise<void> {
    return new Promise((resolve, reject) => {
      const finish = (error?: Error): void => {
        clearTimeout(timer)
        this.waiters = this.waiters.filter((w) => w !== check)
        if (error) reject(error)
        else resolve()
      }
      const check = (): void => {
        const failure = failed()
        if (done()) finish()
        else if (failure !== undefined) finish(new Error(failure))
        else if (this.controller?.exited) finish(new TimeoutError(`gave up waiting for ${what}: the controller exited; see its log`))
        else if (this.stopping) finish(new TimeoutError(`gave up waiting for ${what}: the cluster is stopping`))
      }
      const timer = setTimeout(() => finish(new TimeoutError(`timed out after ${this.options.timeoutMs} ms waiting for ${what}${detail()}`)), this.options.timeoutMs)
      this.waiters.push(check)
      check()
    })
  }
}
