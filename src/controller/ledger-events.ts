import type { Clock } from '../common/clock.js'
import { RateLimitedWarnings, type Logger } from '../common/log.js'
import type { RequeueReason } from '../schedulers/task-scheduler.js'

/**
 * What the controller tells its observers (a dashboard, a trace file, per-function summaries): one event per step
 * of an engine's or a task's life. Times are milliseconds since the epoch. Events carry ids, not the task itself:
 * a listener that wants the function name at the end keeps it from `task-submitted`, keyed by msg id.
 */
export type ControllerEvent =
  | EngineJoined
  | EngineLeft
  | HeartbeatLost
  | TaskSubmitted
  | TaskAssigned
  | TaskStarted
  | TaskRequeued
  | TaskFinished

export interface EngineJoined {
  type: 'engine-joined'
  time: number
  engineId: number
  engineUuid: string
  language: string
  /** Registered again from the state of the controller this one took over from (`--restore`). */
  restored: boolean
}

export interface EngineLeft {
  type: 'engine-left'
  time: number
  engineId: number
  engineUuid: string
  /** `heartbeat stopped`, `unregistration request`, `engine shut down`. */
  why: string
}

/** The heart monitor gave up on an engine; `engine-left` follows. */
export interface HeartbeatLost {
  type: 'heartbeat-lost'
  time: number
  engineUuid: string
}

export interface TaskSubmitted {
  type: 'task-submitted'
  time: number
  msgId: string
  /** `task`: load-balanced; `mux`: sent by the client to one engine (`engineUuid`). */
  queue: 'task' | 'mux'
  engineUuid: string | undefined
  /** The submitting client's session. */
  client: string
  msgType: string
  /** The function's name when the request is one of ours and names it; undefined for Python's pickled ones. */
  functionName: string | undefined
  /** Bytes of the request's buffers (function and arguments). */
  bytes: number
}

/** A load-balanced task left the queue for an engine. */
export interface TaskAssigned {
  type: 'task-assigned'
  time: number
  msgId: string
  engineUuid: string
}

/**
 * An engine said on IOPub that it began a request. Only requests that ask for busy/idle status say so (Python's
 * client does; ours does not, and its replies carry `started` instead).
 */
export interface TaskStarted {
  type: 'task-started'
  time: number
  msgId: string
}

/** A task left an engine without finishing and waits for another. */
export interface TaskRequeued {
  type: 'task-requeued'
  time: number
  msgId: string
  engineUuid: string
  why: RequeueReason
}

export interface TaskFinished {
  type: 'task-finished'
  time: number
  msgId: string
  /** Where it ran or was last given; undefined when it ended in the controller without an engine. */
  engineUuid: string | undefined
  /** The reply's status: `ok`, `error`, `aborted`. */
  status: string
  /** The error's name when it failed (`ZeroDivisionError`, `TaskTimeout`, `EngineError`, ...). */
  ename: string | undefined
  /** When the engine began it, if the reply says (ms since the epoch). */
  started: number | undefined
  /** When it ended, by the reply's date. */
  completed: number
  /** Bytes of the reply's buffers (the result). */
  bytes: number
}

export type ControllerEventListener = (event: ControllerEvent) => void

/** A plain listener list: emitting to none costs one length check, and callers skip building the event then. */
export class ControllerEvents {
  private readonly listeners: ControllerEventListener[] = []
  private readonly failures: RateLimitedWarnings

  constructor(log: Logger, clock?: Clock) {
    this.failures = new RateLimitedWarnings(log, clock)
  }

  /** Whether anyone listens; emitters build an event only then. */
  get listening(): boolean {
    return this.listeners.length > 0
  }

  /** Adds a listener; the returned function removes it. A listener that throws harms neither the task nor the other listeners. */
  on(listener: ControllerEventListener): () => void {
    this.listeners.push(listener)
    return () => {
      const at = this.listeners.indexOf(listener)
      if (at >= 0) this.listeners.splice(at, 1)
    }
  }

  emit(event: ControllerEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event)
      } catch (e) {
        // An observer's bug must not change what happens to a task.
        this.failures.warn(`a controller event listener failed on ${event.type}: ${(e as Error).message}`)
      }
    }
  }
}
