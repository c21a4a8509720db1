import { ConfigError, EngineError, HandshakeRefused, JsParallelError, ProtocolError, TaskAborted, TimeoutError, remoteErrorFromContent } from '../common/errors.js'
import type { Logger } from '../common/log.js'
import { channelUrl, type ClientConnectionInfo } from '../protocol/connection-file.js'
import type { ContentMap, MsgType } from '../protocol/catalogue.js'
import { contentIfValid, contentOf } from '../protocol/content-readers.js'
import { wireDate } from '../protocol/dates.js'
import type { Message, TaskMetadata } from '../protocol/messages.js'
import { decodeValue } from '../protocol/payload.js'
import { engineUuidOf, parentIdOf, replyDates, replyOutcome } from '../protocol/replies.js'
import { Session } from '../protocol/session.js'
import { SocketGroup } from '../transport/socket-group.js'
import { createDealer, createSubscriber, curveClient, watchHandshake, type Dealer, type Frames, type Subscriber } from '../transport/sockets.js'
import { splitCoalesced } from './coalesced.js'
import { EngineTable } from './engines.js'
import { Task, type MutableMetadata } from './task.js'

/** A pending result or request was cut short because the client closed (or the controller shut down). */
export class ClientClosedError extends JsParallelError {}

/** How many finished tasks may still wait for their last output before we stop listening for it. */
const OUTPUT_GRACE_TASKS = 10_000
/**
 * How long a reply waits for its engine's `idle` on IOPub, which says that all of the task's output has been
 * published, before the task settles anyway (an engine that publishes no status, or lost IOPub messages).
 */
const OUTPUT_WAIT_MS = 1000

interface PendingRequest {
  resolve: (msg: Message) => void
  reject: (error: Error) => void
  timer: NodeJS.Timeout
  /** For control requests: the engine addressed, so its death fails the request. */
  engineUuid: string | undefined
}

interface PendingTask {
  task: Task
  /** How a successful reply becomes the task's value; default: the value encoded in its buffers (apply_reply). */
  decode?: (msg: Message) => unknown
  /** For direct (mux) tasks: the engine addressed. */
  engineUuid: string | undefined
  /** Engines that have reported `idle` for this task on IOPub. */
  idleOn?: Set<string>
  /** Stream messages of this task received on IOPub so far, by engine (a retried task runs on several). */
  streams?: Map<string, number>
  /**
   * The reply is in; the task settles once `streams` stream messages have arrived (our engines count them in the
   * reply), or without a count once `waitingFor` reports idle, or when the wait runs out.
   */
  held?: { waitingFor: string; streams: number | undefined; settle: () => void; timer: NodeJS.Timeout }
}

type Channel = 'query' | 'mux' | 'task' | 'control' | 'broadcast'
type NotificationType = 'registration_notification' | 'unregistration_notification' | 'shutdown_notification'

/**
 * The wire side of a client: its sockets, the engine table, and every pending request and task, each matched to
 * its reply by `parent_header.msg_id`. Views and the Client facade talk to this; nothing else touches a socket.
 */
export class Connection {
  readonly engines = new EngineTable()
  /** Hands what is queued to ZeroMQ on close (a shutdown request, say), but never waits long for it. */
  private readonly sockets: SocketGroup
  private readonly dealers: Record<Channel, Dealer>
  private readonly subs: { notification: Subscriber; iopub: Subscriber }
  private readonly requests = new Map<string, PendingRequest>()
  private readonly tasks = new Map<string, PendingTask>()
  private readonly directByEngine = new Map<string, Set<string>>()
  /** Coalescing broadcasts awaiting their one combined reply: original msg_id → target uuids in order. */
  private readonly coalesced = new Map<string, string[]>()
  private readonly outputs = new Map<string, MutableMetadata>()
  private readonly finishedOutputs: string[] = []
  private connected = false
  private earlyNotifications: Message[] = []
  private closeError: Error | undefined
  /** Rejects if the controller refuses the security handshake before the first connection_reply. */
  private readonly refusal: Promise<never>
  private unwatchHandshake: () => void = () => {}
  /** Called once when the controller announces its shutdown. */
  onShutdown: () => void = () => {}

  constructor(
    private readonly info: ClientConnectionInfo,
    readonly session: Session,
    private readonly log: Logger,
  ) {
    // The session id as routing id: a controller restarted with --restore can still address this client.
    const routingId = session.session
    // With a curve_serverkey, every socket is a CurveZMQ client with one key pair made for this connection.
    const curve = curveClient(info.curve_serverkey)
    // A library's close logs no summary of dropped messages (each was logged, rate-limited, when it came).
    const sockets = (this.sockets = new SocketGroup({ log, drainMs: 1000, dropSummaryOnClose: false }))
    const dealer = (channel: Channel): Dealer => sockets.add(channel, createDealer({ routingId, curve }))
    this.dealers = { query: dealer('query'), mux: dealer('mux'), task: dealer('task'), control: dealer('control'), broadcast: dealer('broadcast') }
    const registration = channelUrl(info.interface, info.registration, info.location)
    this.refusal = new Promise<never>((_, reject) => {
      this.unwatchHandshake = watchHandshake(this.dealers.query, (reason) => reject(new HandshakeRefused(
        `the controller at ${registration} refused the ZeroMQ handshake (${reason}); ${curve
          ? 'is curve_serverkey in the connection file the controller\'s current key?'
          : 'does it run with --curve? then the connection file must carry its curve_serverkey'}`,
      )))
    })
    this.refusal.catch(() => {}) // heard only while connect() waits
    // A connection file without `broadcast` (written before ipyparallel 7) leaves broadcast views unusable, nothing else.
    const ports: Record<Channel, number | undefined> = { query: info.registration, mux: info.mux, task: info.task, control: info.control, broadcast: typeof info.broadcast === 'number' ? info.broadcast : undefined }
    for (const channel of Object.keys(ports) as Channel[]) {
      const port = ports[channel]
      if (port !== undefined) this.dealers[channel].connect(channelUrl(info.interface, port, info.location))
    }
    this.subs = { notification: sockets.add('notification', createSubscriber({ curve })), iopub: sockets.add('iopub', createSubscriber({ curve })) }
    this.subs.notification.connect(channelUrl(info.interface, info.notification, info.location))
    this.subs.iopub.connect(channelUrl(info.interface, info.iopub, info.location))
    sockets.receive(this.dealers.query, (f) => this.onReply(f))
    sockets.receive(this.dealers.control, (f) => this.onReply(f))
    sockets.receive(this.dealers.task, (f) => this.onTaskReply(f))
    sockets.receive(this.dealers.mux, (f) => this.onTaskReply(f))
    sockets.receive(this.dealers.broadcast, (f) => this.onBroadcastReply(f))
    sockets.receive(this.subs.notification, (f) => this.onNotification(f))
    sockets.receive(this.subs.iopub, (f) => this.onIopub(f))
  }

  private readonly warned = new Set<string>()

  /** Logs a warning the first time `key` is seen, so a loop of submissions does not repeat it. */
  warnOnce(key: string, message: string): void {
    if (this.warned.has(key)) return
    this.warned.add(key)
    this.log.warn(message)
  }

  /** The controller's task scheme (`task_scheme` of the connection file): `pure` limits what tasks may ask. */
  get taskScheme(): string {
    return this.info.task_scheme
  }

  /** Where the hub's registration socket is, for messages. */
  get registrationUrl(): string {
    return channelUrl(this.info.interface, this.info.registration)
  }

  get isConnected(): boolean {
    return this.connected && !this.closeError
  }

  get closedBecause(): Error | undefined {
    return this.closeError
  }

  /** connection_request → connection_reply: fills the engine table. */
  async connect(timeoutMs: number): Promise<void> {
    let reply: Message
    try {
      reply = await Promise.race([this.refusal, this.request('connection_request', {}, timeoutMs)])
    } catch (e) {
      if (e instanceof TimeoutError) {
        throw new TimeoutError(`no connection_reply from the controller at ${this.registrationUrl} within ${timeoutMs} ms; is it running?`, { cause: e })
      }
      throw e
    } finally {
      this.unwatchHandshake()
    }
    const { engines } = contentOf(reply, 'connection_reply')
    for (const [id, uuid] of Object.entries(engines)) this.engines.add(Number(id), uuid)
    this.connected = true
    const early = this.earlyNotifications
    this.earlyNotifications = []
    for (const msg of early) {
      try {
        this.applyNotification(msg)
      } catch (e) {
        this.log.warn(`notification: dropped a message: ${(e as Error).message}`)
      }
    }
  }

  /** Sends a request to the hub and resolves with its reply; error content rejects with a RemoteError. */
  request<T extends MsgType>(msgType: T, content: ContentMap[T], timeoutMs: number): Promise<Message> {
    return this.send('query', msgType, content, timeoutMs, undefined)
  }

  /** Sends a request to an engine's control channel (addressed by uuid) and resolves with its reply. */
  controlRequest<T extends MsgType>(engineUuid: string, msgType: T, content: ContentMap[T], timeoutMs: number): Promise<Message> {
    return this.send('control', msgType, content, timeoutMs, engineUuid)
  }

  private send(channel: 'query' | 'control', msgType: string, content: object, timeoutMs: number, engineUuid: string | undefined): Promise<Message> {
    if (this.closeError) return Promise.reject(this.closeError)
    const msg = this.session.msg(msgType, content)
    const msgId = msg.header.msg_id
    return new Promise<Message>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.requests.delete(msgId)
        const to = engineUuid ? `engine ${this.engines.idOf(engineUuid) ?? engineUuid}` : `the controller at ${this.registrationUrl}`
        reject(new TimeoutError(`no reply to ${msgType} from ${to} within ${timeoutMs} ms`))
      }, timeoutMs)
      this.requests.set(msgId, { resolve, reject, timer, engineUuid })
      void this.sockets.send(this.dealers[channel], this.session.serialize(msg, engineUuid ? [Buffer.from(engineUuid)] : []))
    })
  }

  /**
   * Sends an apply_request on the task channel (load-balanced) or the mux channel (to `engineUuid`) and returns
   * the Task its reply will settle.
   */
  sendApply(channel: 'task' | 'mux', metadata: TaskMetadata, buffers: Buffer[], engineUuid?: string): Task {
    if (this.closeError) throw this.closeError
    // Our engines then publish no busy/idle for it: the reply's stream count says when its output is complete.
    const msg = this.session.msg('apply_request', {}, { metadata: { ...metadata, iopub_status: false }, buffers })
    const task = new Task(msg.header.msg_id, wireDate(msg.header.date) ?? new Date())
    this.tasks.set(task.msgId, { task, engineUuid })
    this.outputs.set(task.msgId, task.metadata)
    if (engineUuid !== undefined) {
      task.metadata.engineUuid = engineUuid
      task.metadata.engineId = this.engines.idOf(engineUuid)
      let set = this.directByEngine.get(engineUuid)
      if (!set) this.directByEngine.set(engineUuid, (set = new Set()))
      set.add(task.msgId)
    }
    void this.sockets.send(this.dealers[channel], this.session.serialize(msg, engineUuid !== undefined ? [Buffer.from(engineUuid)] : []))
    return task
  }

  /**
   * Sends an execute_request (`code`, not silent) to an engine on the mux channel, or load-balanced on the task
   * channel, and returns the Task its reply will settle with `decode(reply)`.
   */
  sendExecute(channel: 'task' | 'mux', metadata: TaskMetadata, code: string, decode: (msg: Message) => unknown, engineUuid?: string): Task {
    if (this.closeError) throw this.closeError
    const msg = this.session.msg('execute_request', executeContent(code), { metadata: { ...metadata, iopub_status: false } })
    const task = new Task(msg.header.msg_id, wireDate(msg.header.date) ?? new Date())
    this.tasks.set(task.msgId, { task, engineUuid, decode })
    this.outputs.set(task.msgId, task.metadata)
    if (engineUuid !== undefined) this.trackDirect(task, engineUuid)
    void this.sockets.send(this.dealers[channel], this.session.serialize(msg, engineUuid !== undefined ? [Buffer.from(engineUuid)] : []))
    return task
  }

  /**
   * Sends one request on the broadcast channel to `targets` (`[uuid, id]`, in the order results are wanted) and
   * returns one Task per target, in that order. The controller's relay gives each engine a copy whose msg_id is
   * `<msg_id>_<engine uuid>`, which is each Task's id: replies (and, coalescing, the parts of the one combined
   * reply) and IOPub output are matched by it, and aborting by it reaches the engine's copy.
   */
  sendBroadcast(request: BroadcastRequest, targets: readonly (readonly [string, number])[], coalescing: boolean): Task[] {
    if (this.closeError) throw this.closeError
    if (typeof this.info.broadcast !== 'number') throw new ConfigError('broadcastView: the connection info has no broadcast port (the controller predates ipyparallel 7?); use a directView')
    const metadata = { targets: targets.map(([uuid, id]) => [uuid, id]), is_broadcast: true, is_coalescing: coalescing, language: 'javascript', iopub_status: false }
    const msg = request.kind === 'apply'
      ? this.session.msg('apply_request', {}, { metadata, buffers: request.buffers })
      : this.session.msg('execute_request', executeContent(request.code), { metadata })
    const original = msg.header.msg_id
    const submitted = wireDate(msg.header.date) ?? new Date()
    const tasks = targets.map(([uuid]) => {
      const task = new Task(`${original}_${uuid}`, submitted)
      this.tasks.set(task.msgId, { task, engineUuid: uuid, ...(request.decode ? { decode: request.decode } : {}) })
      this.outputs.set(task.msgId, task.metadata)
      this.trackDirect(task, uuid)
      return task
    })
    if (coalescing) this.coalesced.set(original, targets.map(([uuid]) => uuid))
    void this.sockets.send(this.dealers.broadcast, this.session.serialize(msg, []))
    return tasks
  }

  private trackDirect(task: Task, engineUuid: string): void {
    task.metadata.engineUuid = engineUuid
    task.metadata.engineId = this.engines.idOf(engineUuid)
    let set = this.directByEngine.get(engineUuid)
    if (!set) this.directByEngine.set(engineUuid, (set = new Set()))
    set.add(task.msgId)
  }

  /** Closes the sockets; every pending task, request and waiter rejects with `error`. Idempotent. */
  async close(error: Error): Promise<void> {
    if (this.closeError) return
    this.closeError = error
    for (const [msgId, pending] of this.requests) {
      clearTimeout(pending.timer)
      pending.reject(error)
      this.requests.delete(msgId)
    }
    const tasks = [...this.tasks.values()]
    for (const pending of tasks) if (pending.held) clearTimeout(pending.held.timer)
    this.tasks.clear()
    this.directByEngine.clear()
    this.coalesced.clear()
    for (const { task } of tasks) task.reject(new ClientClosedError(`${error.message} before the result of task ${task.msgId} arrived`, { cause: error }))
    this.engines.failWaiters(error)
    await this.sockets.close()
  }

  private onReply(frames: Frames): void {
    const { msg } = this.session.deserialize(frames)
    const msgId = parentIdOf(msg) ?? ''
    const pending = this.requests.get(msgId)
    if (!pending) return this.log.debug(`dropped ${msg.header.msg_type}: no pending request ${msgId}`)
    this.requests.delete(msgId)
    clearTimeout(pending.timer)
    // Only an explicit error fails a request; a reply without a status is taken as an answer.
    const outcome = msg.content.status === 'error' ? replyOutcome(msg.content) : undefined
    if (outcome?.status === 'error') pending.reject(remoteErrorFromContent(outcome.error, this.engineAt(outcome.engineUuid)))
    else pending.resolve(msg)
  }

  private onTaskReply(frames: Frames): void {
    this.taskReply(this.session.deserialize(frames).msg)
  }

  /**
   * A reply on the broadcast channel: one engine's (not coalescing), whose parent is that engine's copy; or, for a
   * coalescing broadcast, one message for all targets, cut here into one reply per engine.
   */
  private onBroadcastReply(frames: Frames): void {
    const { msg } = this.session.deserialize(frames)
    const md = msg.metadata
    if (md.is_broadcast !== true || md.is_coalescing !== true) return this.taskReply(msg)
    const original = typeof md.original_msg_id === 'string' ? md.original_msg_id : ''
    const targets = this.coalesced.get(original)
    if (!targets) return this.log.debug(`dropped a coalesced ${msg.header.msg_type}: no pending broadcast ${original}`)
    this.coalesced.delete(original)
    for (const part of splitCoalesced(msg, original, targets)) this.taskReply(part)
  }

  private taskReply(msg: Message): void {
    const msgId = parentIdOf(msg) ?? ''
    const pending = this.tasks.get(msgId)
    if (!pending || pending.held) return this.log.debug(`dropped ${msg.header.msg_type}: no pending task ${msgId}`)
    const { task } = pending
    const md = task.metadata
    const outcome = replyOutcome(msg.content)
    // A reply the controller made names no engine in its metadata; its error content may.
    const fromEngine = engineUuidOf(msg)
    const engineUuid = fromEngine ?? (outcome.status === 'error' ? outcome.engineUuid : undefined)
    md.received = new Date()
    const dates = replyDates(msg)
    md.started = dates.started
    md.completed = dates.completed
    if (engineUuid !== undefined) {
      md.engineUuid = engineUuid
      md.engineId = this.engines.idOf(engineUuid)
    }
    const where = { engineId: md.engineId, ...(md.engineUuid !== undefined ? { engineUuid: md.engineUuid } : {}) }
    const settle = (): void => {
      this.forget(msgId, pending)
      if (outcome.status === 'ok') {
        md.status = 'ok'
        try {
          task.resolve(pending.decode ? pending.decode(msg) : decodeValue(msg.buffers))
        } catch (e) {
          task.reject(new ProtocolError(`the reply to task ${msgId} could not be decoded: ${(e as Error).message}`, { cause: e }))
        }
      } else if (outcome.status === 'aborted') {
        md.status = 'aborted'
        task.reject(new TaskAborted({ ename: 'TaskAborted', evalue: `task ${msgId} was aborted`, traceback: [] }, where))
      } else {
        md.status = 'error'
        task.reject(remoteErrorFromContent(outcome.error, where))
      }
    }
    // A reply an engine made (not the scheduler) may overtake the task's last output on IOPub: hold it until that
    // output is in, as ipyparallel's AsyncResult waits for its outputs. Our engines say how many stream messages
    // there were; for others, wait for the engine's idle.
    const streams = typeof msg.metadata.streams === 'number' ? msg.metadata.streams : undefined
    const seen = engineUuid === undefined ? 0 : (pending.streams?.get(engineUuid) ?? 0)
    const complete = streams !== undefined ? seen >= streams : engineUuid !== undefined && pending.idleOn?.has(engineUuid) === true
    // A reply without `started` was made for an engine that never ran the request (the broadcast relay's
    // EngineError for an engine that is gone): no output will follow it.
    const ran = typeof msg.metadata.started === 'string'
    if (fromEngine === undefined || engineUuid === undefined || complete || !ran) {
      settle()
      return
    }
    pending.held = {
      waitingFor: engineUuid,
      streams,
      settle,
      timer: setTimeout(() => {
        pending.held = undefined
        settle()
      }, OUTPUT_WAIT_MS),
    }
  }

  private forget(msgId: string, pending: PendingTask): void {
    if (pending.held) clearTimeout(pending.held.timer)
    pending.held = undefined
    this.tasks.delete(msgId)
    if (pending.engineUuid !== undefined) this.directByEngine.get(pending.engineUuid)?.delete(msgId)
    // Output may still arrive on IOPub until the engine reports idle; remember a bounded number of such tasks.
    if (this.outputs.has(msgId)) {
      this.finishedOutputs.push(msgId)
      if (this.finishedOutputs.length > OUTPUT_GRACE_TASKS) {
        for (const old of this.finishedOutputs.splice(0, OUTPUT_GRACE_TASKS / 10)) this.outputs.delete(old)
      }
    }
  }

  private onNotification(frames: Frames): void {
    const { msg } = this.session.deserialize(frames)
    if (this.connected) this.applyNotification(msg)
    else this.earlyNotifications.push(msg)
  }

  private applyNotification(msg: Message): void {
    const type = msg.header.msg_type
    const handler = Object.hasOwn(this.notificationHandlers, type) ? this.notificationHandlers[type as NotificationType] : undefined
    if (handler) handler(msg)
    else this.log.debug(`ignored notification ${type}`)
  }

  private readonly notificationHandlers: Record<NotificationType, (msg: Message) => void> = {
    registration_notification: (msg) => {
      const { id, uuid } = contentOf(msg, 'registration_notification')
      this.engines.add(id, uuid)
    },
    unregistration_notification: (msg) => this.engineGone(contentOf(msg, 'unregistration_notification').id),
    shutdown_notification: () => this.onShutdown(),
  }

  /** An engine left: direct tasks and control requests addressed to it can no longer be answered. */
  private engineGone(id: number): void {
    const uuid = this.engines.remove(id)
    if (uuid === undefined) return
    for (const msgId of this.directByEngine.get(uuid) ?? []) {
      const pending = this.tasks.get(msgId)
      if (!pending) continue
      this.forget(msgId, pending)
      pending.task.metadata.status = 'error'
      const content = { ename: 'EngineError', evalue: `Engine ${id} died while running task '${msgId}'`, traceback: [] }
      pending.task.reject(new EngineError(content, { engineId: id, engineUuid: uuid }))
    }
    this.directByEngine.delete(uuid)
    for (const [msgId, pending] of this.requests) {
      if (pending.engineUuid !== uuid) continue
      this.requests.delete(msgId)
      clearTimeout(pending.timer)
      pending.reject(new EngineError({ ename: 'EngineError', evalue: `Engine ${id} unregistered before it replied`, traceback: [] }, { engineId: id, engineUuid: uuid }))
    }
  }

  private onIopub(frames: Frames): void {
    const { msg } = this.session.deserialize(frames)
    const msgId = parentIdOf(msg)
    const md = msgId === undefined ? undefined : this.outputs.get(msgId)
    if (!md || msgId === undefined) return
    // IOPub is only watched: a message that cannot be read is ignored, as one of another type is.
    const stream = msg.header.msg_type === 'stream' ? contentIfValid(msg, 'stream') : undefined
    const state = msg.header.msg_type === 'status' ? contentIfValid(msg, 'status')?.execution_state : undefined
    if (stream) {
      md[stream.name] += stream.text
      const pending = this.tasks.get(msgId)
      if (pending) {
        const engine = iopubEngine(msg)
        const seen = (pending.streams?.get(engine) ?? 0) + 1
        ;(pending.streams ??= new Map()).set(engine, seen)
        const held = pending.held
        if (held?.waitingFor === engine && held.streams !== undefined && seen >= held.streams) held.settle()
      }
    } else if (state === 'idle') {
      // IOPub is ordered per engine: after idle, no more output of this run of the task will come.
      const engine = iopubEngine(msg)
      const pending = this.tasks.get(msgId)
      if (pending?.held?.waitingFor === engine && pending.held.streams === undefined) {
        pending.held.settle()
      } else if (pending) {
        ;(pending.idleOn ??= new Set()).add(engine)
      } else {
        this.outputs.delete(msgId)
      }
    }
  }

  private engineAt(uuid: string | undefined): { engineId: number | undefined; engineUuid?: string } {
    return uuid === undefined ? { engineId: undefined } : { engineId: this.engines.idOf(uuid), engineUuid: uuid }
  }
}

/** What a broadcast sends: an apply_request's buffers, or an execute_request's code (and how its reply is read). */
export type BroadcastRequest =
  | { kind: 'apply'; buffers: Buffer[]; decode?: undefined }
  | { kind: 'execute'; code: string; decode: (msg: Message) => unknown }

function executeContent(code: string) {
  return { code, silent: false, store_history: true, user_expressions: {}, allow_stdin: false, stop_on_error: true }
}

/** The engine an IOPub message comes from: our engines name it in the metadata; ipengine's session is its uuid. */
function iopubEngine(msg: Message): string {
  return engineUuidOf(msg) ?? msg.header.session
}
