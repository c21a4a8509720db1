import { realClock, type Clock } from '../common/clock.js'
import { ConfigError, HandshakeRefused, errorContent } from '../common/errors.js'
import { newSessionId } from '../common/ids.js'
import { createLogger, type Logger } from '../common/log.js'
import { channelUrl, checkConnectionInfo, ENGINE_KEYS, type EngineConnectionInfo } from '../protocol/connection-file.js'
import type { ContentMap, ExecuteInputContent, MimeBundleContent, MsgType, ShutdownReplyContent } from '../protocol/catalogue.js'
import { contentOf } from '../protocol/content-readers.js'
import { TASK_INVENTORY, TASK_ROUTER, replyTypeOf, type Header, type Message } from '../protocol/messages.js'
import { Session } from '../protocol/session.js'
import { SocketGroup, type Sending } from '../transport/socket-group.js'
import {
  createDealer, createPublisher, createRouter, createSubscriber, curveClient, watchHandshake, type Curve, type Dealer, type Frames, type Publisher, type Router,
} from '../transport/sockets.js'
import { Executor, type TaskRunner } from './executor.js'
import { HeartbeatWatchdog } from './heartbeat.js'
import { RecentReplies } from './recent-replies.js'
import { OutputBuffer } from './output.js'
import { register, type Registration } from './registration.js'
import type { EngineIdentity } from './replies.js'
import { TaskQueue, type ShellRequest } from './task-queue.js'
import type { OutputStream } from './worker-protocol.js'

export interface EngineOptions {
  /** The engine connection file's content (`ipcontroller-engine.json`). */
  connection: EngineConnectionInfo
  log?: Logger
  /** An engine id to ask the hub for; it may give another. Default: the hub chooses. */
  id?: number
  /** This engine's uuid (session id and ZeroMQ routing id). Default: a fresh one. */
  uuid?: string
  /** How long to wait for the registration reply, in ms. Default 5000 (ipengine's `timeout`). */
  registrationTimeoutMs?: number
  /** Heartbeat checks (each hb_period + 500 ms) without a ping before the engine stops; 0 = never. Default 50. */
  maxHeartbeatMisses?: number
  /** Time and timers for the heartbeat watchdog, output batching and the registration timeout; tests pass a fake. */
  clock?: Clock
  /** The executor of tasks; default a worker_threads Executor. Tests pass fakes. */
  createRunner?: (onStrayOutput: (name: OutputStream, text: string) => void, log: Logger) => TaskRunner
}

/** Why an engine stopped: shut down by a client, stopped by its owner (signal), or lost the controller. */
export type StopReason = 'shutdown' | 'stop' | 'heartbeat'

type Filled = Required<Omit<EngineOptions, 'id'>> & { id: number | undefined }

function fill(options: EngineOptions): Filled {
  const connection = checkConnectionInfo<EngineConnectionInfo>(options.connection, ENGINE_KEYS, 'the engine connection info')
  const { id, registrationTimeoutMs = 5000, maxHeartbeatMisses = 50 } = options
  if (id !== undefined && (!Number.isInteger(id) || id < 0)) throw new ConfigError(`id must be a whole number >= 0, got ${id}`)
  if (!(registrationTimeoutMs > 0)) throw new ConfigError(`registrationTimeoutMs must be a positive number of milliseconds, got ${registrationTimeoutMs}`)
  if (!Number.isInteger(maxHeartbeatMisses) || maxHeartbeatMisses < 0) throw new ConfigError(`maxHeartbeatMisses must be a whole number >= 0, got ${maxHeartbeatMisses}`)
  return {
    connection, id, registrationTimeoutMs, maxHeartbeatMisses,
    log: options.log ?? createLogger('engine'),
    uuid: options.uuid ?? newSessionId(),
    clock: options.clock ?? realClock,
    createRunner: options.createRunner ?? ((onStrayOutput, log) => new Executor({ log, onStrayOutput })),
  }
}

type ShellType = 'apply_request' | 'execute_request'
type ControlType = 'abort_request' | 'clear_request' | 'shutdown_request' | 'signal_request'
type Handler = (request: ShellRequest) => void

/**
 * A JavaScript engine: registers with a controller, answers its heartbeat, runs apply_requests and
 * execute_requests (JavaScript source) from the mux, task and broadcast channels in a worker thread, whose global
 * scope is the engine's namespace (kept between tasks; a clear or an interrupt resets it), publishes status and
 * output on IOPub, and obeys control (abort, clear, shutdown, signal). Every message it sends carries `metadata.engine` = its uuid.
 */
export class Engine {
  readonly uuid: string
  readonly id: number
  /** Resolves once the engine has stopped and closed its sockets, whatever the reason. */
  readonly closed: Promise<void>
  stopReason: StopReason | undefined
  private markClosed!: () => void
  private stopping: Promise<void> | undefined
  private lastParent: Header | undefined
  private readonly log: Logger
  private readonly identity: EngineIdentity
  private readonly shell: Router
  private readonly control: Router
  private readonly iopub: Publisher
  private readonly watchdog: HeartbeatWatchdog
  private readonly output: OutputBuffer
  private readonly tasks: TaskQueue
  private readonly recentReplies = new RecentReplies()

  private readonly shellHandlers: Record<ShellType, Handler> = {
    apply_request: (request) => this.tasks.submit(request),
    // JavaScript source, run in the executor's global scope; Python code fails there as a SyntaxError that says so.
    execute_request: (request) => this.tasks.submit(request),
  }

  private readonly controlHandlers: Record<ControlType, Handler> = {
    abort_request: (request) => {
      this.tasks.abort(contentOf(request.msg, 'abort_request').msg_ids)
      this.replyControl(request, { status: 'ok' })
    },
    clear_request: (request) => {
      this.tasks.reset().then(
        () => this.replyControl(request, { status: 'ok' }),
        (e: unknown) => this.replyControl(request, errorContent('EngineError', `could not reset the executor: ${String(e)}`)),
      )
    },
    shutdown_request: (request) => {
      const content: ShutdownReplyContent = { status: 'ok', restart: false }
      this.replyControl(request, content)
      // The hub unregisters an engine when it sees its shutdown_reply on IOPub.
      this.publish('shutdown', 'shutdown_reply', content, request.msg.header)
      void this.stopWith('shutdown')
    },
    signal_request: (request) => {
      // ipengine's nanny delivers the signal to the engine process; here SIGINT interrupts the running task
      // (which answers KeyboardInterrupt) and the terminating signals stop the engine cleanly.
      const { sig } = contentOf(request.msg, 'signal_request')
      const name = sig === 2 ? 'SIGINT' : sig === 15 ? 'SIGTERM' : sig === 9 ? 'SIGKILL' : sig === 1 ? 'SIGHUP' : String(sig)
      if (name === 'SIGINT') {
        this.tasks.interrupt()
        this.replyControl(request, { status: 'ok' })
      } else if (['SIGTERM', 'SIGKILL', 'SIGHUP', 'SIGQUIT'].includes(name)) {
        this.replyControl(request, { status: 'ok' })
        void this.stopWith('stop')
      } else {
        this.replyControl(request, errorContent('ValueError', `this engine does not handle signal ${name}; use SIGINT (interrupt the task) or SIGTERM (stop)`))
      }
    },
  }

  private constructor(
    private readonly options: Filled,
    private readonly session: Session,
    registration: Registration,
    /** Every socket of the engine, the registration DEALER first. */
    private readonly sockets: SocketGroup,
    private readonly registrar: Dealer,
    /** CurveZMQ for every socket, with one key pair, when the connection file names the controller's key. */
    private readonly curve: Curve | undefined,
  ) {
    this.uuid = options.uuid
    this.id = registration.id
    this.log = options.log
    this.identity = { uuid: this.uuid, id: this.id }
    this.closed = new Promise((resolve) => (this.markClosed = resolve))
    this.shell = sockets.add('shell', createRouter({ routingId: this.uuid, curve }))
    this.control = sockets.add('control', createRouter({ routingId: this.uuid, curve }))
    this.iopub = sockets.add('iopub', createPublisher({ curve }))
    this.output = new OutputBuffer((parent, name, text) => this.publish('stream', 'stream', { name, text }, parent), 50, 64 * 1024, options.clock)
    const runner = options.createRunner((name, text) => this.strayOutput(name, text), this.log)
    this.tasks = new TaskQueue({
      reply: (request, content, metadata, buffers) => {
        const type = replyTypeOf(request.msg.header.msg_type)
        const msg = this.session.msg(type, content, { parent: request.msg.header, metadata, buffers })
        this.send(this.shell, this.session.serialize(msg, request.idents))
        if (request.idents[0]?.toString() === TASK_ROUTER) {
          this.recentReplies.remember({ idents: request.idents, type, content, parent: request.msg.header, metadata: metadata, buffers: buffers ?? [] })
        }
      },
      status: (parent, state) => this.publish('status', 'status', { execution_state: state }, parent),
      publishError: (parent, content) => this.publish('error', 'error', content, parent),
      output: (parent, name, text) => this.output.write(parent, name, text),
      publishExecute: (parent: Header, type: 'execute_input' | 'execute_result', content: ExecuteInputContent | MimeBundleContent) => {
        this.publish(type, type, content, parent)
      },
      trackOutput: (parent) => {
        this.lastParent = parent
        this.output.track(parent)
      },
      finishOutput: (parent) => this.output.finish(parent),
    }, runner, { engine: this.identity, log: this.log })
    this.watchdog = new HeartbeatWatchdog({
      checkPeriodMs: registration.hbPeriodMs + 500,
      maxMisses: options.maxHeartbeatMisses,
      onFlatline: () => void this.stopWith('heartbeat'),
      log: this.log,
      clock: options.clock,
    })
  }

  /** Registers with the controller and connects every channel; rejects if the controller refuses or is silent. */
  static async start(userOptions: EngineOptions): Promise<Engine> {
    const options = fill(userOptions)
    const { connection: info, log } = options
    const session = new Session({ key: info.key, session: options.uuid, signatureScheme: info.signature_scheme })
    const curve = curveClient(info.curve_serverkey)
    // Replies handed to ZeroMQ may still sit in its queues when the engine stops; a short linger lets them leave.
    // One rate limit for the warnings of all its sockets keeps the log of a flooded engine short.
    const sockets = new SocketGroup({ log, drainMs: 1000, lingerOnCloseMs: 500, dropWarnings: 'shared', clock: options.clock })
    const registrar = sockets.add('registration', createDealer({ routingId: options.uuid, curve }))
    const outbox = { send: (frames: Frames) => void sockets.send(registrar, frames), drained: () => sockets.drained() }
    let registration: Registration
    let unwatch = (): void => {}
    try {
      const url = channelUrl(info.interface, info.registration, info.location)
      log.info(`registering with the controller at ${url} as ${options.uuid}${curve ? ' (CurveZMQ)' : ''}`)
      // A refused handshake would otherwise look like a silent controller until the registration timeout.
      const refused = new Promise<never>((_, reject) => {
        unwatch = watchHandshake(registrar, (reason) => reject(new HandshakeRefused(
          `the controller at ${url} refused the ZeroMQ handshake (${reason}); ${curve ? 'is curve_serverkey in the connection file the controller\'s current key?' : 'does it run with --curve? then the connection file must carry its curve_serverkey'}`,
        )))
      })
      registrar.connect(url)
      const registering = register({
        session, socket: registrar, outbox, requestedId: options.id, timeoutMs: options.registrationTimeoutMs, log, clock: options.clock,
      })
      registering.catch(() => {}) // when the refusal wins the race, this one fails later, unheard
      registration = await Promise.race([refused, registering])
    } catch (e) {
      await sockets.close({ drainMs: 0, lingerOnCloseMs: 0 })
      throw e
    } finally {
      unwatch()
    }
    const engine = new Engine(options, session, registration, sockets, registrar, curve)
    try {
      engine.connect(registration)
    } catch (e) {
      await engine.stop()
      throw e
    }
    log.info(`registered as engine ${engine.id} (heartbeat every ${registration.hbPeriodMs} ms)`)
    return engine
  }

  /** Messages dropped because they failed verification or could not be parsed. */
  get droppedMessages(): number {
    return this.sockets.droppedMessages
  }

  /** Stops: queued and running tasks answer `aborted`, the hub is told, sockets close. */
  stop(): Promise<void> {
    return this.stopWith('stop')
  }

  /** ipengine's `_complete_registration`: shell, control and IOPub first, the heart last. */
  private connect(registration: Registration): void {
    const info = this.options.connection
    const url = (port: number): string => channelUrl(info.interface, port, info.location)
    this.shell.connect(url(info.mux))
    this.shell.connect(url(info.task))
    const broadcast = Array.isArray(info.broadcast) ? info.broadcast : []
    const leaf = broadcast[registration.id % Math.max(broadcast.length, 1)]
    if (leaf !== undefined) this.shell.connect(url(leaf))
    this.control.connect(url(info.control))
    this.iopub.connect(url(info.iopub))
    this.sockets.receive(this.shell, (frames) => this.dispatch(frames, this.shellHandlers, 'shell'))
    this.sockets.receive(this.control, (frames) => this.dispatch(frames, this.controlHandlers, 'control'))

    // The heart: every ping is echoed unchanged from the main thread, which user code never occupies.
    const ping = this.sockets.add('heartbeat', createSubscriber({ curve: this.curve }))
    const pong = this.sockets.add('heartbeat (echo)', createDealer({ routingId: this.uuid, curve: this.curve }))
    ping.connect(url(info.hb_ping))
    pong.connect(url(info.hb_pong))
    this.sockets.receive(ping, (frames) => {
      this.send(pong, frames)
      this.watchdog.ping()
      const again = this.recentReplies.beat(frames[0])
      if (again === undefined) return
      this.log.warn(`the controller restarted: sending the last ${again.length} task replies again, in case one was lost with it`)
      for (const r of again) {
        const msg = this.session.msg(r.type, r.content, { parent: r.parent, metadata: { ...r.metadata, resent: true }, buffers: r.buffers })
        this.send(this.shell, this.session.serialize(msg, r.idents))
      }
      // Then what it holds: a restored controller learns which of the tasks it thinks are here never arrived.
      this.send(this.shell, this.session.serialize(this.session.msg(TASK_INVENTORY, { msg_ids: this.tasks.held }), [Buffer.from(TASK_ROUTER)]))
    })
    this.watchdog.start()
  }

  /**
   * Verifies a message and hands it to its handler. One that does not verify is never answered: the error goes to
   * the receive loop, which counts the message as dropped.
   */
  private dispatch(frames: Frames, handlers: Record<string, Handler>, channel: 'shell' | 'control'): void {
    const { idents, msg } = this.session.deserialize(frames)
    const request: ShellRequest = { idents, msg }
    const type = request.msg.header.msg_type
    this.log.debug(`${channel}: ${type} ${request.msg.header.msg_id}`)
    const handler = Object.hasOwn(handlers, type) ? handlers[type] : undefined
    try {
      if (handler) handler(request)
      else this.refuseUnknown(request, channel)
    } catch (e) {
      // A verified request always gets an answer, even when handling it went wrong.
      this.log.error(`${channel}: handling ${type} failed: ${(e as Error).stack ?? String(e)}`)
      const error = { ename: 'EngineError', evalue: `the engine failed to handle ${type}: ${(e as Error).message}`, traceback: [] }
      if (channel === 'shell') this.tasks.refuse(request, error)
      else this.replyControl(request, errorContent(error.ename, error.evalue))
    }
  }

  private refuseUnknown(request: ShellRequest, channel: 'shell' | 'control'): void {
    const type = request.msg.header.msg_type
    const evalue = `this JavaScript engine does not handle '${type}' on the ${channel} channel`
    if (channel === 'shell') this.tasks.refuse(request, { ename: 'NotImplementedError', evalue, traceback: [] })
    else this.replyControl(request, errorContent('NotImplementedError', evalue))
  }

  private replyControl(request: ShellRequest, content: object): void {
    const msg = this.session.msg(replyTypeOf(request.msg.header.msg_type), content, { parent: request.msg.header, metadata: { engine: this.uuid } })
    this.send(this.control, this.session.serialize(msg, request.idents))
  }

  /** An IOPub message with topic `engine.<id>.<topic>`. */
  private publish<T extends MsgType>(topic: string, msgType: T, content: ContentMap[T], parent: Header): void {
    const msg: Message<object> = this.session.msg<object>(msgType, content, { parent, metadata: { engine: this.uuid } })
    this.send(this.iopub, this.session.serialize(msg, [Buffer.from(`engine.${this.id}.${topic}`)]))
  }

  /** Output after its task ended goes to the last task, as ipengine's streams do. */
  private strayOutput(name: OutputStream, text: string): void {
    if (this.lastParent) this.output.write(this.lastParent, name, text)
    else this.log.info(`${name} output outside any task: ${text.trimEnd()}`)
  }

  private send(socket: Sending, frames: Frames): void {
    void this.sockets.send(socket, frames)
  }

  private stopWith(reason: StopReason): Promise<void> {
    this.stopping ??= (async () => {
      this.stopReason = reason
      this.log.info(`stopping (${reason})`)
      this.watchdog.stop()
      await this.tasks.close()
      this.output.flush()
      this.send(this.registrar, this.session.serialize(this.session.msg('unregistration_request', { id: this.id }, { metadata: { engine: this.uuid } })))
      await this.sockets.close()
      this.markClosed()
    })()
    return this.stopping
  }
}
