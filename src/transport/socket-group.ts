import type { Clock } from '../common/clock.js'
import { JsParallelError } from '../common/errors.js'
import { RateLimitedWarnings, type Logger } from '../common/log.js'
import { Outbox, receiveLoop, type AnySocket, type Dealer, type Frames, type Publisher, type Router, type Subscriber } from './sockets.js'

/** A send or a receive loop asked of a socket group that has closed its sockets. */
export class SocketClosedError extends JsParallelError {}

export type Sending = Router | Dealer | Publisher
export type Receiving = Router | Dealer | Subscriber

export interface SocketGroupOptions {
  log: Logger
  /**
   * The longest `close()` waits, in ms, for queued sends to be handed to ZeroMQ (a shutdown reply, say) before it
   * closes the sockets anyway: a peer that is gone must not hold a process up. 0 closes at once.
   */
  drainMs: number
  /**
   * Linger, in ms, set on every socket just before it closes: how long ZeroMQ may go on delivering what it already
   * holds. Default 0, the factories' no linger: what is still in ZeroMQ's queues is discarded.
   */
  lingerOnCloseMs?: number
  /**
   * How the warnings about dropped messages are rate-limited (5 lines per 10 s): `per-socket` (the default), so
   * that a flood on one socket does not hide drops on another, or `shared` by the whole group, for a process whose
   * log must stay short however many of its sockets are flooded.
   */
  dropWarnings?: 'per-socket' | 'shared'
  /** Whether `close()` logs how many messages were dropped, by socket, if any were. Default true. */
  dropSummaryOnClose?: boolean
  /**
   * The clock of the drop warnings' rate limit (default the real one). The drain in `close()` keeps Node's own
   * timer: a part's clock may cancel its timers as it stops, and the drain must end whatever happens.
   */
  clock?: Clock
}

/** What to do when ZeroMQ refuses one message (an unknown peer on a ROUTER with `mandatory`). */
export type SendErrorHandler = (error: unknown, frames: Frames) => void

interface Member {
  name: string
  outbox: Outbox | undefined
  onSendError: SendErrorHandler
  receiving: boolean
}

/**
 * The sockets of one process part (a controller, an engine, a client connection), each under a name: one send
 * queue per socket (zeromq.js allows one send in flight; a busy socket never delays another, so a heartbeat echo
 * does not wait behind task replies), one receive loop per socket whose handler is contained (a handler that throws
 * or rejects counts as a dropped message, logged rate-limited per socket, and the loop goes on), and one `close()`
 * that drains with a bounded wait, then closes every socket once.
 */
export class SocketGroup {
  private readonly members = new Map<AnySocket, Member>()
  private readonly drops = new Map<string, number>()
  private droppedTotal = 0
  private readonly sharedWarnings: RateLimitedWarnings
  private closing: Promise<void> | undefined
  private isClosed = false

  constructor(private readonly options: SocketGroupOptions) {
    this.sharedWarnings = new RateLimitedWarnings(options.log, options.clock)
  }

  /**
   * Takes `socket` into the group under `name` (which logs and drop counts use): the group closes it on `close()`.
   * A failed send goes to `onSendError`, by default a warning. Returns `socket`. Once the group has closed, `socket`
   * is closed at once and SocketClosedError thrown.
   */
  add<S extends AnySocket>(name: string, socket: S, onSendError?: SendErrorHandler): S {
    if (this.members.has(socket)) throw new Error(`socket group: the socket '${name}' is in the group already`)
    if (this.isClosed) {
      socket.close()
      throw new SocketClosedError(`cannot add ${name}: the sockets it would join are closed`)
    }
    const log = this.options.log
    this.members.set(socket, {
      name, outbox: undefined, receiving: false,
      onSendError: onSendError ?? ((error) => log.warn(`${name}: send failed: ${error instanceof Error ? error.message : String(error)}`)),
    })
    return socket
  }

  /**
   * Queues `frames` on `socket`, after everything queued there before. Resolves once ZeroMQ has them; rejects if
   * ZeroMQ refused them (after `onSendError` has heard of it) or if the group closed first (SocketClosedError).
   * The promise may be ignored: its rejection is never unhandled.
   */
  send(socket: Sending, frames: Frames): Promise<void> {
    const member = this.member(socket)
    if (this.isClosed) return handled(Promise.reject(new SocketClosedError(`cannot send on ${member.name}: its socket is closed`)))
    member.outbox ??= new Outbox(socket, member.onSendError)
    return handled(new Promise((resolve, reject) => member.outbox?.send(frames, (error) => {
      if (error === undefined) resolve()
      else reject(socket.closed ? new SocketClosedError(`a message queued on ${member.name} was discarded: its socket closed first`, { cause: error }) : asError(error))
    })))
  }

  /**
   * Hands every message `socket` receives to `handle` until the group closes. A handler that throws or rejects
   * drops that message: it is counted, and logged rate-limited; the loop goes on.
   */
  receive(socket: Receiving, handle: (frames: Frames) => void | Promise<void>): void {
    const member = this.member(socket)
    if (this.isClosed) throw new SocketClosedError(`cannot receive on ${member.name}: its socket is closed`)
    if (member.receiving) throw new Error(`socket group: ${member.name} has a receive loop already`)
    member.receiving = true
    const { log } = this.options
    const warnings = this.options.dropWarnings === 'shared' ? this.sharedWarnings : new RateLimitedWarnings(log, this.options.clock)
    receiveLoop(socket, handle, (error) => {
      this.droppedTotal++
      this.drops.set(member.name, (this.drops.get(member.name) ?? 0) + 1)
      warnings.warn(`${member.name}: dropped a message: ${error instanceof Error ? error.message : String(error)}`)
    }).catch((e: unknown) => log.error(`${member.name}: receive loop ended: ${e instanceof Error ? e.message : String(e)}`))
  }

  /** Messages dropped because their handler failed (they did not verify, or could not be parsed). */
  get droppedMessages(): number {
    return this.droppedTotal
  }

  /** Dropped messages by socket name. */
  get droppedByName(): ReadonlyMap<string, number> {
    return this.drops
  }

  /** Resolves when everything queued so far, on every socket, has been handed to ZeroMQ. */
  async drained(): Promise<void> {
    await Promise.all([...this.members.values()].map((m) => m.outbox?.drained() ?? Promise.resolve()))
  }

  /** True once `close()` has closed the sockets. */
  get closed(): boolean {
    return this.isClosed
  }

  /**
   * Logs how many messages were dropped (if any, unless `dropSummaryOnClose` is false), waits up to `drainMs` for queued sends to reach ZeroMQ (sends
   * made meanwhile are still taken), then closes every socket of the group that is not closed yet. Idempotent: every
   * call returns the same promise. `override` replaces the group's drain and linger for this close (an engine whose
   * registration failed closes at once).
   */
  close(override: { drainMs?: number; lingerOnCloseMs?: number } = {}): Promise<void> {
    this.closing ??= (async () => {
      const { log } = this.options
      const drainMs = override.drainMs ?? this.options.drainMs
      const lingerMs = override.lingerOnCloseMs ?? this.options.lingerOnCloseMs ?? 0
      if (this.droppedTotal > 0 && this.options.dropSummaryOnClose !== false) {
        log.warn(`dropped ${this.droppedTotal} bad message(s) in all: ${[...this.drops].map(([name, n]) => `${name} ${n}`).join(', ')}`)
      }
      if (drainMs > 0) {
        let timer: NodeJS.Timeout | undefined
        await Promise.race([this.drained(), new Promise((resolve) => (timer = setTimeout(resolve, drainMs)))])
        clearTimeout(timer)
      }
      this.isClosed = true
      for (const socket of this.members.keys()) {
        if (socket.closed) continue
        if (lingerMs > 0) socket.linger = lingerMs
        socket.close()
      }
    })()
    return this.closing
  }

  private member(socket: AnySocket): Member {
    const member = this.members.get(socket)
    if (!member) throw new Error('socket group: this socket was never added to the group')
    return member
  }
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error))
}

/** Marks `promise` as handled, so that a caller may drop it without an unhandled rejection, and returns it. */
function handled<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => {})
  return promise
}
