import { join } from 'node:path'
import { ScopedClock } from '../common/clock.js'
import { newKey } from '../common/ids.js'
import {
  connectionFilePath, ensureProfileDir, removeConnectionFile, writeConnectionFile, type ClientConnectionInfo, type EngineConnectionInfo,
} from '../protocol/connection-file.js'
import type { Header } from '../protocol/messages.js'
import { Session } from '../protocol/session.js'
import { closeAll, type AnySocket } from '../transport/sockets.js'
import { BroadcastRelay } from './broadcast.js'
import { ChannelIo } from './channel-io.js'
import { allSockets, bindChannels, createSockets, namedSockets, previousFiles, type ControllerSockets } from './channels.js'
import { curveKeyFilePath, removeKeyPair, serverKeyPair, writeKeyPair } from './curve-keys.js'
import { HeartMonitor } from './heart-monitor.js'
import { Hub } from './hub.js'
import type { ControllerEventListener } from './ledger-events.js'
import { fillOptions, type ControllerOptions, type FilledOptions } from './options.js'
import { RecordQueries } from './record-queries.js'
import { DirectRelay } from './relay.js'
import { openTaskStore, type TaskStore } from './store/index.js'
import { readEngineState } from './takeover.js'
import type { TaskChannel } from './task-channel.js'
import { TaskLedger } from './task-ledger.js'

export type { ControllerOptions } from './options.js'

/**
 * The controller: binds every channel, writes the connection files, and joins on one event loop the hub (engine
 * registry and queries), the heartbeat monitor, the task ledger (every task's state and events), the task
 * channel (the scheduler, or the native `pure` device) and the relays (mux, control, iopub, broadcast).
 */
export class Controller {
  readonly clientFile: string
  readonly engineFile: string
  private readonly io: ChannelIo
  private readonly ledger: TaskLedger
  /** Every timer of the controller's parts: they die with it. */
  private readonly clock = new ScopedClock()
  private stopping: Promise<void> | undefined
  private readonly shutdownListeners: (() => void)[] = []
  private hub!: Hub
  private monitor!: HeartMonitor

  private constructor(
    private readonly options: FilledOptions,
    private readonly session: Session,
    readonly clientInfo: ClientConnectionInfo,
    readonly engineInfo: EngineConnectionInfo,
    private readonly s: ControllerSockets,
    private readonly tasks: TaskChannel,
    private readonly store: TaskStore,
  ) {
    this.clientFile = connectionFilePath(options.profileDir, 'client', options.clusterId)
    this.engineFile = connectionFilePath(options.profileDir, 'engine', options.clusterId)
    const taskSocketNames = new Map<AnySocket, string>([[tasks.sockets.client, 'task'], [tasks.sockets.engine, 'task (engines)']])
    this.io = new ChannelIo(store, {
      durable: new Set<AnySocket>([s.muxClient, s.muxEngine, ...tasks.durable]),
      redelivered: new Set<AnySocket>([s.muxClient, tasks.sockets.client]),
    }, options.log, this.clock, [...namedSockets(s), ...tasks.closedOnStop.map((socket) => [taskSocketNames.get(socket) ?? 'task', socket] as const)])
    this.ledger = new TaskLedger(store, options.log, this.clock)
  }

  /** Binds all channels, then writes both connection files; peers may connect as soon as it resolves. */
  static async start(userOptions: ControllerOptions): Promise<Controller> {
    const options = fillOptions(userOptions)
    const { log } = options
    ensureProfileDir(options.profileDir)
    const previous = options.reuse ? previousFiles(options.profileDir, options.clusterId, log) : undefined
    const key = options.key ?? previous?.client.key ?? newKey()
    const keyFile = curveKeyFilePath(options.profileDir, options.clusterId)
    const keys = options.curve ? serverKeyPair(keyFile, options.reuse, previous?.client.curve_serverkey, log) : undefined
    if (!keys) removeKeyPair(keyFile)
    else if (previous && !previous.client.curve_serverkey) log.warn('--curve: the previous controller did not use CurveZMQ; its peers must read the new connection files')
    if (!keys && previous?.client.curve_serverkey) log.warn('the previous controller used CurveZMQ and this one does not (no --curve); its peers must read the new connection files')
    const curve = keys ? { role: 'server' as const, secretKey: keys.secretKey } : undefined
    const s = createSockets(curve)
    const tasks = options.taskChannel(options, curve)
    const all: AnySocket[] = [...allSockets(s), tasks.sockets.client, tasks.sockets.engine]
    let store: TaskStore | undefined
    try {
      const { clientInfo, engineInfo } = await bindChannels(s, tasks.sockets, {
        ip: options.ip, registrationPort: options.registrationPort, ports: options.ports, previous, key,
        curveServerKey: keys?.publicKey ?? null, location: options.location, scheme: options.scheme,
      })
      store = openTaskStore(options.db, options.profileDir)
      const controller = new Controller(options, new Session({ key, replayWindow: options.digestHistorySize }), clientInfo, engineInfo, s, tasks, store)
      controller.wire()
      if (options.restore) controller.restore()
      if (keys) writeKeyPair(keyFile, keys)
      writeConnectionFile(controller.engineFile, engineInfo)
      writeConnectionFile(controller.clientFile, clientInfo)
      log.info(`controller ready (scheme ${options.scheme}${tasks.description}, ${store.kind} task store${keys ? ', CurveZMQ' : ''}); client file ${controller.clientFile}`)
      return controller
    } catch (e) {
      store?.close()
      closeAll(all)
      throw e
    }
  }

  /** Messages dropped because they failed verification or could not be parsed. */
  get droppedMessages(): number {
    return this.io.droppedMessages
  }

  /** Registered engines, in id order. */
  get engines(): { id: number; uuid: string; language: string }[] {
    return this.hub.registered
  }

  /**
   * Observes engines and tasks (docs/architecture.md, "The task ledger"): each step is told to `listener` as it
   * happens, on the controller's event loop. Returns a function that stops it.
   */
  onEvent(listener: ControllerEventListener): () => void {
    return this.ledger.events.on(listener)
  }

  /** Resolves once a client's shutdown_request has been answered. */
  onShutdownRequest(listener: () => void): void {
    this.shutdownListeners.push(listener)
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
    return `status: ${this.hub.registered.length} engine(s), ${this.ledger.unassigned.size} task(s) waiting; heap used ${mib(m.heapUsed)} MiB${collect ? ' after a full collection' : ''}, external ${mib(m.external + m.arrayBuffers)} MiB, RSS ${mib(m.rss)} MiB; ${this.io.droppedMessages} bad message(s) dropped`
  }

  /** Stops timers, closes every socket and removes the connection files. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.monitor.close()
      this.clock.cancelAll()
      this.tasks.stop()
      if (!this.options.reuse) {
        removeConnectionFile(this.clientFile)
        removeConnectionFile(this.engineFile)
        removeKeyPair(curveKeyFilePath(this.options.profileDir, this.options.clusterId))
      }
      // Lets replies already queued (e.g. shutdown_reply) reach ZeroMQ before closing.
      await this.io.stop()
      this.store.close()
    })()
    return this.stopping
  }

  /** The state file of registered engines that `--restore` reads. */
  private get enginesFile(): string {
    return join(this.options.profileDir, 'log', `engines${this.options.clusterId}.json`)
  }

  /** `--restore`: the previous controller's engines are registered again and watched by the heartbeat; its tasks are taken over. */
  private restore(): void {
    const state = readEngineState(this.enginesFile, this.options.log)
    if (!state) return
    const restored = new Set<string>()
    for (const engine of this.hub.restoreEngines(state)) {
      this.monitor.adopt(engine.uuid)
      restored.add(engine.uuid)
    }
    this.tasks.adoptUnfinished(restored)
  }

  /** Joins the parts: who tells whom about what. Each channel's traffic is read by one receive loop. */
  private wire(): void {
    const { log } = this.options
    const { s, io, ledger, session, clock } = this
    const { key: _k, curve_serverkey: _c, location: _l, pack: _p, unpack: _u, signature_scheme: _s, ssh: _ssh, ...engineChannels } = this.engineInfo
    const reply = (idents: Buffer[], type: string, content: object, parent?: Header, buffers?: Buffer[]): void =>
      io.send(s.registration, session.serialize(session.msg(type, content, { parent: parent ?? {}, ...(buffers ? { buffers } : {}) }), idents))
    const isConnected = (uuid: string): boolean => this.hub.engineByUuid(uuid) !== undefined
    const broadcast = new BroadcastRelay(session, {
      toEngine: (frames, undeliverable) => io.send(s.broadcastEngine, frames, undeliverable),
      toClient: (frames) => io.send(s.broadcastClient, frames),
      isConnected, log,
    })
    const mux = new DirectRelay(session, {
      toEngine: (frames, undeliverable) => io.send(s.muxEngine, frames, undeliverable),
      toClient: (frames) => io.send(s.muxClient, frames),
      isConnected,
    }, ledger)
    const control = new DirectRelay(session, {
      toEngine: (frames, undeliverable) => io.send(s.controlEngine, frames, undeliverable),
      toClient: (frames) => io.send(s.controlClient, frames),
      isConnected,
    })
    const queries = new RecordQueries(ledger, {
      reply,
      resubmit: (header, metadata, content, buffers) => this.tasks.resubmit({ header, parent_header: {}, metadata, content, buffers }),
      freshHeader: (type) => session.header(type),
      engineUuid: (id) => this.hub.registered.find((e) => e.id === id)?.uuid,
    })
    this.hub = new Hub({
      reply,
      notify: (type, content, parent) => io.send(s.notification, session.serialize(session.msg(type, content, { parent: parent ?? {} }))),
      engineJoined: (engine) => this.tasks.engineJoined(engine.uuid, engine.language),
      engineLeft: (engine, directPending) => {
        this.monitor.stop(engine.uuid)
        this.tasks.engineLeft(engine.uuid)
        mux.engineLeft(engine, directPending)
        broadcast.engineLeft(engine.uuid)
      },
      shutdownRequested: () => clock.setTimeout(() => this.shutdownListeners.forEach((l) => l()), 100),
      clock,
      log,
    }, {
      heartbeatPeriodMs: this.options.pingMs,
      registrationTimeoutMs: this.options.registrationTimeoutMs,
      engineChannels,
      enginesFile: this.enginesFile,
      clientChannels: (({ key: _key, ...rest }) => rest)(this.clientInfo),
    }, ledger, queries)
    this.monitor = new HeartMonitor({
      ping: (payload) => io.send(s.hbPing, [payload]),
      newHeart: (uuid) => this.hub.heartSeen(uuid),
      heartFailed: (uuid) => {
        ledger.heartbeatLost(uuid)
        this.hub.unregister(uuid, 'heartbeat stopped')
      },
      heartBack: (uuid, afterMs) => log.info(`restored engine ${this.hub.engineByUuid(uuid)?.id ?? uuid} answered the heartbeat ${Math.round(afterMs)} ms after this controller started`),
    }, { periodMs: this.options.pingMs, maxMisses: this.options.maxHeartbeatMisses, clock })
    this.tasks.open({ session, ledger, io, clock, log, engineName: (uuid) => String(this.hub.engineByUuid(uuid)?.id ?? uuid) })

    io.loop(s.registration, (frames) => {
      const { idents, msg } = session.deserialize(frames)
      this.hub.handleQuery(idents, msg)
    })
    io.loop(s.hbPong, (frames) => {
      // An echo is exactly [routing id, ping payload]; one that answers no recent ping is ignored like a late one.
      const [id, payload] = frames
      if (frames.length !== 2 || !id || !payload) throw new Error(`a heartbeat echo has ${frames.length - 1} frame(s) after the routing id; 1 is expected`)
      this.monitor.pong(id.toString(), payload)
    })
    io.loop(s.muxClient, (frames) => mux.submitted(frames))
    io.loop(s.muxEngine, (frames) => mux.replied(frames))
    io.loop(s.controlClient, (frames) => control.submitted(frames))
    io.loop(s.controlEngine, (frames) => control.replied(frames))
    io.loop(s.iopubEngine, (frames) => {
      const { msg } = session.deserialize(frames)
      if (msg.header.msg_type === 'shutdown_reply') this.hub.unregister(msg.header.session, 'engine shut down')
      io.send(s.iopubClient, frames)
      ledger.output(msg)
    })
    io.loop(s.broadcastClient, (frames) => broadcast.submitted(frames))
    io.loop(s.broadcastEngine, (frames) => broadcast.replied(frames))
    this.monitor.start()
  }
}
