/**
 * A scripted stand-in for a controller with one in-process "engine", for the client's tests: it binds the client's
 * channels on loopback, answers hub requests, runs apply_requests itself (source descriptors, by indirect eval)
 * and lets a test publish notifications. Functions named `hold` are never answered, so a test can strand them.
 */
import type { ClientConnectionInfo } from '../../src/protocol/connection-file.js'
import { isoNow } from '../../src/protocol/dates.js'
import type { Message } from '../../src/protocol/messages.js'
import { decodeApply, encodeValue } from '../../src/protocol/payload.js'
import { Session } from '../../src/protocol/session.js'
import { bindPort, closeAll, createPublisher, createRouter, Outbox, receiveLoop, type Frames, type Publisher, type Router } from '../../src/transport/sockets.js'

const KEY = 'client-test-key'
const globalEval = eval

export interface Received {
  channel: 'task' | 'mux' | 'control' | 'query'
  msg: Message
  /** For mux/control: the engine uuid the client addressed. */
  target: string | undefined
}

export class FakeController {
  readonly session = new Session({ key: KEY })
  readonly received: Received[] = []
  /** Engines the hub reports: id → uuid. */
  readonly engines = new Map<number, string>()
  /** Whether to answer connection_request at all. */
  answerConnect = true
  /** Reply contents to send instead of the usual ones, by request type (for malformed replies). */
  readonly cannedReplies = new Map<string, object>()
  private routers: Record<'query' | 'task' | 'mux' | 'control', Router> | undefined
  private outboxes = new Map<string, Outbox>()
  private notification: Publisher | undefined
  private iopub: Publisher | undefined
  private info: ClientConnectionInfo | undefined

  static async start(engines: number[] = [0]): Promise<FakeController> {
    const hub = new FakeController()
    for (const id of engines) hub.engines.set(id, `engine-uuid-${id}`)
    await hub.bind()
    return hub
  }

  get connectionInfo(): ClientConnectionInfo {
    if (!this.info) throw new Error('not bound')
    return this.info
  }

  private async bind(): Promise<void> {
    const routers = { query: createRouter(), task: createRouter(), mux: createRouter(), control: createRouter() }
    this.routers = routers
    this.notification = createPublisher()
    this.iopub = createPublisher()
    const iface = 'tcp://127.0.0.1'
    const port = async (s: Router | Publisher) => bindPort(s, iface)
    const [registration, task, mux, control, notification, iopub] = await Promise.all([
      port(routers.query), port(routers.task), port(routers.mux), port(routers.control), port(this.notification), port(this.iopub),
    ])
    this.info = {
      ssh: '', interface: iface, registration, control, mux, task, iopub, notification, broadcast: 0, key: KEY, curve_serverkey: null,
      location: '127.0.0.1', pack: 'json', unpack: 'json', signature_scheme: 'hmac-sha256', task_scheme: 'leastload',
    }
    for (const channel of ['query', 'task', 'mux', 'control'] as const) {
      this.outboxes.set(channel, new Outbox(routers[channel], () => {}))
      void receiveLoop(routers[channel], (frames) => this.onMessage(channel, frames), () => {}).catch(() => {})
    }
    this.outboxes.set('notification', new Outbox(this.notification, () => {}))
    this.outboxes.set('iopub', new Outbox(this.iopub, () => {}))
  }

  /** Publishes a registration or unregistration notification (and updates the table). */
  notify(type: 'registration_notification' | 'unregistration_notification' | 'shutdown_notification', id?: number): void {
    let content: object = { status: 'ok' }
    if (id !== undefined) {
      const uuid = this.engines.get(id) ?? `engine-uuid-${id}`
      content = { id, uuid }
      if (type === 'registration_notification') this.engines.set(id, uuid)
      else this.engines.delete(id)
    }
    this.outboxes.get('notification')?.send(this.session.serialize(this.session.msg(type, content)))
  }

  /** Publishes `frames` as they are on the notification channel: a test can send what no controller would. */
  publishNotification(frames: Frames): void {
    this.outboxes.get('notification')?.send(frames)
  }

  close(): void {
    closeAll([...Object.values(this.routers ?? {}), ...(this.notification ? [this.notification] : []), ...(this.iopub ? [this.iopub] : [])])
  }

  /** Task messages received, of one channel. */
  applies(channel: 'task' | 'mux'): Received[] {
    return this.received.filter((r) => r.channel === channel)
  }

  private onMessage(channel: Received['channel'], frames: Frames): void {
    const { idents, msg } = this.session.deserialize(frames)
    const [client, target] = idents as [Buffer, Buffer | undefined]
    this.received.push({ channel, msg, target: target?.toString() })
    // What the relays deliver: hub replies carry no engine frame; engine replies come as [engine uuid, <IDS|MSG>, …].
    const engineUuid = channel === 'task' ? (this.engines.values().next().value ?? 'engine-uuid-0') : (target?.toString() ?? '')
    const prefix = channel === 'query' ? [client] : [client, Buffer.from(engineUuid)]
    const reply = (type: string, content: object, options: { metadata?: object; buffers?: Buffer[] } = {}) =>
      this.outboxes.get(channel)?.send(this.session.serialize(this.session.msg(type, content, { parent: msg.header, ...options }), prefix))
    if (channel === 'query') return this.onQuery(msg, reply)
    if (channel === 'control') return reply(msg.header.msg_type.replace('_request', '_reply'), { status: 'ok' })
    void this.run(engineUuid, msg, reply)
  }

  private onQuery(msg: Message, reply: (type: string, content: object) => void): void {
    const canned = this.cannedReplies.get(msg.header.msg_type)
    if (canned) return reply(msg.header.msg_type.replace('_request', '_reply'), canned)
    switch (msg.header.msg_type) {
      case 'connection_request':
        if (this.answerConnect) reply('connection_reply', { status: 'ok', engines: Object.fromEntries([...this.engines].map(([id, uuid]) => [String(id), uuid])) })
        return
      case 'queue_request':
        reply('queue_reply', { status: 'ok', unassigned: 2, ...Object.fromEntries([...this.engines.keys()].map((id) => [String(id), { queue: 0, completed: id, tasks: 1 }])) })
        return
      case 'shutdown_request':
        reply('shutdown_reply', { status: 'ok' })
        this.notify('shutdown_notification')
        return
      default:
        reply('hub_error', { status: 'error', ename: 'KeyError', evalue: `Bad Message Type: '${msg.header.msg_type}'`, traceback: [], engine_info: {} })
    }
  }

  /** Runs a task the way an engine would, replying as engine `uuid`. */
  private async run(uuid: string, msg: Message, reply: (type: string, content: object, options?: { metadata?: object; buffers?: Buffer[] }) => void): Promise<void> {
    const { fn, args } = decodeApply(msg.buffers)
    if (fn.kind === 'source' && fn.name === 'hold') return
    const engineId = [...this.engines].find(([, u]) => u === uuid)?.[0] ?? 0
    const metadata = { started: isoNow(), dependencies_met: true, engine: uuid, is_broadcast: false, is_coalescing: false, original_msg_id: '' }
    const parent = msg.header
    const publish = (type: string, content: object) =>
      this.outboxes.get('iopub')?.send(this.session.serialize(this.session.msg(type, content, { parent }), [Buffer.from(`engine.${engineId}.${type}`)]))
    publish('stream', { name: 'stdout', text: `running ${fn.kind === 'source' ? fn.name : fn.kind}\n` })
    try {
      if (fn.kind !== 'source') throw new Error('the fake engine runs only source descriptors')
      const f = globalEval(`(${fn.source})`) as (...a: unknown[]) => unknown
      const value = await f(...args)
      if (value === 'abort me') return reply('apply_reply', { status: 'aborted' }, { metadata: { ...metadata, status: 'aborted' } })
      reply('apply_reply', { status: 'ok' }, { metadata: { ...metadata, status: 'ok' }, buffers: encodeValue(value) })
    } catch (e) {
      const error = e as Error
      const engine_info = { engine_uuid: uuid, engine_id: engineId, method: 'apply' }
      reply('apply_reply', { status: 'error', ename: error.name, evalue: error.message, traceback: (error.stack ?? '').split('\n'), engine_info }, { metadata: { ...metadata, status: 'error', engine_info } })
    }
    publish('status', { execution_state: 'idle' })
  }
}
