import { realClock, type Clock } from '../common/clock.js'
import { StoreKeyError } from '../common/errors.js'
import type { Logger } from '../common/log.js'
import { contentIfValid } from '../protocol/content-readers.js'
import { wireDate } from '../protocol/dates.js'
import type { Message } from '../protocol/messages.js'
import { engineUuidOf, parentIdOf, replyDates, replyOutcome } from '../protocol/replies.js'
import type { RequeueReason } from '../schedulers/task-scheduler.js'
import { ControllerEvents } from './ledger-events.js'
import { emptyRecord, type TaskRecord, type TaskStore } from './store/index.js'

/** An engine as the ledger and its observers know it. */
export interface LedgerEngine {
  id: number
  uuid: string
  language: string
}

/** What one engine holds, as queue_status reports it. */
export interface EngineQueues {
  /** Direct (mux) requests sent to the engine and not answered. */
  readonly queue: ReadonlySet<string>
  /** Load-balanced tasks assigned to the engine and not answered. */
  readonly tasks: ReadonlySet<string>
  /** How many requests the engine has answered (their ids are in the task store, as long as it keeps them). */
  readonly completed: number
}

interface Queues {
  queue: Set<string>
  tasks: Set<string>
  completed: number
}

/** How many requests' output is kept at hand at once (each entry lives until its engine reports idle). */
const MAX_OPEN_STREAMS = 10_000

/**
 * The one writer of a task's state in the controller: every step of a request's life (submitted, assigned,
 * re-queued, ended, its output) goes through here, which keeps in one place what used to be updated in pairs:
 * which requests are in flight, what each engine holds (queue_status), and the record in the task store. Each step
 * is also told to the listeners of `events`. Which requests are in flight is kept here, not in the store, so a
 * store that keeps nothing (`--db=none`) still answers "pending".
 */
export class TaskLedger {
  readonly events: ControllerEvents
  private readonly pending = new Set<string>()
  private readonly waiting = new Set<string>()
  private readonly engines = new Map<string, Queues>()
  /**
   * Output so far of requests whose engine has not reported idle yet, so a stream message appends without
   * reading the record back. Bounded: the oldest entries go first.
   */
  private readonly streams = new Map<string, { stdout: string; stderr: string }>()

  /** `clock` gives the events' times (wall clock). */
  constructor(readonly store: TaskStore, private readonly log: Logger, private readonly clock: Clock = realClock) {
    this.events = new ControllerEvents(log, clock)
  }

  // Engines.

  engineJoined(engine: LedgerEngine, restored: boolean): void {
    this.engines.set(engine.uuid, { queue: new Set(), tasks: new Set(), completed: 0 })
    if (this.events.listening) this.events.emit({ type: 'engine-joined', time: this.clock.now(), engineId: engine.id, engineUuid: engine.uuid, language: engine.language, restored })
  }

  /** An engine is gone; returns the direct (mux) requests it had not answered. */
  engineLeft(engine: LedgerEngine, why: string): string[] {
    const direct = [...(this.engines.get(engine.uuid)?.queue ?? [])]
    this.engines.delete(engine.uuid)
    if (this.events.listening) this.events.emit({ type: 'engine-left', time: this.clock.now(), engineId: engine.id, engineUuid: engine.uuid, why })
    return direct
  }

  heartbeatLost(engineUuid: string): void {
    if (this.events.listening) this.events.emit({ type: 'heartbeat-lost', time: this.clock.now(), engineUuid })
  }

  // Requests.

  /**
   * A client's request entered the controller: on the task channel, or on mux to `engineUuid`. `recorded`: its
   * record is already in the store (a task the controller this one restored had accepted).
   */
  submitted(msg: Message, queue: 'task' | 'mux', engineUuid?: string, recorded = false): void {
    const header = msg.header
    const msgId = header.msg_id
    this.pending.add(msgId)
    if (queue === 'mux') {
      if (engineUuid !== undefined) this.engines.get(engineUuid)?.queue.add(msgId)
    } else {
      this.waiting.add(msgId)
    }
    if (!recorded) {
      const record = {
        ...emptyRecord(msgId),
        header, metadata: msg.metadata, content: msg.content, buffers: msg.buffers,
        submitted: wireDate(header.date) ?? null, client_uuid: header.session, engine_uuid: engineUuid ?? null, queue,
      }
      this.write(msgId, () => this.store.addRecord(record))
    }
    if (this.events.listening) {
      this.events.emit({
        type: 'task-submitted', time: this.clock.now(), msgId, queue, engineUuid, client: header.session, msgType: header.msg_type,
        functionName: functionNameOf(msg.buffers), bytes: byteLength(msg.buffers),
      })
    }
  }

  /** A request the controller this one restored had accepted and not finished: it is in flight again, unrecorded here. */
  adopted(msgId: string): void {
    this.pending.add(msgId)
  }

  /** A load-balanced task left the queue for an engine. */
  assigned(msgId: string, engineUuid: string): void {
    this.waiting.delete(msgId)
    this.forgetOnEngines(msgId)
    this.engines.get(engineUuid)?.tasks.add(msgId)
    this.write(msgId, () => this.store.updateRecord(msgId, { engine_uuid: engineUuid }))
    if (this.events.listening) this.events.emit({ type: 'task-assigned', time: this.clock.now(), msgId, engineUuid })
  }

  /** A load-balanced task left `engineUuid` unfinished and waits to be given to another. */
  requeued(msgId: string, engineUuid: string, why: RequeueReason): void {
    this.engines.get(engineUuid)?.tasks.delete(msgId)
    this.waiting.add(msgId)
    if (this.events.listening) this.events.emit({ type: 'task-requeued', time: this.clock.now(), msgId, engineUuid, why })
  }

  /**
   * A request ended with `reply`: an engine's, or an error reply the controller made. `engineUuid` is where it
   * ran (undefined: it ended in the controller, and no engine holds it any more); `countAsCompleted` adds it to
   * that engine's completed count.
   */
  finished(reply: Message, engineUuid: string | undefined, countAsCompleted: boolean): void {
    const msgId = parentIdOf(reply)
    if (msgId === undefined) return
    this.pending.delete(msgId)
    this.waiting.delete(msgId)
    if (engineUuid === undefined) {
      this.forgetOnEngines(msgId)
    } else {
      const q = this.engines.get(engineUuid)
      if (q && (q.tasks.delete(msgId) || q.queue.delete(msgId)) && countAsCompleted) q.completed++
    }
    const engine = engineUuidOf(reply) ?? engineUuid
    const dates = replyDates(reply)
    const started = dates.started ?? null
    const completed = dates.completed ?? new Date()
    const changes: Partial<TaskRecord> = {
      result_header: reply.header, result_metadata: reply.metadata, result_content: reply.content,
      // ipyparallel's clients read result frames from a result_reply only for an apply_reply: frames kept for an
      // execute_reply (ours carry its value) would be taken for the next task's result.
      result_buffers: reply.header.msg_type === 'execute_reply' ? [] : reply.buffers, started, completed, received: new Date(),
      ...(engine !== undefined ? { engine_uuid: engine } : {}),
    }
    this.write(msgId, () => this.store.updateRecord(msgId, changes))
    if (this.events.listening) {
      const outcome = replyOutcome(reply.content)
      this.events.emit({
        type: 'task-finished', time: this.clock.now(), msgId, engineUuid: engine, status: outcome.status,
        ename: outcome.status === 'error' ? outcome.error.ename : undefined,
        started: started?.getTime(), completed: completed.getTime(), bytes: byteLength(reply.buffers),
      })
    }
  }

  /** A recorded request was resubmitted under a new msg id. */
  resubmitted(msgId: string, renewedId: string): void {
    this.write(msgId, () => this.store.updateRecord(msgId, { resubmitted: renewedId }))
  }

  /** An IOPub message from an engine: output of the request named by its parent header. */
  output(msg: Message): void {
    const msgId = parentIdOf(msg)
    if (msgId === undefined) return
    const content = msg.content
    let changes: Partial<TaskRecord>
    // Output is only watched here (the iopub relay has passed it on already): what cannot be read is not recorded.
    switch (msg.header.msg_type) {
      case 'stream': {
        const stream = contentIfValid(msg, 'stream')
        if (!stream) return
        const so = this.streamsOf(msgId)
        if (!so) return
        so[stream.name] += stream.text
        changes = { [stream.name]: so[stream.name] }
        break
      }
      case 'status': {
        const state = contentIfValid(msg, 'status')?.execution_state
        if (state === 'idle') this.streams.delete(msgId)
        else if (state === 'busy' && this.events.listening && this.pending.has(msgId)) this.events.emit({ type: 'task-started', time: this.clock.now(), msgId })
        return
      }
      case 'error':
        changes = { error: content }
        break
      case 'execute_input': {
        const input = contentIfValid(msg, 'execute_input')
        if (!input) return
        changes = { execute_input: input.code }
        break
      }
      case 'execute_result':
        changes = { execute_result: content }
        break
      default:
        return
    }
    // Output of a request this controller never saw (another controller's, say) is not worth a record.
    if (!this.store.hasRecord(msgId)) return
    this.write(msgId, () => this.store.updateRecord(msgId, changes))
  }

  // Reads.

  /** Whether a request is in flight (submitted, not answered). */
  isPending(msgId: string): boolean {
    return this.pending.has(msgId)
  }

  /** Load-balanced tasks not given to an engine (yet, or again). */
  get unassigned(): ReadonlySet<string> {
    return this.waiting
  }

  /** What a registered engine holds; undefined for one the ledger does not know. */
  queuesOf(engineUuid: string): EngineQueues | undefined {
    return this.engines.get(engineUuid)
  }

  /** How a finished request ended, for dependencies on tasks the scheduler no longer remembers. */
  outcomeOf(msgId: string): { ok: boolean; engineUuid: string | undefined } | undefined {
    try {
      if (this.pending.has(msgId) || !this.store.hasRecord(msgId)) return undefined
      const record = this.store.getRecord(msgId)
      if (record.completed === null) return undefined
      return { ok: record.result_content?.status === 'ok', engineUuid: record.engine_uuid ?? undefined }
    } catch {
      return undefined
    }
  }

  /** A task moves between engines when retried: no engine but its latest holds it. */
  private forgetOnEngines(msgId: string): void {
    for (const q of this.engines.values()) q.tasks.delete(msgId)
  }

  /** The output accumulated for a request, read from its record the first time; undefined if there is none. */
  private streamsOf(msgId: string): { stdout: string; stderr: string } | undefined {
    let so = this.streams.get(msgId)
    if (so) return so
    if (!this.store.hasRecord(msgId)) return undefined
    const record = this.store.getRecord(msgId)
    so = { stdout: record.stdout, stderr: record.stderr }
    this.streams.set(msgId, so)
    if (this.streams.size > MAX_OPEN_STREAMS) {
      const oldest = this.streams.keys().next().value
      if (oldest !== undefined) this.streams.delete(oldest)
    }
    return so
  }

  private write(msgId: string, action: () => void): void {
    try {
      action()
    } catch (e) {
      // A culled or purged record, or a store that keeps nothing: the task itself is unaffected.
      if (!(e instanceof StoreKeyError)) this.log.warn(`task store: could not record ${msgId}: ${(e as Error).message}`)
    }
  }
}

function byteLength(buffers: readonly Buffer[]): number {
  let n = 0
  for (const b of buffers) n += b.length
  return n
}

/** The name in one of our function descriptors (buffer 0 of our apply_request; docs/protocol.md), if it is one. */
export function functionNameOf(buffers: readonly Buffer[]): string | undefined {
  const first = buffers[0]
  // A JSON object; Python's requests start with a pickle.
  if (!first || first[0] !== 0x7b) return undefined
  try {
    return nameIn(JSON.parse(first.toString('utf8')))
  } catch {
    return undefined
  }
}

function nameIn(descriptor: unknown): string | undefined {
  if (typeof descriptor !== 'object' || descriptor === null) return undefined
  const d = descriptor as { kind?: unknown; name?: unknown; export?: unknown; path?: unknown; fn?: unknown }
  switch (d.kind) {
    case 'source': return typeof d.name === 'string' && d.name !== '' ? d.name : undefined
    case 'module': return typeof d.export === 'string' ? d.export : undefined
    case 'global': return typeof d.path === 'string' ? d.path : undefined
    case 'dependent':
    case 'requires': return nameIn(d.fn)
    default: return undefined
  }
}
