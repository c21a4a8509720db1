import * as zmq from 'zeromq'

/** The only module that imports zeromq. Sockets come with unlimited high-water marks and no linger. */

export type Frames = Buffer[]
export type Router = zmq.Router
export type Dealer = zmq.Dealer
export type Publisher = zmq.Publisher
export type Subscriber = zmq.Subscriber
export type AnySocket = zmq.Router | zmq.Dealer | zmq.Publisher | zmq.Subscriber
type Sender = zmq.Router | zmq.Dealer | zmq.Publisher

const common = { sendHighWaterMark: 0, receiveHighWaterMark: 0, linger: 0 }

/** A CurveZMQ key pair: two keys of 40 characters in Z85. */
export interface CurveKeyPair {
  publicKey: string
  secretKey: string
}

/**
 * CurveZMQ on one socket. `server`: the controller's sockets, with its long-term secret key. `client`: a peer that
 * knows the server's public key and authenticates with a key pair of its own. No value: ZeroMQ's NULL mechanism,
 * in the clear, and a CURVE server refuses the handshake.
 */
export type Curve = { role: 'server'; secretKey: string } | { role: 'client'; serverKey: string; keys: CurveKeyPair }

export function newCurveKeyPair(): CurveKeyPair {
  return zmq.curveKeyPair()
}

/**
 * The client side of CurveZMQ for a peer whose connection file names `serverKey` (its `curve_serverkey`): a fresh
 * key pair, used by all of that peer's sockets. `undefined` (no server key) means no CurveZMQ.
 */
export function curveClient(serverKey: string | null | undefined): Curve | undefined {
  return serverKey ? { role: 'client', serverKey, keys: newCurveKeyPair() } : undefined
}

/** Socket options for `curve`. The server key makes libzmq's socket a CURVE client, so it is set first. */
function security(curve: Curve | undefined): Partial<zmq.SocketOptions<zmq.Dealer>> {
  if (!curve) return {}
  if (curve.role === 'server') return { curveServer: true, curveSecretKey: curve.secretKey }
  return { curveServerKey: curve.serverKey, curvePublicKey: curve.keys.publicKey, curveSecretKey: curve.keys.secretKey }
}

interface Secured {
  curve?: Curve | undefined
}

export function createRouter(options: { routingId?: string; mandatory?: boolean } & Secured = {}): zmq.Router {
  const { curve, ...rest } = options
  return new zmq.Router({ ...common, ...rest, ...security(curve) })
}

export function createDealer(options: { routingId?: string } & Secured = {}): zmq.Dealer {
  const { curve, ...rest } = options
  return new zmq.Dealer({ ...common, ...rest, ...security(curve) })
}

export function createPublisher(options: Secured = {}): zmq.Publisher {
  return new zmq.Publisher({ sendHighWaterMark: 0, linger: 0, ...security(options.curve) })
}

/** A SUB socket subscribed to every topic. */
export function createSubscriber(options: Secured = {}): zmq.Subscriber {
  const sub = new zmq.Subscriber({ receiveHighWaterMark: 0, linger: 0, ...security(options.curve) })
  sub.subscribe()
  return sub
}

/**
 * Calls `onRefused` once if the security handshake of a connecting socket fails before any succeeds: a mechanism
 * mismatch or an authentication failure at once, other handshake errors (a CURVE server hangs up on a client with
 * the wrong server key) after `tolerated` in a row. ZeroMQ itself only retries, silently. Call it before `connect`:
 * events from before the watch are lost, and a mechanism mismatch is not retried. Returns a function that stops
 * watching; watching also ends with the first successful handshake.
 */
export function watchHandshake(socket: AnySocket, onRefused: (reason: string) => void, tolerated = 3): () => void {
  const events = socket.events
  let failures = 0
  let done = false
  const stop = (): void => {
    if (done) return
    done = true
    events.off('handshake', succeeded)
    events.off('handshake:error:protocol', fatal)
    events.off('handshake:error:auth', fatal)
    events.off('handshake:error:other', other)
  }
  const refuse = (reason: string): void => {
    stop()
    onRefused(reason)
  }
  const describe = (error: { message: string; code?: string } | undefined): string => `${error?.code ?? 'no code'}: ${error?.message ?? 'no detail'}`
  const succeeded = (): void => stop()
  const fatal = (event: { error?: { message: string; code?: string } }): void => refuse(describe(event.error))
  const other = (event: { error?: { message: string; code?: string } }): void => {
    if (++failures >= tolerated) refuse(`${failures} failed handshakes, the last ${describe(event.error)}`)
  }
  events.on('handshake', succeeded)
  events.on('handshake:error:protocol', fatal)
  events.on('handshake:error:auth', fatal)
  events.on('handshake:error:other', other)
  return stop
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
 * `sent`, if given, hears how each message ended: no error once ZeroMQ has it, else the error (also for the
 * messages still queued when the socket closed, which are discarded).
 */
export class Outbox {
  private readonly queue: { frames: Frames; sent: ((error?: unknown) => void) | undefined }[] = []
  private pumping = false
  private idle: Promise<void> = Promise.resolve()
  private markIdle: () => void = () => {}

  constructor(
    private readonly socket: Sender,
    private readonly onError: (error: unknown, frames: Frames) => void,
  ) {}

  send(frames: Frames, sent?: (error?: unknown) => void): void {
    this.queue.push({ frames, sent })
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

  private async pump(): Promise<void> {
    let item: { frames: Frames; sent: ((error?: unknown) => void) | undefined } | undefined
    while ((item = this.queue.shift()) !== undefined) {
      try {
        await this.socket.send(item.frames)
        item.sent?.()
      } catch (error) {
        if (this.socket.closed) {
          item.sent?.(error)
          for (const rest of this.queue.splice(0)) rest.sent?.(error)
          break
        }
        this.onError(error, item.frames)
        item.sent?.(error)
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
