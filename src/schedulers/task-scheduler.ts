import type { Clock, TimerHandle } from '../common/clock.js'
import { Dependency } from '../common/dependency.js'
import type { Logger } from '../common/log.js'
import type { PackedFrames } from '../protocol/frames.js'
import type { Header } from '../protocol/messages.js'
import { leastload, type Random, type Scheme } from './schemes.js'
import { TaskOutcomes, type OutcomeLookup } from './outcomes.js'
import { WaitingQueue } from './waiting-queue.js'

/** A load-balanced task as the scheduler sees it: routing, the untouched frames, and the flags it obeys. */
export interface Task {
  msgId: string
  /** The submitting client's routing frames. */
  clientIdents: Buffer[]
  /** Frames from `<IDS|MSG>` on, forwarded to the engine unchanged (still signed by the client), packed. */
  wire: PackedFrames
  header: Header
  /** `javascript`, `python`, ...: the task runs only on an engine of this language. */
  language: string
  /** Engine uuids allowed to run it; empty = any. */
  targets: ReadonlySet<string>
  /** How many more times a failed run may be retried on another engine. */
  retries: number
  /** How long it may wait in the scheduler before failing with TaskTimeout; undefined = forever. */
  timeoutMs: number | undefined
  /** Among waiting tasks, higher priorities are placed first; equal ones in submission order. */
  priority: number
  /** Time dependency: placed only once this is met by tasks finished anywhere. */
  after: Dependency
  /** Location dependency: placed only on an engine where this is met by the tasks finished there. */
  follow: Dependency
}

/**
 * What a scheduler may do to the world: no sockets, only these. The controller implements it; tests use fakes.
 */
export interface SchedulerHost {
  /** Hand a task to an engine; `undeliverable` is called if the engine cannot be reached. */
  sendToEngine(engineUuid: string, task: Task, undeliverable: () => void): void
  /** Pass an engine's reply (frames from the delimiter on) back to the task's client. */
  forwardReply(task: Task, engineUuid: string, replyWire: Buffer[]): void
  /** End a task with an error reply made here (TaskTimeout, ImpossibleDependency, EngineError). */
  failTask(task: Task, ename: string, evalue: string, engineUuid?: string): void
  /** The task left the queue for an engine (the hub's `task_destination`). */
  taskAssigned(task: Task, engineUuid: string): void
  /** The task left an engine unfinished and waits for another (told before it is assigned again). */
  taskRequeued(task: Task, engineUuid: string, why: RequeueReason): void
  /** Timers for task timeouts, the grace period of a dead engine's tasks, and retries of undeliverable tasks. */
  clock: Clock
  log: Logger
}

export interface SchedulerOptions {
  scheme: Scheme
  /** Most tasks an engine holds at once; 0 = no limit. */
  hwm: number
  random: Random
  /** How long to wait for replies from an engine that has gone before its tasks are declared lost. */
  strandedGraceMs: number
  /**
   * A task that was running on this many engines when they died is given up with a PoisonTask error, whatever
   * retries it has left: it is most likely what kills them. Default 3.
   */
  maxEngineDeaths?: number
  /** How tasks the scheduler no longer remembers ended (the task store); default: unknown. */
  lookupOutcome?: OutcomeLookup
}

/**
 * Why a task left an engine unfinished: `failed` there with retries left; `refused` for an unmet functional
 * dependency; the engine was `undeliverable`; or the engine died under it (`engine-lost`) with retries left.
 */
export type RequeueReason = 'failed' | 'refused' | 'undeliverable' | 'engine-lost'

/** The outcome of an engine reply, as far as scheduling is concerned. */
export interface ReplyOutcome {
  /** `ok`, `error`, `aborted`: the reply metadata's `status`. */
  status: string
  /** False when the engine refused the task for an unmet functional dependency. */
  dependenciesMet: boolean
}

/**
 * What became of an engine reply: sent on to the client, run again elsewhere (a failure with retries left, or an
 * unmet functional dependency), or `unknown` when the task is not pending on that engine.
 */
export type ReplyHandling = 'forwarded' | 'retried' | 'unknown'

interface EngineSlot {
  uuid: string
  language: string
  load: number
  /** Tasks running or queued on that engine. */
  pending: Map<string, Job>
}

interface Job {
  task: Task
  /** Engines this task must not go to again (it failed or was refused there); made at the first. */
  blacklist: Set<string> | undefined
  timer: TimerHandle | undefined
  /** Engines that died while running this task; made at the first. (A queued job costs what it holds.) */
  deaths: string[] | undefined
}

/**
 * ipyparallel's task scheduler (docs/wire-protocol.md, 'The task scheduler'): a queue of waiting tasks (by priority,
 * then FIFO), engines kept in least-recently-used order with their loads, a pluggable scheme choosing among the
 * engines that may take the task.
 */
export class TaskScheduler {
  /** Engines in LRU order: index 0 was given a task longest ago. */
  private readonly engines: EngineSlot[] = []
  /**
   * Tasks ready to be placed, one queue per language (by priority, then submission order), so an engine with
   * room is never offered the tasks it could not take anyway.
   */
  private readonly waiting = new Map<string, WaitingQueue<Job>>()
  /** Tasks whose `after` dependency is not met yet: they wait in the graph, not in a queue. */
  private readonly blocked = new Map<string, Job>()
  /** Tasks of engines that have gone, until their grace period ends. */
  private readonly stranded = new Map<string, { job: Job; engineUuid: string }>()
  private retryTimer: TimerHandle | undefined = undefined
  /** Tasks held now and how recent ones ended, for dependencies; bounded (see TaskOutcomes). */
  private readonly outcomes: TaskOutcomes
  /** Waiting tasks by each msg id they depend on and that has not finished. */
  private readonly graph = new Map<string, Set<Job>>()

  constructor(private readonly host: SchedulerHost, private readonly options: SchedulerOptions) {
    this.outcomes = new TaskOutcomes(options.lookupOutcome)
  }

  get queueLength(): number {
    let size = this.blocked.size
    for (const queue of this.waiting.values()) size += queue.size
    return size
  }

  addEngine(uuid: string, language: string): void {
    if (this.engines.some((e) => e.uuid === uuid)) return
    this.engines.unshift({ uuid, language, load: 0, pending: new Map() })
    this.drain()
  }

  /** An engine has gone: after the grace period its unfinished tasks are retried elsewhere or fail. */
  removeEngine(uuid: string): void {
    const at = this.engines.findIndex((e) => e.uuid === uuid)
    if (at < 0) return
    const [slot] = this.engines.splice(at, 1) as [EngineSlot]
    for (const job of slot.pending.values()) this.stranded.set(job.task.msgId, { job, engineUuid: uuid })
    if (slot.pending.size > 0) {
      const ids = [...slot.pending.keys()]
      this.host.clock.setTimeout(() => this.loseStranded(ids), this.options.strandedGraceMs)
    }
    // Tasks that may only run on engines that no longer exist can never run.
    for (const job of this.queued()) {
      const why = this.impossible(job)
      if (why) this.fail(job, 'ImpossibleDependency', why)
    }
    this.drain() // failures may have released tasks that wait on them
  }

  submit(task: Task): void {
    const job: Job = { task, blacklist: undefined, timer: undefined, deaths: undefined }
    this.outcomes.accepted(task.msgId)
    for (const [name, dep] of [['after', task.after], ['follow', task.follow]] as const) {
      const unknown = dep.dependencies.find((id) => id === task.msgId || !this.outcomes.known(id))
      if (unknown !== undefined) {
        const what = unknown === task.msgId ? 'the task itself' : `${unknown}, a task this scheduler has not been given`
        this.fail(job, 'InvalidDependency', `${name} names ${what}`)
        return
      }
    }
    const why = this.impossible(job)
    if (why) {
      this.fail(job, 'ImpossibleDependency', why)
      return
    }
    if (!this.place(job)) this.enqueue(job)
  }

  /** An engine answered a task; says what became of the reply. */
  engineReply(engineUuid: string, msgId: string, outcome: ReplyOutcome, replyWire: Buffer[]): ReplyHandling {
    const slot = this.engines.find((e) => e.uuid === engineUuid)
    let job = slot?.pending.get(msgId)
    if (slot && job) {
      slot.pending.delete(msgId)
      slot.load--
    } else {
      job = this.stranded.get(msgId)?.job
      this.stranded.delete(msgId)
    }
    // Not pending there: the caller decides (a restored controller's orphan, or a late reply to discard).
    if (!job) return 'unknown'
    let handled: ReplyHandling = 'retried'
    if (!outcome.dependenciesMet) {
      this.retryElsewhere(job, engineUuid, 'refused')
    } else if (outcome.status !== 'ok' && job.task.retries > 0) {
      job.task.retries--
      this.retryElsewhere(job, engineUuid, 'failed')
    } else {
      this.host.forwardReply(job.task, engineUuid, replyWire)
      handled = 'forwarded'
      this.finished(msgId, engineUuid, outcome.status === 'ok')
    }
    this.drain()
    return handled
  }

  /** Places waiting tasks, highest priority and oldest first, while any engine has room. */
  drain(): void {
    for (const [language, queue] of this.waiting) {
      for (const job of queue.values()) {
        if (!this.roomFor(language)) break
        if (this.place(job)) {
          queue.delete(job.task.msgId)
          this.stopTimer(job)
        }
      }
      if (queue.size === 0) this.waiting.delete(language)
    }
  }

  private roomFor(language: string): boolean {
    const hwm = this.options.hwm
    return this.engines.some((e) => e.language === language && (hwm === 0 || e.load < hwm))
  }

  /** Every task waiting here, ready or blocked. */
  private queued(): Job[] {
    return [...this.blocked.values(), ...[...this.waiting.values()].flatMap((q) => [...q.values()])]
  }

  private isQueued(job: Job): boolean {
    return this.blocked.has(job.task.msgId) || (this.waiting.get(job.task.language)?.has(job.task.msgId) ?? false)
  }

  /** Takes a task out of whichever queue holds it. */
  private dequeue(job: Job): void {
    const id = job.task.msgId
    if (this.blocked.delete(id)) return
    const queue = this.waiting.get(job.task.language)
    if (queue?.delete(id) && queue.size === 0) this.waiting.delete(job.task.language)
  }

  /** A ready task joins its language's queue. */
  private ready(job: Job): void {
    let queue = this.waiting.get(job.task.language)
    if (!queue) this.waiting.set(job.task.language, (queue = new WaitingQueue()))
    queue.add(job.task.msgId, job.task.priority, job)
  }

  private place(job: Job): boolean {
    const { task } = job
    if (!task.after.met(this.outcomes.completed, this.outcomes.failed)) return false
    const hwm = this.options.hwm
    const candidates: number[] = []
    for (let i = 0; i < this.engines.length; i++) {
      const e = this.engines[i] as EngineSlot
      if ((hwm === 0 || e.load < hwm) && e.language === task.language && !job.blacklist?.has(e.uuid) && (task.targets.size === 0 || task.targets.has(e.uuid)) && this.followMet(task, e.uuid)) {
        candidates.push(i)
      }
    }
    if (candidates.length === 0) return false
    const pick = this.pick(candidates.map((i) => (this.engines[i] as EngineSlot).load))
    // A scheme returning an index out of range falls back to the first candidate.
    const index = candidates[pick] ?? candidates[0]
    if (index === undefined) return false
    const [slot] = this.engines.splice(index, 1) as [EngineSlot]
    this.engines.push(slot) // now the most recently used
    slot.load++
    slot.pending.set(task.msgId, job)
    this.host.taskAssigned(task, slot.uuid)
    this.host.sendToEngine(slot.uuid, task, () => this.undeliverable(slot, job))
    return true
  }

  private followMet(task: Task, engineUuid: string): boolean {
    if (task.follow.empty) return true
    const there = this.outcomes.on(engineUuid)
    return task.follow.met(there.completed, there.failed)
  }

  /** The scheme's choice; a scheme that throws (a plugin's bug) must not lose the task, so leastload stands in. */
  private pick(loads: number[]): number {
    try {
      return this.options.scheme(loads, this.options.random)
    } catch (e) {
      this.host.log.error(`the scheduling scheme failed (${(e as Error).message}); using leastload for this task`)
      return leastload(loads, this.options.random)
    }
  }

  /** The engine's connection is not up yet (or is gone): take the task back and try again shortly. */
  private undeliverable(slot: EngineSlot, job: Job): void {
    if (!slot.pending.delete(job.task.msgId)) return
    slot.load--
    this.host.log.debug(`engine ${slot.uuid} is not reachable yet; task ${job.task.msgId} goes back to the queue`)
    this.host.taskRequeued(job.task, slot.uuid, 'undeliverable')
    this.enqueue(job)
    if (this.retryTimer === undefined) {
      this.retryTimer = this.host.clock.setTimeout(() => {
        this.retryTimer = undefined
        this.drain()
      }, 50)
    }
  }

  /** A job leaving the queue takes its timeout timer with it; a later wait arms a fresh one. */
  private stopTimer(job: Job): void {
    if (job.timer !== undefined) this.host.clock.clearTimeout(job.timer)
    job.timer = undefined
  }

  private enqueue(job: Job): void {
    if (job.task.after.met(this.outcomes.completed, this.outcomes.failed)) this.ready(job)
    else this.blocked.set(job.task.msgId, job)
    for (const id of [...job.task.after.dependencies, ...job.task.follow.dependencies]) {
      if (this.outcomes.outcome(id) !== undefined) continue
      let waiters = this.graph.get(id)
      if (!waiters) this.graph.set(id, (waiters = new Set()))
      waiters.add(job)
    }
    if (job.task.timeoutMs !== undefined && job.timer === undefined) {
      job.timer = this.host.clock.setTimeout(() => {
        if (!this.isQueued(job)) return
        const refused = job.blacklist && job.blacklist.size > 0 ? `; refused (unmet dependency or failure) by ${job.blacklist.size} engine(s): ${[...job.blacklist].join(', ')}` : ''
        this.fail(job, 'TaskTimeout', `task waited ${job.task.timeoutMs} ms without being placed${refused}`)
        this.drain() // a task that counts failures of this one may run now
      }, job.task.timeoutMs)
    }
  }

  private retryElsewhere(job: Job, engineUuid: string, reason: RequeueReason): void {
    ;(job.blacklist ??= new Set()).add(engineUuid)
    this.host.taskRequeued(job.task, engineUuid, reason)
    const why = this.impossible(job)
    if (why) {
      this.fail(job, 'ImpossibleDependency', `${why} (the task failed or was refused on ${engineUuid})`)
    } else if (!this.place(job)) {
      this.enqueue(job)
    }
  }

  /** Why the task can never run, or undefined while it still may. */
  private impossible(job: Job): string | undefined {
    const { targets, after, follow } = job.task
    if (targets.size > 0 && !this.engines.some((e) => targets.has(e.uuid) && !job.blacklist?.has(e.uuid))) {
      return `none of the engines the task targets is registered and untried: ${[...targets].join(', ')}`
    }
    const { completed, failed } = this.outcomes
    if (after.unreachable(completed, failed)) return 'its after dependency can no longer be met'
    if (follow.empty) return undefined
    if (follow.unreachable(completed, failed)) return 'its follow dependency can no longer be met'
    // Where the counted follow tasks ran: follow-all needs them on one engine, and that engine must still exist.
    const counted = follow.dependencies.filter((id) => (follow.success && completed.has(id)) || (follow.failure && failed.has(id)))
    const where = new Set(counted.map((id) => this.outcomes.outcome(id)?.engineUuid))
    const registered = [...where].filter((uuid) => this.engines.some((e) => e.uuid === uuid))
    if (follow.all && where.size > 1) return 'the tasks it follows ran on different engines'
    if (follow.all && where.size === 1 && registered.length === 0) return 'the engine it follows has gone'
    const allDone = follow.dependencies.every((id) => this.outcomes.outcome(id) !== undefined)
    if (!follow.all && allDone && registered.length === 0) return 'every engine it could follow has gone'
    return undefined
  }

  /** A task ended (on an engine, or here): record it, and settle or wake the tasks that wait on it. */
  private finished(msgId: string, engineUuid: string | undefined, success: boolean): void {
    this.outcomes.finishedTask(msgId, success, engineUuid)
    const waiters = this.graph.get(msgId)
    if (!waiters) return
    this.graph.delete(msgId)
    for (const job of waiters) {
      if (!this.isQueued(job)) continue
      const why = this.impossible(job)
      if (why) {
        this.fail(job, 'ImpossibleDependency', why)
      } else if (this.blocked.has(job.task.msgId) && job.task.after.met(this.outcomes.completed, this.outcomes.failed)) {
        this.blocked.delete(job.task.msgId)
        this.ready(job)
      }
    }
  }

  private loseStranded(msgIds: string[]): void {
    for (const msgId of msgIds) {
      const entry = this.stranded.get(msgId)
      if (!entry) continue
      this.stranded.delete(msgId)
      const { job, engineUuid } = entry
      const deaths = (job.deaths ??= [])
      deaths.push(engineUuid)
      const most = this.options.maxEngineDeaths ?? 3
      if (deaths.length >= most) {
        this.fail(job, 'PoisonTask', `task ${msgId} was running on ${most} engines that died (${deaths.join(', ')}); given up so that it kills no more`, engineUuid)
      } else if (job.task.retries > 0) {
        job.task.retries--
        this.retryElsewhere(job, engineUuid, 'engine-lost')
      } else {
        this.fail(job, 'EngineError', `Engine ${engineUuid} died while running task ${msgId}`, engineUuid)
      }
    }
    this.drain()
  }

  /** The one path for a task that ends here rather than on an engine: error reply, records, dependents. */
  private fail(job: Job, ename: string, evalue: string, engineUuid?: string): void {
    this.dequeue(job)
    this.stopTimer(job)
    this.host.failTask(job.task, ename, evalue, engineUuid)
    this.finished(job.task.msgId, undefined, false)
  }
}
