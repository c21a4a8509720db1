import { Dependency } from '../common/dependency.js'
import { errorContent } from '../common/errors.js'
import { RateLimitedWarnings } from '../common/log.js'
import { StringPool } from '../common/string-pool.js'
import { PackedFrames, SharedIdentities } from '../protocol/frames.js'
import { contentOf } from '../protocol/content-readers.js'
import { TASK_INVENTORY, TASK_ROUTER, replyTypeOf, type Header, type Message } from '../protocol/messages.js'
import { parentIdOf, replyStatusOf } from '../protocol/replies.js'
import type { Random, Scheme } from '../schedulers/schemes.js'
import { TaskScheduler, type Task } from '../schedulers/task-scheduler.js'
import { createRouter, type Curve, type Frames, type Router } from '../transport/sockets.js'
import type { TaskChannel, TaskChannelHost } from './task-channel.js'
import { Takeover } from './takeover.js'

/** What the scheduler is told at start. */
export interface SchedulingSettings {
  scheme: Scheme
  /** Most tasks one engine holds at once; 0 = unlimited. */
  hwm: number
  random: Random
  /** How long to wait for late replies from a dead engine before failing its tasks. */
  strandedGraceMs: number
  /** Engine deaths under one task before it fails with PoisonTask. */
  maxEngineDeaths: number
}

/** Most tasks may run anywhere: they share one empty target set. */
const NO_TARGETS: ReadonlySet<string> = new Set()
/** What a client may send on the task channel (ipyparallel's LoadBalancedView sends both). */
const TASK_REQUESTS: ReadonlySet<string> = new Set(['apply_request', 'execute_request'])

/**
 * The task channel of every scheme but `pure`: the client's frames go to the task scheduler, which places them
 * on engines; replies come back through it. The route of a task, top to bottom:
 *
 *   client -> `submitted` -> ledger.submitted -> scheduler.submit -> (waits) -> ledger.assigned -> engine
 *   engine -> `replied` -> scheduler.engineReply -> client, ledger.finished
 *                                               \-> retried elsewhere: ledger.requeued -> ledger.assigned
 *   ends in the controller (timeout, impossible dependency, engine death) -> `fail` -> client, ledger.finished
 */
export class ScheduledTaskChannel implements TaskChannel {
  readonly sockets: { readonly client: Router; readonly engine: Router }
  readonly durable: readonly Router[]
  readonly closedOnStop: readonly Router[]
  readonly description: string
  private lateReplyWarnings: RateLimitedWarnings | undefined
  private host!: TaskChannelHost
  private scheduler!: TaskScheduler
  private takeover!: Takeover
  /** Client identities of queued tasks, one copy per client. */
  private readonly identities = new SharedIdentities()
  /** Strings shared by the headers of queued tasks. */
  private readonly strings = new StringPool()

  constructor(private readonly settings: SchedulingSettings, curve: Curve | undefined) {
    this.sockets = {
      // Mandatory routing tells a reply to a client that is not connected (yet) from one delivered.
      client: createRouter({ routingId: 'task_in', mandatory: true, curve }),
      engine: createRouter({ routingId: TASK_ROUTER, mandatory: true, curve }),
    }
    this.durable = [this.sockets.client, this.sockets.engine]
    this.closedOnStop = this.durable
    this.description = `, hwm ${settings.hwm}`
  }

  open(host: TaskChannelHost): void {
    this.host = host
    const { ledger, io, log } = host
    const { client, engine } = this.sockets
    this.scheduler = new TaskScheduler({
      sendToEngine: (uuid, task, undeliverable) => io.send(engine, [Buffer.from(uuid), ...task.clientIdents, ...task.wire.views()], undeliverable),
      forwardReply: (task, uuid, wire) => {
        // A resubmitted task has no client to answer: its result waits in the records.
        if (task.clientIdents.length > 0) io.send(client, [...task.clientIdents, Buffer.from(uuid), ...wire])
      },
      failTask: (task, ename, evalue, engineUuid) => this.fail(task.clientIdents, task.header, ename, evalue, engineUuid),
      taskAssigned: (task, uuid) => ledger.assigned(task.msgId, uuid),
      taskRequeued: (task, uuid, why) => ledger.requeued(task.msgId, uuid, why),
      clock: host.clock,
      log,
    }, {
      ...this.settings,
      lookupOutcome: (msgId) => ledger.outcomeOf(msgId),
    })
    this.takeover = new Takeover(ledger, host.session, {
      requeue: (msg, idents) => this.accept(idents, msg, host.session.serialize(msg), true),
      toClient: (frames) => io.send(client, frames),
      engineName: (uuid) => host.engineName(uuid),
      log,
    })
    io.loop(client, (frames) => this.submitted(frames))
    io.loop(engine, (frames) => this.replied(frames))
  }

  resubmit(msg: Message): void {
    // No client identity: the reply stops at the records, where the client asks for it (result_request).
    this.accept([], msg, this.host.session.serialize(msg), false)
  }

  engineJoined(uuid: string, language: string): void {
    this.scheduler.addEngine(uuid, language)
  }

  engineLeft(uuid: string): void {
    this.scheduler.removeEngine(uuid)
    this.takeover.engineLeft(uuid)
  }

  adoptUnfinished(restored: ReadonlySet<string>): void {
    this.takeover.adoptUnfinished(restored)
  }

  stop(): void {}

  /** A client submitted a load-balanced task. */
  private submitted(frames: Frames): void {
    const { idents, msg, wire } = this.host.session.deserialize(frames)
    this.accept(idents, msg, wire, false)
  }

  /** Records a load-balanced task and gives it to the scheduler, or refuses it with an error reply. */
  private accept(receivedIdents: Buffer[], received: Message, receivedWire: Buffer[], recorded: boolean): void {
    // A task may wait long in the queue: its frames are kept in one allocation rather than ZeroMQ's nine.
    const wire = new PackedFrames(receivedWire)
    const idents = this.identities.of(receivedIdents)
    // The same in every task of a client; JSON.parse made a copy of each for this one.
    const h = received.header
    h.session = this.strings.of(h.session)
    h.msg_type = this.strings.of(h.msg_type)
    h.username = this.strings.of(h.username)
    const msg = { ...received, buffers: wire.views(wire.length - received.buffers.length) }
    // A TaskMetadata as any client may write it: each field is checked where it is read.
    const md = msg.metadata
    let after: Dependency
    let follow: Dependency
    this.host.ledger.submitted(msg, 'task', undefined, recorded)
    if (!TASK_REQUESTS.has(h.msg_type)) {
      // Not a task (e.g. a replayed IOPub message): without this it would wait for an engine of its language forever.
      this.fail(idents, msg.header, 'ProtocolError', `a ${h.msg_type} message is not a task: the task channel takes ${[...TASK_REQUESTS].join(' and ')}`, undefined)
      return
    }
    try {
      after = Dependency.fromWire(md.after)
      follow = Dependency.fromWire(md.follow)
    } catch (e) {
      this.fail(idents, msg.header, 'InvalidDependency', `bad after/follow metadata: ${(e as Error).message}`, undefined)
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
    this.scheduler.submit(task)
  }

  /** An engine answered a load-balanced task (or, after a controller restart, said which tasks it holds). */
  private replied(frames: Frames): void {
    const { idents, msg, wire } = this.host.session.deserialize(frames)
    const engineUuid = idents[0]?.toString() ?? ''
    if (msg.header.msg_type === TASK_INVENTORY) {
      this.takeover.inventory(engineUuid, new Set(contentOf(msg, TASK_INVENTORY).msg_ids))
      return
    }
    const msgId = parentIdOf(msg) ?? ''
    const status = replyStatusOf(msg)
    const handled = this.scheduler.engineReply(engineUuid, msgId, { status, dependenciesMet: msg.metadata.dependencies_met !== false }, wire)
    if (handled === 'forwarded') this.host.ledger.finished(msg, engineUuid, status !== 'aborted')
    else if (handled === 'unknown' && !this.takeover.replied(engineUuid, msgId, msg, wire)) this.late(engineUuid, msgId, msg)
  }

  /** A reply to a task not pending on that engine, nor an orphan of a restored one: it is never delivered. */
  private late(engineUuid: string, msgId: string, msg: Message): void {
    // An engine sends its last replies again when it sees a controller restart; most are old news.
    if (msg.metadata.resent === true) return
    this.lateReplyWarnings ??= new RateLimitedWarnings(this.host.log, this.host.clock)
    this.lateReplyWarnings.warn(`discarded a late reply to task ${msgId} from engine ${engineUuid}: the task is not pending there (the engine was given up, or the task ended otherwise); it is never delivered`)
  }

  /**
   * The one path for a task that ends here rather than on an engine (invalid or impossible dependency, timeout,
   * engine death): an error reply to its client, if it has one, and to the records.
   */
  private fail(idents: Buffer[], header: Header, ename: string, evalue: string, engineUuid: string | undefined): void {
    const { session, io, ledger } = this.host
    const metadata = engineUuid ? { status: 'error', engine: engineUuid, dependencies_met: true } : {}
    const reply = session.msg(replyTypeOf(header.msg_type), errorContent(ename, evalue), { parent: header, metadata })
    if (idents.length > 0) io.send(this.sockets.client, session.serialize(reply, idents))
    ledger.finished(reply, engineUuid, false)
  }
}
