import type { Clock } from '../common/clock.js'
import { RateLimitedWarnings, type Logger } from '../common/log.js'
import type { TaskStore } from './store/index.js'
import { Outbox, closeAll, receiveLoop, type AnySocket, type Dealer, type Frames, type Publisher, type Router, type Subscriber } from '../transport/sockets.js'

type Sending = Router | Dealer | Publisher
type Receiving = Router | Dealer | Subscriber

/** How the controller's sockets carry traffic, beyond sending it. */
export interface SocketRoles {
  /**
   * Task and mux traffic: with a SQLite store, it leaves only once the records it implies are committed.
   */
  durable: ReadonlySet<AnySocket>
  /** Client-facing sockets whose replies are tried again while their client reconnects. */
  redelivered: ReadonlySet<AnySocket>
}

/**
 * The controller's sockets at work: one send queue per socket, receive loops that count and rate-limit the
 * messages they drop, and redelivery to clients that are reconnecting.
 */
export class ChannelIo {
  /** Messages dropped because they failed verification or could not be parsed. */
  droppedMessages = 0
  /** Dropped messages by channel (the receive loop's name), for the summary logged on stop. */
  readonly droppedByChannel = new Map<string, number>()
  private readonly outboxes = new Map<Sending, Outbox>()
  private readonly undeliverable = new WeakMap<Frames, () => void>()
  private stopped = false

  /** `clock` times redelivery; its timers are the controller's, cancelled when it stops. */
  constructor(private readonly store: TaskStore, private readonly roles: SocketRoles, private readonly log: Logger, private readonly clock: Clock) {}

  /**
   * Queues `frames` on `socket`; `undeliverable` runs if ZeroMQ cannot route them (a peer that is not connected).
   * With SQLite, task and mux traffic leaves only once the records it implies are durable: a reply reaches a
   * client only when a restored controller would know that result, and a request reaches an engine only when a
   * restored controller would know the task was accepted and where it went (so it neither loses the task nor
   * runs it a second time). The records are written after the hand-over, in the same handler, so the wait starts
   * in a microtask; every such send takes this path, keeping the order per socket.
   */
  send(socket: Sending, frames: Frames, undeliverable?: () => void): void {
    if (this.store.kind === 'sqlite' && this.roles.durable.has(socket)) {
      queueMicrotask(() => this.store.afterCommit(() => this.enqueue(socket, frames, undeliverable)))
      return
    }
    this.enqueue(socket, frames, undeliverable)
  }

  /** Runs `handle` for every message `socket` receives; one that throws is counted as dropped, never ends the loop. */
  loop(socket: Receiving, channel: string, handle: (frames: Frames) => void): void {
    const drops = new RateLimitedWarnings(this.log, this.clock)
    void receiveLoop(socket, handle, (error) => {
      this.droppedMessages++
      this.droppedByChannel.set(channel, (this.droppedByChannel.get(channel) ?? 0) + 1)
      drops.warn(`${channel}: dropped a message: ${error instanceof Error ? error.message : String(error)}`)
    }).catch((e: unknown) => this.log.error(`${channel}: receive loop ended: ${(e as Error).message}`))
  }

  /** Stops redelivery, lets queued messages (a shutdown_reply, say) reach ZeroMQ for up to 500 ms, then closes `sockets`. */
  async stop(sockets: Iterable<AnySocket>): Promise<void> {
    this.stopped = true
    if (this.droppedMessages > 0) {
      const byChannel = [...this.droppedByChannel].map(([channel, n]) => `${channel} ${n}`).join(', ')
      this.log.warn(`dropped ${this.droppedMessages} bad message(s) in all: ${byChannel}`)
    }
    await Promise.race([Promise.all([...this.outboxes.values()].map((o) => o.drained())), new Promise((r) => setTimeout(r, 500))])
    closeAll(sockets)
  }

  private enqueue(socket: Sending, frames: Frames, undeliverable?: () => void): void {
    let outbox = this.outboxes.get(socket)
    if (!outbox) {
      outbox = new Outbox(socket, (error, failed) => {
        const fallback = this.undeliverable.get(failed)
        if (fallback) fallback()
        else if (this.roles.redelivered.has(socket)) this.redeliver(socket, failed, 1)
        else this.log.warn(`send failed: ${(error as Error).message}`)
      })
      this.outboxes.set(socket, outbox)
    }
    if (undeliverable) this.undeliverable.set(frames, undeliverable)
    outbox.send(frames)
  }

  /**
   * A reply to a client that is not connected: it may be reconnecting (after a controller restart, its sockets
   * come back a moment after the restored controller has started sending), so it is tried again every 200 ms
   * for 10 s. After that it is dropped; the result stays in the task records, where the client can ask for it.
   */
  private redeliver(socket: Sending, frames: Frames, attempt: number): void {
    if (this.stopped) return
    if (attempt > 50) {
      this.log.info(`dropped a reply to client ${frames[0]?.toString() ?? '?'}: not connected for 10 s (the result stays in the task records)`)
      return
    }
    this.clock.setTimeout(() => this.enqueue(socket, frames, () => this.redeliver(socket, frames, attempt + 1)), 200)
  }
}
