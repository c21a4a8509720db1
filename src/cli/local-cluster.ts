import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, openSync, closeSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { newSessionId } from '../common/ids.js'
import type { Logger } from '../common/log.js'
import { TimeoutError } from '../common/errors.js'
import { waitForFiles } from '../common/wait-for-files.js'
import { channelUrl, connectionFilePath, readConnectionFile, CLIENT_KEYS, type ClientConnectionInfo } from '../protocol/connection-file.js'
import { contentOf } from '../protocol/content-readers.js'
import { Session } from '../protocol/session.js'
import { SocketGroup } from '../transport/socket-group.js'
import { createDealer, createSubscriber, curveClient, type Dealer } from '../transport/sockets.js'

const binDir = fileURLToPath(new URL('../../../bin/', import.meta.url))

export interface LocalClusterOptions {
  /** Number of engines. */
  n: number
  profileDir: string
  clusterId: string
  /** Extra arguments for the controller (`--scheme=lru`, `--ping=250`, ...). */
  controllerArgs: string[]
  engineArgs: string[]
  /** How long to wait for the controller's files and for the engines to register. */
  timeoutMs: number
  log: Logger
}

interface EngineProcess {
  child: ChildProcess
  uuid: string
  id: number | undefined
}

/**
 * A controller and N engines as child processes of this one. It watches them like ipyparallel's nanny:
 * an engine that exits is unregistered at once, so its tasks fail over without waiting for the heartbeat.
 */
export class LocalCluster {
  controller: ChildProcess | undefined
  readonly engines: EngineProcess[] = []
  private session: Session | undefined
  /** Closed once the children have stopped: nothing queued then is still worth waiting for. */
  private readonly sockets: SocketGroup
  private query: Dealer | undefined
  private stopping = false
  private readonly registered = new Map<string, number>()
  private registrationWaiters: (() => void)[] = []

  constructor(readonly options: LocalClusterOptions) {
    this.sockets = new SocketGroup({ log: options.log, drainMs: 0 })
  }

  get clientFile(): string {
    return connectionFilePath(this.options.profileDir, 'client', this.options.clusterId)
  }

  async start(): Promise<void> {
    const { profileDir, clusterId, log } = this.options
    mkdirSync(join(profileDir, 'log'), { recursive: true })
    this.controller = this.spawnChild('controller', ['--profile-dir', profileDir, '--cluster-id', clusterId, ...this.options.controllerArgs], 'controller')
    this.controller.on('exit', (code, signal) => {
      if (!this.stopping) log.error(`controller exited unexpectedly (${signal ?? `code ${code}`})`)
    })
    const files = [this.clientFile, connectionFilePath(profileDir, 'engine', clusterId)]
    const controllerExited = (): boolean => this.controller !== undefined && hasExited(this.controller)
    if (!(await waitForFiles(files, { timeoutMs: this.options.timeoutMs, pollMs: 50, giveUp: controllerExited }))) {
      const why = controllerExited() ? ' (the controller exited; see its log)' : ''
      throw new TimeoutError(`timed out after ${this.options.timeoutMs} ms waiting for the controller to write its connection files${why}`)
    }
    await this.watchRegistrations()
    for (let i = 0; i < this.options.n; i++) this.startEngine()
    await this.waitFor(() => this.registered.size >= this.options.n, `${this.options.n} engines to register`)
  }

  /** Starts one more engine, watched like the others. */
  startEngine(): EngineProcess {
    const uuid = newSessionId()
    const args = ['--profile-dir', this.options.profileDir, '--cluster-id', this.options.clusterId, '--uuid', uuid, ...this.options.engineArgs]
    const child = this.spawnChild('engine', args, `engine-${this.engines.length}`)
    const engine: EngineProcess = { child, uuid, id: undefined }
    this.engines.push(engine)
    child.on('exit', (code, signal) => {
      if (this.stopping) return
      this.options.log.warn(`engine ${engine.id ?? '?'} (pid ${child.pid}) exited (${signal ?? `code ${code}`}); unregistering it`)
      this.unregister(engine)
    })
    return engine
  }

  /** Stops engines, then the controller; kills what has not exited after `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    this.stopping = true
    const children = [...this.engines.map((e) => e.child), ...(this.controller ? [this.controller] : [])]
    await Promise.all(this.engines.map((e) => stopChild(e.child, graceMs)))
    if (this.controller) await stopChild(this.controller, graceMs)
    await this.sockets.close()
    for (const c of children) if (!hasExited(c)) c.kill('SIGKILL')
  }

  private spawnChild(bin: string, args: string[], logName: string): ChildProcess {
    const logFile = join(this.options.profileDir, 'log', `${logName}${this.options.clusterId ? `-${this.options.clusterId}` : ''}.log`)
    const fd = openSync(logFile, 'a')
    const child = spawn(process.execPath, [join(binDir, `${bin}.js`), ...args], { stdio: ['ignore', fd, fd] })
    closeSync(fd)
    this.options.log.info(`${logName} started, pid ${child.pid}, log ${logFile}`)
    return child
  }

  /** Follows registration notifications so that an engine's id is known when its process exits. */
  private async watchRegistrations(): Promise<void> {
    const info = readConnectionFile<ClientConnectionInfo>(this.clientFile, CLIENT_KEYS)
    this.session = new Session({ key: info.key })
    const curve = curveClient(info.curve_serverkey)
    const notifications = this.sockets.add('notification', createSubscriber({ curve }))
    const query = (this.query = this.sockets.add('registration', createDealer({ curve }), (e) => this.options.log.warn(`could not reach the controller: ${(e as Error).message}`)))
    notifications.connect(channelUrl(info.interface, info.notification, info.location))
    query.connect(channelUrl(info.interface, info.registration, info.location))
    const session = this.session
    this.sockets.receive(notifications, (frames) => {
      const { msg } = session.deserialize(frames)
      if (msg.header.msg_type !== 'registration_notification') return
      const { id, uuid } = contentOf(msg, 'registration_notification')
      const engine = this.engines.find((e) => e.uuid === uuid)
      if (!engine) return
      engine.id = id
      this.registered.set(uuid, id)
      this.options.log.info(`engine ${id} registered (pid ${engine.child.pid})`)
      for (const w of this.registrationWaiters) w()
    })
  }

  private unregister(engine: EngineProcess): void {
    if (engine.id === undefined || !this.session || !this.query) return
    void this.sockets.send(this.query, this.session.serialize(this.session.msg('unregistration_request', { id: engine.id })))
  }

  private waitFor(done: () => boolean, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const deadline = Date.now() + this.options.timeoutMs
      const check = (): void => {
        if (done()) {
          clearInterval(poll)
          resolve()
        } else if (Date.now() > deadline || (this.controller !== undefined && hasExited(this.controller))) {
          clearInterval(poll)
          const why = this.controller !== undefined && hasExited(this.controller) ? ' (the controller exited; see its log)' : ''
          reject(new TimeoutError(`timed out after ${this.options.timeoutMs} ms waiting for ${what}${why}`))
        }
      }
      // Each registration calls check at once; the poll notices the deadline and the controller's exit.
      const poll = setInterval(check, 50)
      this.registrationWaiters.push(check)
    })
  }
}

/** A child killed by a signal keeps `exitCode` null: only `signalCode` says it has gone. */
function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null
}

function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (hasExited(child)) return Promise.resolve()
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
    child.once('exit', () => {
      clearTimeout(timer)
      resolve()
    })
    child.kill('SIGTERM')
  })
}
