import { writeFileAtomicSync } from '../common/atomic-file.js'
import type { Clock, TimerHandle } from '../common/clock.js'
import { errorContent, ProtocolError, type ErrorContent } from '../common/errors.js'
import type { Logger } from '../common/log.js'
import type { EngineConnectionInfo } from '../protocol/connection-file.js'
import type { ContentMap, EngineQueueStatus, MsgType, QueueReplyContent, RegistrationRequestContent } from '../protocol/catalogue.js'
import { contentOf } from '../protocol/content-readers.js'
import type { Header, Message } from '../protocol/messages.js'
import type { RecordQueries } from './record-queries.js'
import type { TaskLedger } from './task-ledger.js'

/** An engine whose registration has completed (its heart was seen). */
export interface EngineRecord {
  id: number
  uuid: string
  language: string
}

interface PendingRegistration extends EngineRecord {
  timer: TimerHandle
}

/** What the hub needs from the controller around it. */
export interface HubHooks {
  /** Answers on the query channel: `type`'s content, or error content (any reply may carry one). */
  reply<T extends MsgType>(idents: Buffer[], type: T, content: ContentMap[T] | ErrorContent, parent: Header | undefined, buffers?: Buffer[]): void
  notify<T extends MsgType>(type: T, content: ContentMap[T], parent?: Header): void
  engineJoined(engine: EngineRecord): void
  /** An engine left; `directPending` are the direct (mux) requests it had not answered. */
  engineLeft(engine: EngineRecord, directPending: string[]): void
  /** A client asked the controller to shut down; the reply has been sent. */
  shutdownRequested(): void
  /** Timers for registration timeouts and the engine state file's writes. */
  clock: Clock
  log: Logger
}

export interface HubOptions {
  heartbeatPeriodMs: number
  registrationTimeoutMs: number
  /** The engine connection file's channels, sent back in registration_reply. */
  engineChannels: Omit<EngineConnectionInfo, 'key' | 'curve_serverkey' | 'location' | 'pack' | 'unpack' | 'signature_scheme' | 'ssh'>
  /** Where to keep `{engines, next_id}` for --restore; undefined = nowhere. */
  enginesFile: string | undefined
  /**
   * The client connection file without its key, sent in connection_reply as `connection_info` (ours: ipyparallel's
   * hub sends only `engines`), so a client that knows only the registration URL and the key can find the rest.
   */
  clientChannels?: Record<string, unknown>
}

/** The engine state file (`log/engines<cluster id>.json`): ipyparallel's form plus each engine's language. */
export interface SavedEngines {
  engines: Record<string, string>
  next_id: number
  languages: Record<string, string>
}

type QueryHandler = (idents: Buffer[], msg: Message) => void

/**
 * The hub: registry of engines (two-phase registration completed by the first heartbeat) and the requests of the
 * registration/query channel. It tells the task ledger when engines come and go, and answers queue_status from it.
 */
export class Hub {
  private readonly engines = new Map<number, EngineRecord>()
  private readonly byUuid = new Map<string, EngineRecord>()
  private readonly pending = new Map<string, PendingRegistration>()
  private nextId = 0

  /** Handlers of the query channel by message type; anything else gets hub_error. */
  private readonly handlers: Record<string, QueryHandler> = {
    connection_request: (idents, msg) => this.connectionRequest(idents, msg),
    registration_request: (idents, msg) => this.registrationRequest(idents, msg),
    unregistration_request: (_idents, msg) => this.unregistrationRequest(msg),
    queue_request: (idents, msg) => this.queueRequest(idents, msg),
    shutdown_request: (idents, msg) => this.shutdownRequest(idents, msg),
    become_dask_request: (idents, msg) => this.notHere(idents, msg, 'become_dask_reply', 'this controller cannot become a Dask scheduler'),
    stop_distributed_request: (idents, msg) => this.notHere(idents, msg, 'stop_distributed_reply', 'this controller runs no Dask scheduler'),
  }

  constructor(private readonly hooks: HubHooks, private readonly options: HubOptions, private readonly ledger: TaskLedger, private readonly queries: RecordQueries) {}

  /** Registered engines in id order. */
  get registered(): EngineRecord[] {
    return [...this.engines.values()].sort((a, b) => a.id - b.id)
  }

  engineByUuid(uuid: string): EngineRecord | undefined {
    return this.byUuid.get(uuid)
  }

  handleQuery(idents: Buffer[], msg: Message): void {
    const type = msg.header.msg_type
    const own = Object.hasOwn(this.handlers, type) ? this.handlers[type] : undefined
    const handler = own ?? (Object.hasOwn(this.queries.handlers, type) ? this.queries.handlers[type as keyof RecordQueries['handlers']] : undefined)
    if (!handler) {
      this.hooks.reply(idents, 'hub_error', errorContent('KeyError', `"Bad Message Type: '${msg.header.msg_type}'"`), msg.header)
      return
    }
    handler(idents, msg)
  }

  /** The heartbeat saw an engine for the first time: a pending registration completes. */
  heartSeen(uuid: string): void {
    const reg = this.pending.get(uuid)
    if (!reg) return
    this.pending.delete(uuid)
    this.hooks.clock.clearTimeout(reg.timer)
    const engine: EngineRecord = { id: reg.id, uuid, language: reg.language }
    this.engines.set(engine.id, engine)
    this.byUuid.set(uuid, engine)
    this.ledger.engineJoined(engine, false)
    this.hooks.log.info(`engine ${engine.id} (${engine.language}) registered: ${uuid}`)
    this.saveEngines()
    this.hooks.notify('registration_notification', { id: engine.id, uuid })
    this.hooks.engineJoined(engine)
  }

  /**
   * `--restore`: the engines of the state file a previous controller left are registered at once, without a heartbeat
   * and without notifications (docs/wire-protocol.md, 'Reuse and restore'); one that does not answer pings is
   * unregistered as usual.
   */
  restoreEngines(state: SavedEngines): EngineRecord[] {
    const restored: EngineRecord[] = []
    for (const [id, uuid] of Object.entries(state.engines)) {
      const engine: EngineRecord = { id: Number(id), uuid, language: state.languages?.[uuid] ?? 'python' }
      if (!Number.isInteger(engine.id) || this.engines.has(engine.id) || this.byUuid.has(uuid)) continue
      this.engines.set(engine.id, engine)
      this.byUuid.set(uuid, engine)
      this.ledger.engineJoined(engine, true)
      this.hooks.engineJoined(engine)
      restored.push(engine)
    }
    this.nextId = Math.max(this.nextId, state.next_id, ...restored.map((e) => e.id + 1))
    this.hooks.log.info(`restored ${restored.length} engine(s) from the previous controller's state`)
    this.saveEngines()
    return restored
  }

  /** An engine is gone: its heart stopped, it or its nanny unregistered, or it shut down. */
  unregister(uuid: string, why: string): void {
    const reg = this.pending.get(uuid)
    if (reg) {
      this.pending.delete(uuid)
      this.hooks.clock.clearTimeout(reg.timer)
      return
    }
    const engine = this.byUuid.get(uuid)
    if (!engine) return
    this.engines.delete(engine.id)
    this.byUuid.delete(uuid)
    const directPending = this.ledger.engineLeft(engine, why)
    this.hooks.log.info(`engine ${engine.id} unregistered (${why})`)
    this.saveEngines()
    this.hooks.notify('unregistration_notification', { id: engine.id, uuid })
    this.hooks.engineLeft(engine, directPending)
  }

  private connectionRequest(idents: Buffer[], msg: Message): void {
    const engines: Record<string, string> = {}
    for (const e of this.registered) engines[String(e.id)] = e.uuid
    const info = this.options.clientChannels
    this.hooks.reply(idents, 'connection_reply', { status: 'ok', engines, ...(info ? { connection_info: info } : {}) }, msg.header)
  }

  private registrationRequest(idents: Buffer[], msg: Message): void {
    let content: RegistrationRequestContent
    try {
      content = contentOf(msg, 'registration_request')
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e
      this.hooks.reply(idents, 'registration_reply', errorContent('ValueError', e.message), msg.header)
      return
    }
    const uuid = content.uuid
    if (this.byUuid.has(uuid) || this.pending.has(uuid)) {
      this.hooks.reply(idents, 'registration_reply', errorContent('KeyError', `uuid '${uuid}' in use`), msg.header)
      return
    }
    const id = this.newEngineId(content.id)
    const language = content.language ?? 'python'
    const timer = this.hooks.clock.setTimeout(() => {
      if (this.pending.delete(uuid)) this.hooks.log.warn(`registration of engine ${id} (${uuid}) timed out: no heartbeat seen`)
    }, this.options.registrationTimeoutMs)
    this.pending.set(uuid, { id, uuid, language, timer })
    this.hooks.reply(idents, 'registration_reply', {
      status: 'ok',
      id,
      hb_period: this.options.heartbeatPeriodMs,
      connection_info: this.options.engineChannels,
    }, msg.header)
  }

  private unregistrationRequest(msg: Message): void {
    const { id } = contentOf(msg, 'unregistration_request')
    const engine = id === null ? undefined : this.engines.get(id)
    if (engine) this.unregister(engine.uuid, 'unregistration request')
  }

  private queueRequest(idents: Buffer[], msg: Message): void {
    const { targets: list, verbose } = contentOf(msg, 'queue_request')
    let chosen: EngineRecord[]
    if (list === null) {
      chosen = this.registered
    } else {
      const unknown = list.filter((t) => this.lookup(t) === undefined)
      if (unknown.length > 0) {
        this.hooks.reply(idents, 'hub_error', errorContent('IndexError', `No Such Engine: ${JSON.stringify(unknown)}`), msg.header)
        return
      }
      chosen = list.map((t) => this.lookup(t) as EngineRecord)
    }
    const unassigned = this.ledger.unassigned
    const content: QueueReplyContent = { status: 'ok', unassigned: verbose ? [...unassigned] : unassigned.size }
    for (const e of chosen) {
      const q = this.ledger.queuesOf(e.uuid)
      if (!q) continue
      const line: EngineQueueStatus = verbose
        ? { queue: [...q.queue], completed: this.completedIds(e.uuid), tasks: [...q.tasks] }
        : { queue: q.queue.size, completed: q.completed, tasks: q.tasks.size }
      content[String(e.id)] = line
    }
    this.hooks.reply(idents, 'queue_reply', content, msg.header)
  }

  /** Ids of the requests an engine has finished, as far as the task store still holds them. */
  private completedIds(uuid: string): string[] {
    try {
      return this.ledger.store.findRecords({ engine_uuid: uuid, completed: { $ne: null } }, ['msg_id']).flatMap((r) => r.msg_id ?? [])
    } catch {
      return [] // a store that keeps nothing
    }
  }

  private notHere(idents: Buffer[], msg: Message, replyType: 'become_dask_reply' | 'stop_distributed_reply', why: string): void {
    this.hooks.reply(idents, replyType, errorContent('NotImplementedError', why), msg.header)
  }

  private shutdownRequest(idents: Buffer[], msg: Message): void {
    this.hooks.reply(idents, 'shutdown_reply', { status: 'ok' }, msg.header)
    this.hooks.notify('shutdown_notification', { status: 'ok' }, msg.header)
    this.hooks.shutdownRequested()
  }

  /** An engine by id (number or numeric string) or uuid. */
  private lookup(target: unknown): EngineRecord | undefined {
    if (typeof target === 'number') return this.engines.get(target)
    if (typeof target === 'string') return this.byUuid.get(target) ?? (/^\d+$/.test(target) ? this.engines.get(Number(target)) : undefined)
    return undefined
  }

  /** Ids count up from 0 and are never reused; a requested id is granted if free. */
  private newEngineId(requested: number | undefined): number {
    const taken = (id: number): boolean => this.engines.has(id) || [...this.pending.values()].some((p) => p.id === id)
    if (requested !== undefined && Number.isInteger(requested) && requested >= 0 && !taken(requested)) {
      this.nextId = Math.max(this.nextId, requested + 1)
      return requested
    }
    while (taken(this.nextId)) this.nextId++
    return this.nextId++
  }

  private saveTimer: TimerHandle | undefined

  /** Writes the engine state file soon: one write for a burst of registrations. */
  private saveEngines(): void {
    if (!this.options.enginesFile || this.saveTimer !== undefined) return
    this.saveTimer = this.hooks.clock.setTimeout(() => {
      this.saveTimer = undefined
      this.writeEngines()
    }, 50)
  }

  private writeEngines(): void {
    if (!this.options.enginesFile) return
    const state: SavedEngines = { engines: {}, next_id: this.nextId, languages: {} }
    for (const e of this.registered) {
      state.engines[String(e.id)] = e.uuid
      state.languages[e.uuid] = e.language
    }
    try {
      // Atomically, so a controller killed mid-write leaves the previous state, not half of one; no fsync, which
      // would stall the event loop at every registration and guards only against the machine losing power.
      writeFileAtomicSync(this.options.enginesFile, JSON.stringify(state), { fsync: false })
    } catch (e) {
      this.hooks.log.warn(`could not write ${this.options.enginesFile}: ${(e as Error).message}`)
    }
  }
}
