import * as zmq from 'zeromq'
import type { Logger } from '../common/log.js'

/** The only module that imports zeromq. Sockets come with unlimited high-water marks and no linger. */

export type Frames = Buffer[]
export type Router = zmq.Router
export type Dealer = zmq.Dealer
export type Publisher = zmq.Publisher
export type Subscriber = zmq.Subscriber
export type AnySocket = zmq.Router | zmq.Dealer | zmq.Publisher | zmq.Subscriber
type Sender = zmq.Router | zmq.Dealer | zmq.Publisher

const common = { sendHighWaterMark: 0, receiveHighWaterMark: 0, linger: 0 }

export function createRouter(options: { routingId?: string; mandatory?: boolean } = {}): zmq.Router {
  return new zmq.Router({ ...common, ...options })
}

export function createDealer(options: { routingId?: string } = {}): zmq.Dealer {
  return new zmq.Dealer({ ...common, ...options })
}

export function createPublisher(): zmq.Publisher {
  return new zmq.Publisher({ sendHighWaterMark: 0, linger: 0 })
}

/** A SUB socket subscribed to every topic. */
export function createSubscriber(): zmq.Subscriber {
  const sub = new zmq.Subscriber({ receiveHighWaterMark: 0, linger: 0 })
  sub.subscribe()
  return sub
}

/** Binds to `<iface>:<port>` (port 0 = a free one) and returns the bound port. */
export async function bindPort(socket: AnySocket, iface: string, port = 0): Promise<number> {
  await socket.bind(`${iface}:${port === 0 ? '*' : port}`)
  const endpoint = socket.lastEndpoint ?? ''
  const bound = Number(endpoint.slice(endpoint.lastIndexOf(':') + 1))
  if (!Number.isInteger(bound) || bound <= 0) throw new Error(`could not read the bound port from '${endpoint}'`)
  return bound
}

/**
 * Serialises sends on one socket (zeromq.js allows one send in flight per socket) while keeping FIFO order.
 * A failed send (an unknown peer on a ROUTER with `mandatory`) goes to `onError`; the queue continues.
 */
export class Outbox {
  private readonly queue: Frames[] = []
  private pumping = false
  private idle: Promise<void> = Promise.resolve()
  private markIdle: () => void = () => {}

  constructor(
    private readonly socket: Sender,
    private readonly onError: (error: unknown, frames: Frames) => void,
  ) {}

  send(frames: Frames): void {
    this.queue.push(frames)
    if (!this.pumping) {
      this.pumping = true
      this.idle = new Promise((resolve) => (this.markIdle = resolve))
      void this.pump()
    }
  }

  /** Resolves when everything queued so far has been handed to ZeroMQ. */
  drained(): Promise<void> {
    return this.pumping ? this.idle : Promise.resolve()
  }

  get pending(): number {
    return this.queue.length
  }

  private async pump(): Promise<void> {
    let frames: Frames | undefined
    while ((frames = this.queue.shift()) !== undefined) {
      try {
        await this.socket.send(frames)
      } catch (error) {
        if (this.socket.closed) {
          this.queue.length = 0
          break
        }
        this.onError(error, frames)
      }
    }
    this.pumping = false
    this.markIdle()
  }
}

/**
 * Receives until the socket closes, handing each multipart message to `handle`. A handler that throws
 * (or rejects) is reported to `onError` with the frames, and the loop goes on: one bad message never
 * stops a channel.
 */
export async function receiveLoop(
  socket: zmq.Router | zmq.Dealer | zmq.Subscriber,
  handle: (frames: Frames) => void | Promise<void>,
  onError: (error: unknown, frames: Frames) => void,
): Promise<void> {
  try {
    for await (const frames of socket) {
      try {
        const result = handle(frames)
        if (result instanceof Promise) result.catch((e: unknown) => onError(e, frames))
      } catch (error) {
        onError(error, frames)
      }
    }
  } catch (error) {
    // A closed socket ends the iteration with an error on some versions; anything else is worth a log.
    if (!socket.closed) throw error
  }
}

/** Logs a contained handler failure with the channel name. */
export function logHandlerError(log: Logger, channel: string): (error: unknown, frames: Frames) => void {
  return (error) => log.warn(`${channel}: dropped a message: ${error instanceof Error ? error.message : String(error)}`)
}

/**
 * A native ROUTER-to-DEALER device (zmq_proxy in a thread of its own): messages cross it with no JavaScript
 * per message. Both sockets must be bound before `run`; `terminate` closes them.
 */
export function createProxy(frontEnd: zmq.Router, backEnd: zmq.Dealer): { run(): Promise<void>; terminate(): void } {
  const proxy = new zmq.Proxy(frontEnd, backEnd)
  return { run: () => proxy.run(), terminate: () => proxy.terminate() }
}

export function closeAll(sockets: Iterable<AnySocket>): void {
  for (const s of sockets) if (!s.closed) s.close()
}
