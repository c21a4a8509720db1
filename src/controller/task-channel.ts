import type { Clock } from '../common/clock.js'
import type { Logger } from '../common/log.js'
import type { Message } from '../protocol/messages.js'
import type { Session } from '../protocol/session.js'
import type { AnySocket, Dealer, Router } from '../transport/sockets.js'
import type { ChannelIo } from './channel-io.js'
import type { TaskLedger } from './task-ledger.js'

/** The part of the controller's socket traffic a task channel uses. */
export type TaskIo = Pick<ChannelIo, 'send' | 'loop'>

/** What a task channel uses of the controller around it. */
export interface TaskChannelHost {
  session: Session
  ledger: TaskLedger
  io: TaskIo
  /** The controller's time and timers (task timeouts, a dead engine's grace period). */
  clock: Clock
  /** How logs name an engine (its id, if registered). */
  engineName(uuid: string): string
  log: Logger
}

/**
 * How load-balanced tasks cross the controller, chosen at start by `--scheme`: through the task scheduler (every
 * scheme function), or through a native ZeroMQ device (`pure`). The controller binds the channel's two sockets,
 * then opens it; it tells the channel about engines; nothing else about tasks differs between the two.
 */
export interface TaskChannel {
  /** The client-facing and the engine-facing socket, to bind. */
  readonly sockets: { readonly client: Router; readonly engine: Router | Dealer }
  /** Of those, the ones whose traffic waits for the records it implies (SQLite store). */
  readonly durable: readonly AnySocket[]
  /** Of those, the ones the controller closes on stop (a native device closes its own). */
  readonly closedOnStop: readonly AnySocket[]
  /** How the ready line describes it, after the scheme name (`, hwm 1`). */
  readonly description: string
  /** Starts moving tasks; the sockets are bound. */
  open(host: TaskChannelHost): void
  /** A task the hub resubmits (resubmit_request): a new task with no client to answer, recorded by the channel. */
  resubmit(msg: Message): void
  engineJoined(uuid: string, language: string): void
  engineLeft(uuid: string): void
  /** `--restore`: takes over the unfinished tasks of the store; `restored` are the engines registered again. */
  adoptUnfinished(restored: ReadonlySet<string>): void
  /** Stops moving tasks (before the controller drains and closes its sockets). */
  stop(): void
}
