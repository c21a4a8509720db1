import { existsSync, readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { Dependency } from '../common/dependency.js'
import { ConfigError, errorContent } from '../common/errors.js'
import { newKey } from '../common/ids.js'
import { RateLimitedWarnings, createLogger, type Logger } from '../common/log.js'
import { StringPool } from '../common/string-pool.js'
import {
  CLIENT_KEYS, ENGINE_KEYS, connectionFilePath, ensureProfileDir, readConnectionFile, removeConnectionFile, writeConnectionFile,
  type ClientConnectionInfo, type EngineConnectionInfo,
} from '../protocol/connection-file.js'
import { PROTOCOL_VERSION, TASK_INVENTORY, TASK_ROUTER, replyTypeOf, type Header, type JsonObject, type Message, type TaskMetadata } from '../protocol/messages.js'
import { PackedFrames, SharedIdentities } from '../protocol/frames.js'
import { Session } from '../protocol/session.js'
import { lookupScheme } from '../schedulers/schemes.js'
import { TaskScheduler, type Task } from '../schedulers/task-scheduler.js'
import {
  Outbox, bindPort, closeAll, createDealer, createProxy, createPublisher, createRouter, createSubscriber, receiveLoop,
  type AnySocket, type Curve, type Dealer, type Frames, type Publisher, type Router, type Subscriber,
} from '../transport/sockets.js'
import { BroadcastRelay } from './broadcast.js'
import { HeartMonitor } from './heart-monitor.js'
import { curveKeyFilePath, removeKeyPair, serverKeyPair, writeKeyPair } from './curve-keys.js'
import { Hub, type SavedEngines } from './hub.js'
import { openTaskStore, type TaskRecord, type TaskStore } from './store/index.js'
import { RecordQueries } from './record-queries.js'
import { TaskLedger } from './task-ledger.js'

export interface ControllerOptions {
  /** Profile directory: connection files go to its `security/`. */
  profileDir: string
  /** Becomes part of the connection file names when non-empty. Default ''. */
  clusterId?: string
  /** Address to bind. Default 127.0.0.1. */
  ip?: string
  /** Host name written to the connection files for peers on other machines. Default: this host's name. */
  location?: string
  /** Heartbeat period in ms (`--ping`). Default 3000. */
  pingMs?: number
  /** Heartbeats an engine may miss in a row before it is declared dead. Default 10. */
  maxHeartbeatMisses?: number
  /** Load-balancing scheme name. Default leastload. */
  scheme?: string
  /** Most tasks one engine holds at once; 0 = unlimited. Default 1. */
  hwm?: number
  /** HMAC key; default a fresh random one. */
  key?: string
  /** Registration port (`--port`); default a free one. */
  registrationPort?: number
  /** Ports to bind, taken in order (registration first, unless `registrationPort` names it); then free ones. */
  ports?: number[]
  /** How long a registered engine has to show a heartbeat. Default max(30 s, 5 periods). */
  registrationTimeoutMs?: number
  /** How long to wait for late replies from a dead engine before failing its tasks. Default 1000 ms. */
  strandedGraceMs?: number
  /** Engine deaths under one task before it fails with PoisonTask, whatever its retries. Default 3. */
  maxEngineDeaths?: number
  /**
   * Where task records go: `memory` (default; ipyparallel's DictDB limits and culling), `sqlite` (the profile's
   * `tasks.db`), `sqlite:<path>`, or `none` (keep nothing, like `--nodb`).
   */
  db?: string
  /** Bind the ports and use the key of the connection files a previous controller left, and keep them on exit. */
  reuse?: boolean
  /**
   * Take over from a controller that died: implies `reuse`, registers the engines of its state file at once,
   * and (with a SQLite store) serves its task records.
   */
  restore?: boolean
  /**
   * CurveZMQ: every channel encrypts, and accepts only peers that know the controller's public key (the connection
   * files' `curve_serverkey`). Default false. Stock ipyparallel 7.1 peers cannot connect to such a controller.
   */
  curve?: boolean
  /** Signatures remembered to refuse replayed messages (ipyparallel's `Session.digest_history_size`). Default 65,536. */
  digestHistorySize?: number
  log?: Logger
  random?: () => number
}

type Filled = Required<Omit<ControllerOptions, 'registrationPort' | 'key'>> & { registrationPort: number; key: string | undefined }

function fill(options: ControllerOptions): Filled {
  const pingMs = options.pingMs ?? 3000
  if (!Number.isFinite(pingMs) || pingMs < 10) throw new ConfigError(`pingMs must be a number of milliseconds >= 10, got ${pingMs}`)
  const hwm = options.hwm ?? 1
  if (!Number.isInteger(hwm) || hwm < 0) throw new ConfigError(`hwm must be a whole number >= 0 (0 = unlimited), got ${hwm}`)
  const scheme = options.scheme ?? 'leastload'
  if (scheme !== PURE) lookupScheme(scheme)
  const digestHistorySize = options.digestHistorySize ?? 65_536
  if (!Number.isInteger(digestHistorySize) || digestHistorySize < 16) throw new ConfigError(`digestHistorySize must be a whole number >= 16, got ${digestHistorySize}`)
  return {
    profileDir: options.profileDir,
    clusterId: options.clusterId ?? '',
    ip: options.ip ?? '127.0.0.1',
    location: options.location ?? hostname(),
    pingMs,
    maxHeartbeatMisses: options.maxHeartbeatMisses ?? 10,
    scheme,
    hwm,
    key: options.key,
    registrationPort: options.registrationPort ?? 0,
    ports: options.ports ?? [],
    registrationTimeoutMs: options.registrationTimeoutMs ?? Math.max(30_000, 5 * pingMs),
    strandedGraceMs: options.strandedGraceMs ?? 1000,
    maxEngineDeaths: options.maxEngineDeaths ?? 3,
    db: options.db ?? 'memory',
    reuse: options.reuse === true || options.restore === true,
    restore: options.restore === true,
    curve: options.curve === true,
    digestHistorySize,
    log: options.log ?? createLogger('controller'),
    random: options.random ?? Math.random,
  }
}

/** Most tasks may run anywhere: they share one empty target set. */
const NO_TARGETS: ReadonlySet<string> = new Set()

/** The scheme that is a native ZeroMQ device rather than a scheduler: no dependencies, targets or hwm. */
export const PURE = 'pure'

/** A task of a restored engine that the previous controller gave it. */
interface Orphan {
  record: Partial<TaskRecord>
  idents: Buffer[]
}

/**
 * The controller: binds every channel, writes the connection files, and joins the hub, the heartbeat monitor,
 * the task scheduler and the relays on one event loop.
 */
export class Controller {
  readonly clientFile: string
  readonly engineFile: string
  /** Messages dropped because they failed verification or could not be parsed. */
  droppedMessages = 0
  /** Task replies that came when their task was no longer pending on that engine (it was given up), and were discarded. */
  lateReplies = 0
  private lateReplyWarnings: RateLimitedWarnings | undefined
  /** Dropped messages by channel (the receive loop's name), for the summary logged on stop. */
  readonly droppedByChannel = new Map<string, number>()
  private readonly sockets: AnySocket[] = []
  private readonly outboxes = new Map<AnySocket, Outbox>()
  private readonly timers = new Set<NodeJS.Timeout>()
  private heartbeat: NodeJS.Timeout | undefined
  private stopping: Promise<void> | undefined
  private readonly startedAt = performance.now()
  private readonly shutdownListeners: (() => void)[] = []
  private hub!: Hub
  private monitor!: HeartMonitor
  /** The task scheduler; none with the `pure` scheme, whose tasks cross a native device instead. */
  private scheduler: TaskScheduler | undefined
  private ledger!: TaskLedger
  private broadcast!: BroadcastRelay
  private proxy: { run(): Promise<void>; terminate(): void } | undefined

  private constructor(
    private readonly options: Filled,
    private readonly session: Session,
    readonly clientInfo: ClientConnectionInfo,
    readonly engineInfo: EngineConnectionInfo,
    private readonly s: Sockets,
    private readonly store: TaskStore,
  ) {
    this.clientFile = connectionFilePath(options.profileDir, 'client', options.clusterId)
    this.engineFile = connectionFilePath(options.profileDir, 'engine', options.clusterId)
    this.durableSockets = new Set<AnySocket>([s.taskClient, s.muxClient, s.taskEngine.socket, s.muxEngine])
  }

  /** The sockets whose sends wait for the records they imply to be committed (SQLite store). */
  private readonly durableSockets: Set<AnySocket>

  /** Binds all channels, then writes both connection files; peers may connect as soon as it resolves. */
  static async start(userOptions: ControllerOptions): Promise<Controller> {
    const options = fill(userOptions)
    ensureProfileDir(options.profileDir)
    const previous = options.reuse ? previousFiles(options.profileDir, options.clusterId, options.log) : undefined
    const key = options.key ?? previous?.client.key ?? newKey()
    const iface = `tcp://${options.ip}`
    const keyFile = curveKeyFilePath(options.profileDir, options.clusterId)
    const keys = options.curve ? serverKeyPair(keyFile, options.reuse, previous?.client.curve_serverkey, options.log) : undefined
    if (!keys) removeKeyPair(keyFile)
    else if (previous && !previous.client.curve_serverkey) options.log.warn('--curve: the previous controller did not use CurveZMQ; its peers must read the new connection files')
    if (!keys && previous?.client.curve_serverkey) options.log.warn('the previous controller used CurveZMQ and this one does not (no --curve); its peers must read the new connection files')
    const s = makeSockets(options.scheme === PURE, keys ? { role: 'server', secretKey: keys.secretKey } : undefined)
    const all: AnySocket[] = [...Object.values({ ...s, taskEngine: undefined }).filter((x) => x !== undefined), s.taskEngine.socket]
    let store: TaskStore | undefined
    try {
      // With --reuse each channel binds the port it had, so peers that keep reconnecting find it again.
      const pool = [...options.ports]
      const port = (sock: AnySocket, was: number | undefined): Promise<number> => bindPort(sock, iface, was ?? pool.shift() ?? 0)
      const c = previous?.client
      const e = previous?.engine
      const registration = await port(s.registration, options.registrationPort || c?.registration || undefined)
      const base = { ssh: '', interface: iface, registration, key, curve_serverkey: keys?.publicKey ?? null, location: options.location, pack: 'json', unpack: 'json', signature_scheme: 'hmac-sha256' }
      const clientInfo: ClientConnectionInfo = {
        ...base, control: await port(s.controlClient, c?.control), mux: await port(s.muxClient, c?.mux), task: await port(s.taskClient, c?.task),
        task_scheme: options.scheme, iopub: await port(s.iopubClient, c?.iopub), notification: await port(s.notification, c?.notification),
        broadcast: await port(s.broadcastClient, c?.broadcast),
      }
      const engineInfo: EngineConnectionInfo = {
        ...base, control: await port(s.controlEngine, e?.control), mux: await port(s.muxEngine, e?.mux), task: await port(s.taskEngine.socket, e?.task),
        iopub: await port(s.iopubEngine, e?.iopub), hb_ping: await port(s.hbPing, e?.hb_ping), hb_pong: await port(s.hbPong, e?.hb_pong),
        broadcast: [await port(s.broadcastEngine, Array.isArray(e?.broadcast) ? (e.broadcast[0]) : undefined)],
      }
      store = openTaskStore(options.db, options.profileDir)
      const controller = new Controller(options, new Session({ key, replayWindow: options.digestHistorySize }), clientInfo, engineInfo, s, store)
      controller.sockets.push(...all)
      controller.wire()
      if (options.restore) controller.restore()
      if (keys) writeKeyPair(keyFile, keys)
      writeConnectionFile(controller.engineFile, engineInfo)
      writeConnectionFile(controller.clientFile, clientInfo)
      options.log.info(`controller ready (scheme ${options.scheme}${options.scheme === PURE ? '' : `, hwm ${options.hwm}`}, ${store.kind} task store${keys ? ', CurveZMQ' : ''}); client file ${controller.clientFile}`)
      return controller
    } catch (e) {
      store?.close()
      closeAll(all)
      throw e
    }
  }

  /** The state file of registered engines that `--restore` reads. */
  private get enginesFile(): string {
    return join(this.options.profileDir, 'log', `engines${this.options.clusterId}.json`)
  }

  /** `--restore`: the previous controller's engines are registered again and watched by the heartbeat. */
  private restore(): void {
    let state: SavedEngines
    try {
      state = JSON.parse(readFileSync(this.enginesFile, 'utf8')) as SavedEngines
      if (typeof state !== 'object' || state === null || typeof state.engines !== 'object') throw new Error('no engines table')
    } catch (e) {
      this.options.log.warn(`--restore: no engine state to restore from ${this.enginesFile} (${(e as Error).message}); starting with none`)
      return
    }
    const restored = new Set<string>()
    for (const engine of this.hub.restoreEngines({ engines: state.engines, next_id: Number(state.next_id) || 0, languages: state.languages ?? {} })) {
      this.monitor.adopt(engine.uuid)
      restored.add(engine.uuid)
    }
    this.adoptUnfinished(restored)
  }

  /**
   * Tasks the previous controller accepted and did not finish: one assigned to a restored engine waits for that
   * engine's reply (or fails with EngineError if the engine is gone); any other goes back to the scheduler under
   * its own msg_id. Replies go to the submitting client's session identity (which our client uses as its routing
   * id) and to the records, where any client can fetch them.
   */
  private adoptUnfinished(restored: Set<string>): void {
    let unfinished: Partial<TaskRecord>[]
    try {
      unfinished = this.store.findRecords({ completed: null, queue: 'task' })
    } catch {
      return // a store that keeps nothing
    }
    let waiting = 0
    let requeued = 0
    for (const record of unfinished) {
      const header = record.header as unknown as Header | null
      if (!header || !record.msg_id) continue
      const idents = record.client_uuid ? [Buffer.from(record.client_uuid)] : []
      this.ledger.adopted(record.msg_id)
      if (record.engine_uuid && restored.has(record.engine_uuid)) {
        let set = this.orphans.get(record.engine_uuid)
        if (!set) this.orphans.set(record.engine_uuid, (set = new Map<string, Orphan>()))
        set.set(record.msg_id, { record, idents })
        waiting++
        continue
      }
      this.requeue(record, idents)
      requeued++
    }
    if (unfinished.length > 0) this.options.log.info(`--restore: ${waiting} unfinished task(s) wait for their engines, ${requeued} went back to the scheduler`)
  }

  /**
   * Direct requests an engine took with it: their records end with EngineError (the client that sent them
   * learns it from the unregistration notification), so none stays pending forever.
   */
  private failDirect(engine: { id: number; uuid: string }, msgIds: string[]): void {
    for (const msgId of msgIds) {
      let header: Header | undefined
      try {
        header = this.store.getRecord(msgId).header as unknown as Header | undefined
      } catch {
        header = undefined
      }
      // Without a stored request (--db=none) a stand-in header still ends the request's pending state.
      header ??= { msg_id: msgId, msg_type: 'apply_request', username: '', session: '', date: '', version: PROTOCOL_VERSION }
      const reply = this.replyError(this.s.muxClient, [], header, 'EngineError', `Engine ${engine.id} died while running task '${msgId}'`, { status: 'error', engine: engine.uuid, dependencies_met: true })
      this.ledger.finished(reply, engine.uuid, false)
    }
  }

  /** A task the previous controller accepted, from its record, back in the scheduler under its own msg_id. */
  private requeue(record: Partial<TaskRecord>, idents: Buffer[]): void {
    const msg: Message = { header: record.header as unknown as Header, parent_header: {}, metadata: record.metadata ?? {}, content: record.content ?? {}, buffers: record.buffers ?? [] }
    this.acceptTask(idents, msg, this.session.serialize(msg), { recorded: true })
  }

  /** Tasks of a restored engine that the previous controller gave it: msg_id -> its record and client identity. */
  private readonly orphans = new Map<string, Map<string, Orphan>>()
  /** Client identities of queued tasks, one copy per client. */
  private readonly identities = new SharedIdentities()
  /** Strings shared by the headers of queued tasks. */
  private readonly strings = new StringPool()

  /**
   * A JavaScript engine that saw its controller restart says which tasks it holds (after sending its last replies
   * again, on the same channel, so those have been taken by now). An orphan it neither finished nor holds never
   * reached it (the request was lost with the previous controller): it goes back to the scheduler. Safe to run,
   * since that engine never had it.
   */
  private reconcileOrphans(engineUuid: string, held: Set<string>): void {
    const orphans = this.orphans.get(engineUuid)
    if (!orphans) return
    for (const [msgId, { record, idents }] of orphans) {
      if (held.has(msgId)) continue
      orphans.delete(msgId)
      this.options.log.info(`--restore: task ${msgId} never reached engine ${this.hub.engineByUuid(engineUuid)?.id ?? engineUuid} (lost with the previous controller); it goes back to the scheduler`)
      this.requeue(record, idents)
    }
  }

  /** An engine left: the orphaned tasks it held can no longer finish. */
  private failOrphans(engineUuid: string): void {
    const held = this.orphans.get(engineUuid)
    if (!held) return
    this.orphans.delete(engineUuid)
    for (const [, { record, idents }] of held) {
      const header = record.header as unknown as Header
      const reply = this.replyError(this.s.taskClient, idents, header, 'EngineError', `Engine ${engineUuid} died while running task '${header.msg_id}'`, { status: 'error', engine: engineUuid, dependencies_met: true })
      this.ledger.finished(reply, engineUuid, false)
    }
  }

  /** Resolves once a client's shutdown_request has been answered. */
  onShutdownRequest(listener: () => void): void {
    this.shutdownListeners.push(listener)
  }

  /** Registered engines, in id order. */
  get engines(): { id: number; uuid: string; language: string }[] {
    return this.hub.registered
  }

  /**
   * One line on the controller's state and memory (`kill -USR2 <pid>` prints it). Under `node --expose-gc` a full
   * collection runs first, so that the heap figure is what is kept alive rather than garbage not yet collected.
   */
  statusLine(): string {
    const collect = (globalThis as { gc?: () => void }).gc
    if (collect) collect()
    const m = process.memoryUsage()
    const mib = (n: number): string => (n / 2 ** 20).toFixed(1)
    return `status: ${this.hub.registered.length} engine(s), ${this.ledger.unassigned.size} task(s) waiting; heap used ${mib(m.heapUsed)} MiB${collect ? ' after a full collection' : ''}, external ${mib(m.external + m.arrayBuffers)} MiB, RSS ${mib(m.rss)} MiB; ${this.droppedMessages} bad message(s) dropped`
  }

  /** Stops timers, closes every socket and removes the connection files. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      if (this.droppedMessages > 0) {
        const byChannel = [...this.droppedByChannel].map(([channel, n]) => `${channel} ${n}`).join(', ')
        this.options.log.warn(`dropped ${this.droppedMessages} bad message(s) in all: ${byChannel}`)
      }
      if (this.heartbeat) clearInterval(this.heartbeat)
      this.proxy?.terminate()
      for (const t of this.timers) clearTimeout(t)
      if (!this.options.reuse) {
        removeConnectionFile(this.clientFile)
        removeConnectionFile(this.engineFile)
        removeKeyPair(curveKeyFilePath(this.options.profileDir, this.options.clusterId))
      }
      // Let replies already queued (e.g. shutdown_reply) reach ZeroMQ before closing.
      await Promise.race([Promise.all([...this.outboxes.values()].map((o) => o.drained())), new Promise((r) => setTimeout(r, 500))])
      closeAll(this.sockets)
      this.store.close()
    })()
    return this.stopping
  }

  private wire(): void {
    const { log } = this.options
    const s = this.s
    const setTimer = (callback: () => void, ms: number): unknown => {
      const t = setTimeout(() => {
        this.timers.delete(t)
        callback()
      }, ms)
      this.timers.add(t)
      return t
    }
    const clearTimer = (handle: unknown): void => {
      clearTimeout(handle as NodeJS.Timeout)
      this.timers.delete(handle as NodeJS.Timeout)
    }
    const { key: _k, curve_serverkey: _c, location: _l, pack: _p, unpack: _u, signature_scheme: _s, ssh: _ssh, ...engineChannels } = this.engineInfo
    const reply = (idents: Buffer[], type: string, content: object, parent?: Header, buffers?: Buffer[]): void =>
      this.send(s.registration, this.session.serialize(this.session.msg(type, content, { parent: parent ?? {}, ...(buffers ? { buffers } : {}) }), idents))
    this.broadcast = new BroadcastRelay(this.session, {
      toEngine: (frames, undeliverable) => this.send(s.broadcastEngine, frames, undeliverable),
      toClient: (frames) => this.send(s.broadcastClient, frames),
      isConnected: (uuid) => this.hub.engineByUuid(uuid) !== undefined,
      log,
    })
    this.ledger = new TaskLedger(this.store, log)
    const queries = new RecordQueries(this.ledger, {
      reply,
      resubmit: (header, metadata, content, buffers) => {
        const msg = { header, parent_header: {}, metadata, content, buffers }
        // No client identity: the reply stops at the records, where the client asks for it (result_request).
        this.acceptTask([], msg, this.session.serialize(msg))
      },
      freshHeader: (type) => this.session.header(type),
      engineUuid: (id) => this.hub.registered.find((e) => e.id === id)?.uuid,
    })
    this.hub = new Hub({
      reply,
      notify: (type, content, parent) => this.send(s.notification, this.session.serialize(this.session.msg(type, content, { parent: parent ?? {} }))),
      engineJoined: (engine) => this.scheduler?.addEngine(engine.uuid, engine.language),
      engineLeft: (engine, directPending) => {
        this.monitor.stop(engine.uuid)
        this.scheduler?.removeEngine(engine.uuid)
        this.failOrphans(engine.uuid)
        this.failDirect(engine, directPending)
        this.broadcast.engineLeft(engine.uuid)
      },
      shutdownRequested: () => setTimer(() => this.shutdownListeners.forEach((l) => l()), 100),
      setTimer, clearTimer, log,
    }, {
      heartbeatPeriodMs: this.options.pingMs,
      registrationTimeoutMs: this.options.registrationTimeoutMs,
      engineChannels,
      enginesFile: this.enginesFile,
    }, this.ledger, queries)
    this.monitor = new HeartMonitor({
      ping: (payload) => this.send(s.hbPing, [payload]),
      newHeart: (uuid) => this.hub.heartSeen(uuid),
      heartFailed: (uuid) => {
        this.ledger.heartbeatLost(uuid)
        this.hub.unregister(uuid, 'heartbeat stopped')
      },
      heartBack: (uuid) => log.info(`restored engine ${this.hub.engineByUuid(uuid)?.id ?? uuid} answered the heartbeat ${Math.round(performance.now() - this.startedAt)} ms after this controller started`),
      lifetime: () => (performance.now() - this.startedAt) / 1000,
    }, this.options.maxHeartbeatMisses)
    if (s.taskEngine.type === 'router') this.scheduler = this.makeScheduler(s.taskClient, s.taskEngine.socket, setTimer, clearTimer)

    this.loop(s.registration, 'registration', (frames) => {
      const { idents, msg } = this.session.deserialize(frames)
      this.hub.handleQuery(idents, msg)
    })
    this.loop(s.hbPong, 'heartbeat', (frames) => {
      // An echo is exactly [routing id, ping payload]; one that answers no recent ping is ignored like a late one.
      const [id, payload] = frames
      if (frames.length !== 2 || !id || !payload) throw new Error(`a heartbeat echo has ${frames.length - 1} frame(s) after the routing id; 1 is expected`)
      this.monitor.pong(id.toString(), payload)
    })
    this.relay(s.muxClient, s.muxEngine, 'mux')
    this.relay(s.controlClient, s.controlEngine, 'control')
    if (s.taskEngine.type === 'router') {
      this.loop(s.taskClient, 'task', (frames) => this.taskSubmitted(frames))
      this.loop(s.taskEngine.socket, 'task (engines)', (frames) => this.taskReplied(frames))
    } else {
      // pure: tasks cross a native device, round robin over the connected engines, never through this loop.
      this.proxy = createProxy(s.taskClient, s.taskEngine.socket)
      // The device closes its own sockets when terminated; closing them under it is not allowed.
      const owned = new Set<AnySocket>([s.taskClient, s.taskEngine.socket])
      this.sockets.splice(0, this.sockets.length, ...this.sockets.filter((x) => !owned.has(x)))
      this.proxy.run().catch((e: unknown) => log.error(`pure task device stopped: ${(e as Error).message}`))
    }
    this.loop(s.iopubEngine, 'iopub', (frames) => {
      const { msg } = this.session.deserialize(frames)
      if (msg.header.msg_type === 'shutdown_reply') this.hub.unregister(msg.header.session, 'engine shut down')
      this.send(s.iopubClient, frames)
      this.ledger.output(msg)
    })
    this.loop(s.broadcastClient, 'broadcast', (frames) => this.broadcast.submitted(frames))
    this.loop(s.broadcastEngine, 'broadcast (engines)', (frames) => this.broadcast.replied(frames))
    this.monitor.beat()
    this.heartbeat = setInterval(() => this.monitor.beat(), this.options.pingMs)
  }

  private makeScheduler(taskClient: Router, taskEngine: Router, setTimer: (cb: () => void, ms: number) => unknown, clearTimer: (h: unknown) => void): TaskScheduler {
    const { log } = this.options
    return new TaskScheduler({
      sendToEngine: (uuid, task, undeliverable) => this.send(taskEngine, [Buffer.from(uuid), ...task.clientIdents, ...task.wire.views()], undeliverable),
      forwardReply: (task, uuid, wire) => {
        // A resubmitted task has no client to answer: its result waits in the records.
        if (task.clientIdents.length > 0) this.send(taskClient, [...task.clientIdents, Buffer.from(uuid), ...wire])
      },
      failTask: (task, ename, evalue, engineUuid) => {
        const metadata = engineUuid ? { status: 'error', engine: engineUuid, dependencies_met: true } : {}
        const reply = this.replyError(taskClient, task.clientIdents, task.header, ename, evalue, metadata)
        this.ledger.finished(reply, engineUuid, false)
      },
      taskAssigned: (task, uuid) => this.ledger.assigned(task.msgId, uuid),
      taskRequeued: (task, uuid, why) => this.ledger.requeued(task.msgId, uuid, why),
      setTimer, clearTimer, log,
    }, {
      scheme: lookupScheme(this.options.scheme), hwm: this.options.hwm, random: this.options.random, strandedGraceMs: this.options.strandedGraceMs, maxEngineDeaths: this.options.maxEngineDeaths,
      lookupOutcome: (msgId) => this.ledger.outcomeOf(msgId),
    })
  }

  /** A client submitted a load-balanced task. */
  private taskSubmitted(frames: Frames): void {
    const { idents, msg, wire } = this.session.deserialize<object, TaskMetadata>(frames)
    this.acceptTask(idents, msg as unknown as Message, wire)
  }

  /** Records a load-balanced task and gives it to the scheduler, or refuses it with an error reply. */
  private acceptTask(receivedIdents: Buffer[], received: Message, receivedWire: Buffer[], options: { recorded?: boolean } = {}): void {
    // A task may wait long in the queue: its frames are kept in one allocation rather than ZeroMQ's nine.
    const wire = new PackedFrames(receivedWire)
    const idents = this.identities.of(receivedIdents)
    // The same in every task of a client; JSON.parse made a copy of each for this one.
    const h = received.header
    h.session = this.strings.of(h.session)
    h.msg_type = this.strings.of(h.msg_type)
    h.username = this.strings.of(h.username)
    const msg = { ...received, buffers: wire.views(wire.length - received.buffers.length) }
    const md = msg.metadata as TaskMetadata
    let after: Dependency
    let follow: Dependency
    this.ledger.submitted(msg, 'task', undefined, options.recorded === true)
    try {
      after = Dependency.fromWire(md.after)
      follow = Dependency.fromWire(md.follow)
    } catch (e) {
      const reply = this.replyError(this.s.taskClient, idents, msg.header, 'InvalidDependency', `bad after/follow metadata: ${(e as Error).message}`)
      this.ledger.finished(reply, undefined, false)
      return
    }
    const targets = Array.isArray(md.targets) ? md.targets.map(String) : []
    const retries = typeof md.retries === 'number' && md.retries > 0 ? Math.floor(md.retries) : 0
    const timeoutMs = typeof md.timeout === 'number' && md.timeout > 0 ? md.timeout * 1000 : undefined
    const priority = typeof md.priority === 'number' && Number.isFinite(md.priority) ? md.priority : 0
    const task: Task = {
      msgId: msg.header.msg_id, clientIdents: idents, wire, header: msg.header,
      language: typeof md.language === 'string' ? md.language : 'python',
      targets: targets.length === 0 ? NO_TARGETS : new Set(targets), retries, timeoutMs, priority, after, follow,
    }
    this.scheduler?.submit(task)
  }

  /** An engine answered a load-balanced task. */
  private taskReplied(frames: Frames): void {
    const { idents, msg, wire } = this.session.deserialize(frames)
    const engineUuid = idents[0]?.toString() ?? ''
    if (msg.header.msg_type === TASK_INVENTORY) {
      const ids = (msg.content as { msg_ids?: unknown }).msg_ids
      if (!Array.isArray(ids)) throw new Error(`${TASK_INVENTORY} without a msg_ids list`)
      this.reconcileOrphans(engineUuid, new Set(ids.map(String)))
      return
    }
    const msgId = (msg.parent_header as Partial<Header>).msg_id ?? ''
    const md = msg.metadata as { status?: unknown; dependencies_met?: unknown }
    const status = typeof md.status === 'string' ? md.status : String((msg.content as { status?: unknown }).status)
    const handled = this.scheduler?.engineReply(engineUuid, msgId, { status, dependenciesMet: md.dependencies_met !== false }, wire) ?? 'unknown'
    if (handled === 'retried') return
    if (handled === 'forwarded') {
      this.ledger.finished(msg, engineUuid, status !== 'aborted')
    } else {
      const orphan = this.orphans.get(engineUuid)?.get(msgId)
      if (!orphan) {
        // An engine sends its last replies again when it sees a controller restart; most are old news.
        if ((msg.metadata as { resent?: unknown }).resent === true) return
        this.lateReplies++
        this.lateReplyWarnings ??= new RateLimitedWarnings(this.options.log)
        this.lateReplyWarnings.warn(`discarded a late reply to task ${msgId} from engine ${engineUuid}: the task is not pending there (the engine was given up, or the task ended otherwise); it is never delivered`)
        return
      }
      // A task of the controller this one restored: its engine finished it after the restart.
      this.orphans.get(engineUuid)?.delete(msgId)
      this.ledger.finished(msg, engineUuid, true)
      if (orphan.idents.length > 0) this.send(this.s.taskClient, [...orphan.idents, Buffer.from(engineUuid), ...wire])
    }
  }

  /**
   * A ROUTER-ROUTER relay with identity swap (reference §1.3): `[client, engine, msg]` in from clients goes
   * out as `[engine, client, msg]`, and the engine's answer comes back the same way.
   */
  private relay(clientSide: Router, engineSide: Router, name: string): void {
    const accounting = name === 'mux'
    this.loop(clientSide, name, (frames) => {
      const { idents, msg } = this.session.deserialize(frames)
      const [client, engine] = idents
      if (!client || !engine) throw new Error('request has no engine identity frame')
      const uuid = engine.toString()
      const refuse = (): Message => this.replyError(clientSide, [client], msg.header, 'EngineError', `no engine ${uuid} is connected`)
      if (!this.hub.engineByUuid(uuid)) {
        refuse()
        return
      }
      if (accounting) this.ledger.submitted(msg, 'mux', uuid)
      this.send(engineSide, [engine, client, ...frames.slice(2)], () => {
        const reply = refuse()
        if (accounting) this.ledger.finished(reply, uuid, false)
      })
    })
    this.loop(engineSide, `${name} (engines)`, (frames) => {
      const { idents, msg } = this.session.deserialize(frames)
      const [engine, client] = idents
      if (!engine || !client) throw new Error('reply has no client identity frame')
      if (accounting) this.ledger.finished(msg, engine.toString(), true)
      this.send(clientSide, [client, engine, ...frames.slice(2)])
    })
  }

  /** The one path for an error reply made by the controller: `<x>_reply` with the request as parent. */
  private replyError(socket: Router, idents: Buffer[], parent: Header, ename: string, evalue: string, metadata: object = {}): Message {
    const reply = this.session.msg(replyTypeOf(parent.msg_type), errorContent(ename, evalue), { parent, metadata: metadata as JsonObject }) as unknown as Message
    if (idents.length > 0) this.send(socket, this.session.serialize(reply, idents))
    return reply
  }

  private send(socket: Router | Publisher, frames: Frames, undeliverable?: () => void): void {
    // With SQLite, task and mux traffic leaves only once the records it implies are durable: a reply reaches a
    // client only when a restored controller would know that result, and a request reaches an engine only when
    // a restored controller would know the task was accepted and where it went (so it neither loses the task
    // nor runs it a second time). The records are written after the hand-over here, in the same handler, so
    // the wait starts in a microtask; every such send takes this path, keeping the order per socket.
    if (this.store.kind === 'sqlite' && this.durableSockets.has(socket)) {
      queueMicrotask(() => this.store.afterCommit(() => this.enqueue(socket, frames, undeliverable)))
      return
    }
    this.enqueue(socket, frames, undeliverable)
  }

  private enqueue(socket: Router | Publisher, frames: Frames, undeliverable?: () => void): void {
    let outbox = this.outboxes.get(socket)
    if (!outbox) {
      outbox = new Outbox(socket, (error, failed) => {
        const fallback = this.undeliverable.get(failed)
        if (fallback) fallback()
        else if (socket === this.s.taskClient || socket === this.s.muxClient) this.redeliver(socket, failed, 1)
        else this.options.log.warn(`send failed: ${(error as Error).message}`)
      })
      this.outboxes.set(socket, outbox)
    }
    if (undeliverable) this.undeliverable.set(frames, undeliverable)
    outbox.send(frames)
  }

  private readonly undeliverable = new WeakMap<Frames, () => void>()

  /**
   * A reply to a client that is not connected: it may be reconnecting (after a controller restart, its sockets
   * come back a moment after the restored controller has started sending), so it is tried again every 200 ms
   * for 10 s. After that it is dropped; the result stays in the task records, where the client can ask for it.
   */
  private redeliver(socket: Router, frames: Frames, attempt: number): void {
    if (this.stopping) return
    if (attempt > 50) {
      this.options.log.info(`dropped a reply to client ${frames[0]?.toString() ?? '?'}: not connected for 10 s (the result stays in the task records)`)
      return
    }
    const timer = setTimeout(() => {
      this.timers.delete(timer)
      this.enqueue(socket, frames, () => this.redeliver(socket, frames, attempt + 1))
    }, 200)
    this.timers.add(timer)
  }

  private loop(socket: Router | Subscriber, channel: string, handle: (frames: Frames) => void): void {
    const log = this.options.log
    const drops = new RateLimitedWarnings(log)
    void receiveLoop(socket, handle, (error) => {
      this.droppedMessages++
      this.droppedByChannel.set(channel, (this.droppedByChannel.get(channel) ?? 0) + 1)
      drops.warn(`${channel}: dropped a message: ${error instanceof Error ? error.message : String(error)}`)
    }).catch((e: unknown) => log.error(`${channel}: receive loop ended: ${(e as Error).message}`))
  }
}

/** The connection files a previous controller of this profile left, if both are there and readable. */
function previousFiles(profileDir: string, clusterId: string, log: Logger): { client: ClientConnectionInfo; engine: EngineConnectionInfo } | undefined {
  const clientFile = connectionFilePath(profileDir, 'client', clusterId)
  const engineFile = connectionFilePath(profileDir, 'engine', clusterId)
  if (!existsSync(clientFile) || !existsSync(engineFile)) {
    log.info('--reuse: no previous connection files; binding fresh ports')
    return undefined
  }
  return { client: readConnectionFile<ClientConnectionInfo>(clientFile, CLIENT_KEYS), engine: readConnectionFile<EngineConnectionInfo>(engineFile, ENGINE_KEYS) }
}

interface Sockets {
  registration: Router
  notification: Publisher
  hbPing: Publisher
  hbPong: Router
  muxClient: Router
  muxEngine: Router
  controlClient: Router
  controlEngine: Router
  taskClient: Router
  /** A ROUTER facing engines, or with `pure` the DEALER of the native device. */
  taskEngine: { type: 'router'; socket: Router } | { type: 'dealer'; socket: Dealer }
  iopubEngine: Subscriber
  iopubClient: Publisher
  broadcastClient: Router
  broadcastEngine: Router
}

/** Every socket the controller binds; with `curve`, each is a CURVE server. */
function makeSockets(pure: boolean, curve: Curve | undefined): Sockets {
  return {
    registration: createRouter({ curve }),
    notification: createPublisher({ curve }),
    hbPing: createPublisher({ curve }),
    hbPong: createRouter({ curve }),
    muxClient: createRouter({ routingId: 'mux_in', mandatory: true, curve }),
    // Engine-facing ROUTERs refuse to drop messages for unknown peers, so nothing is lost silently.
    muxEngine: createRouter({ routingId: 'mux_out', mandatory: true, curve }),
    controlClient: createRouter({ routingId: 'control_in', curve }),
    controlEngine: createRouter({ routingId: 'control_out', mandatory: true, curve }),
    // Mandatory routing tells a reply to a client that is not connected (yet) from one delivered; not with the
    // native device of the pure scheme, which would stop at the first such error.
    taskClient: createRouter({ routingId: 'task_in', mandatory: !pure, curve }),
    taskEngine: pure ? { type: 'dealer', socket: createDealer({ routingId: TASK_ROUTER, curve }) } : { type: 'router', socket: createRouter({ routingId: TASK_ROUTER, mandatory: true, curve }) },
    iopubEngine: createSubscriber({ curve }),
    iopubClient: createPublisher({ curve }),
    broadcastClient: createRouter({ routingId: 'sub_scheduler_0', curve }),
    broadcastEngine: createRouter({ routingId: 'sub_scheduler_00', curve }),
  }
}
