import type { Clock } from '../common/clock.js'
import type { Logger } from '../common/log.js'
import type { TaskStore } from './store/index.js'
import { SocketGroup, type Receiving, type Sending } from '../transport/socket-group.js'
import type { AnySocket, Frames } from '../transport/sockets.js'

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
 * The controller's sockets at work: their socket group (a send queue each, receive loops that count and rate-limit
 * the messages they drop, a bounded drain on stop), durable sends, and redelivery (on the controller's clock) to
 * clients that are reconnecting.
 */
export class ChannelIo {
  private readonly sockets: SocketGroup
  private readonly undeliverable = new WeakMap<Frames, () => void>()
  private stopped = false

  /**
   * `clock` times redelivery; its timers are the controller's, cancelled when it stops. `sockets`: every socket the
   * controller closes on stop, by the name its logs and drop counts use.
   */
  constructor(
    private readonly store: TaskStore,
    private readonly roles: SocketRoles,
    private readonly log: Logger,
    private readonly clock: Clock,
    sockets: Iterable<readonly [string, AnySocket]>,
  ) {
    // Let queued messages (a shutdown_reply, say) reach ZeroMQ for up to 500 ms on stop.
    this.sockets = new SocketGroup({ log, drainMs: 500, clock })
    for (const [name, socket] of sockets) this.sockets.add(name, socket, (error, failed) => this.sendFailed(name, socket as Sending, error, failed))
  }

  /** Messages dropped because they failed verification or could not be parsed. */
  get droppedMessages(): number {
    return this.sockets.droppedMessages
  }

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
  loop(socket: Receiving, handle: (frames: Frames) => void): void {
    this.sockets.receive(socket, handle)
  }

  /** Stops redelivery, then closes the sockets (after their bounded drain). */
  async stop(): Promise<void> {
    this.stopped = true
    await this.sockets.close()
  }

  private enqueue(socket: Sending, frames: Frames, undeliverable?: () => void): void {
    if (undeliverable) this.undeliverable.set(frames, undeliverable)
    void this.sockets.send(socket, frames)
  }

  private sendFailed(name: string, socket: Sending, error: unknown, failed: Frames): void {
    const fallback = this.undeliverable.get(failed)
    if (fallback) fallback()
    else if (this.roles.redelivered.has(socket)) this.redeliver(socket, failed, 1)
    else this.log.warn(`${name}: send failed: ${(error as Error).message}`)
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
