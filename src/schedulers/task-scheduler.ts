import type { Logger } from '../common/log.js'
import type { Header } from '../protocol/messages.js'
import { leastload, type Random, type Scheme } from './schemes.js'
import { WaitingQueue } from './waiting-queue.js'

/** A load-balanced task as the scheduler sees it: routing, the untouched frames, and the flags it obeys. */
export interface Task {
  msgId: string
  /** The submitting client's routing frames. */
  clientIdents: Buffer[]
  /** Frames from `<IDS|MSG>` on, forwarded to the engine unchanged (still signed by the client). */
  wire: Buffer[]
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
  setTimer(callback: () => void, ms: number): unknown
  clearTimer(handle: unknown): void
  log: Logger
}

export interface SchedulerOptions {
  scheme: Scheme
  /** Most tasks an engine holds at once; 0 = no limit. */
  hwm: number
  random: Random
  /** How long to wait for replies from an engine that has gone before its tasks are declared lost. */
  strandedGraceMs: number
}

/** The outcome of an engine reply, as far as scheduling is concerned. */
export interface ReplyOutcome {
  /** `ok`, `error`, `aborted`: the reply metadata's `status`. */
  status: string
  /** False when the engine refused the task for an unmet functional dependency. */
  dependenciesMet: boolean
}

interface EngineSlot {
  uuid: string
  language: string
  load: number
  /** Tasks running or queued on that engine. */
  pending: Map<string, Job>
}

interface Job {
  task: Task
  /** Engines this task must not go to again (it failed or was refused there). */
  blacklist: Set<string>
  timer: unknown
}

/**
 * ipyparallel's task scheduler (reference §5): a queue of waiting tasks (by priority, then FIFO), engines kept in least-recently-used
 * order with their loads, a pluggable scheme choosing among the engines that may take the task.
 */
export class TaskScheduler {
  /** Engines in LRU order: index 0 was given a task longest ago. */
  private readonly engines: EngineSlot[] = []
  /** Waiting tasks, by priority then submission order. */
  private readonly waiting = new WaitingQueue<Job>()
  /** Tasks of engines that have gone, until their grace period ends. */
  private readonly stranded = new Map<string, { job: Job; engineUuid: string }>()
  private retryTimer: unknown = undefined

  constructor(private readonly host: SchedulerHost, private readonly options: SchedulerOptions) {}

  get queueLength(): number {
    return this.waiting.size
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
      this.host.setTimer(() => this.loseStranded(ids), this.options.strandedGraceMs)
    }
    // Tasks that may only run on engines that no longer exist can never run.
    for (const job of [...this.waiting.values()]) if (this.cannotEverRun(job)) this.fail(job, 'ImpossibleDependency', 'no engine that the task targets is registered')
  }

  submit(task: Task): void {
    const job: Job = { task, blacklist: new Set(), timer: undefined }
    if (this.cannotEverRun(job)) {
      this.host.failTask(task, 'ImpossibleDependency', `none of the targeted engines is registered: ${[...task.targets].join(', ')}`)
      return
    }
    if (!this.place(job)) this.enqueue(job)
  }

  /** An engine answered a task. Returns true when the reply was forwarded to the client. */
  engineReply(engineUuid: string, msgId: string, outcome: ReplyOutcome, replyWire: Buffer[]): boolean {
    const slot = this.engines.find((e) => e.uuid === engineUuid)
    let job = slot?.pending.get(msgId)
    if (slot && job) {
      slot.pending.delete(msgId)
      slot.load--
    } else {
      job = this.stranded.get(msgId)?.job
      this.stranded.delete(msgId)
    }
    if (!job) {
      this.host.log.debug(`dropping a reply to ${msgId} from ${engineUuid}: no such task is pending there`)
      return false
    }
    let forwarded = false
    if (!outcome.dependenciesMet) {
      this.retryElsewhere(job, engineUuid)
    } else if (outcome.status !== 'ok' && job.task.retries > 0) {
      job.task.retries--
      this.retryElsewhere(job, engineUuid)
    } else {
      this.host.forwardReply(job.task, engineUuid, replyWire)
      forwarded = true
    }
    this.drain()
    return forwarded
  }

  /** Places waiting tasks, highest priority and oldest first, while any engine has room. */
  drain(): void {
    for (const job of this.waiting.values()) {
      if (!this.anyRoom()) return
      if (this.place(job)) {
        this.waiting.delete(job.task.msgId)
        if (job.timer !== undefined) this.host.clearTimer(job.timer)
      }
    }
  }

  /** Loads by engine uuid, for queue status and tests. */
  loads(): Map<string, number> {
    return new Map(this.engines.map((e) => [e.uuid, e.load]))
  }

  private anyRoom(): boolean {
    return this.options.hwm === 0 || this.engines.some((e) => e.load < this.options.hwm)
  }

  private place(job: Job): boolean {
    const { task } = job
    const hwm = this.options.hwm
    const candidates: number[] = []
    for (let i = 0; i < this.engines.length; i++) {
      const e = this.engines[i] as EngineSlot
      if ((hwm === 0 || e.load < hwm) && e.language === task.language && !job.blacklist.has(e.uuid) && (task.targets.size === 0 || task.targets.has(e.uuid))) {
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
    this.waiting.add(job.task.msgId, job.task.priority, job)
    if (this.retryTimer === undefined) {
      this.retryTimer = this.host.setTimer(() => {
        this.retryTimer = undefined
        this.drain()
      }, 50)
    }
  }

  private enqueue(job: Job): void {
    this.waiting.add(job.task.msgId, job.task.priority, job)
    if (job.task.timeoutMs !== undefined && job.timer === undefined) {
      job.timer = this.host.setTimer(() => {
        if (this.waiting.has(job.task.msgId)) this.fail(job, 'TaskTimeout', `task waited ${job.task.timeoutMs} ms without being placed`)
      }, job.task.timeoutMs)
    }
  }

  private retryElsewhere(job: Job, engineUuid: string): void {
    job.blacklist.add(engineUuid)
    if (this.cannotEverRun(job)) {
      this.fail(job, 'ImpossibleDependency', 'the task failed or was refused on every engine it may run on')
    } else if (!this.place(job)) {
      this.enqueue(job)
    }
  }

  /** True when the task targets engines and none of them (less the blacklist) is registered. */
  private cannotEverRun(job: Job): boolean {
    const { targets } = job.task
    if (targets.size === 0) return false
    return !this.engines.some((e) => targets.has(e.uuid) && !job.blacklist.has(e.uuid))
  }

  private loseStranded(msgIds: string[]): void {
    for (const msgId of msgIds) {
      const entry = this.stranded.get(msgId)
      if (!entry) continue
      this.stranded.delete(msgId)
      const { job, engineUuid } = entry
      if (job.task.retries > 0) {
        job.task.retries--
        this.retryElsewhere(job, engineUuid)
      } else {
        this.host.failTask(job.task, 'EngineError', `Engine ${engineUuid} died while running task ${msgId}`, engineUuid)
      }
    }
    this.drain()
  }

  /** The one path for a task that ends here rather than on an engine. */
  private fail(job: Job, ename: string, evalue: string): void {
    this.waiting.delete(job.task.msgId)
    if (job.timer !== undefined) this.host.clearTimer(job.timer)
    this.host.failTask(job.task, ename, evalue)
  }
}
