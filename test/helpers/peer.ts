import { readFileSync } from 'node:fs'
import { channelUrl } from '../../src/protocol/connection-file.js'
import type { Message } from '../../src/protocol/messages.js'
import { Session } from '../../src/protocol/session.js'
import { closeAll, createDealer, createSubscriber, type AnySocket, type Dealer, type Frames, type Subscriber } from '../../src/transport/sockets.js'
import type { Teardown } from './processes.js'

/**
 * A hand-driven protocol peer for tests: raw sockets plus a Session, so a test can act as an engine or a
 * client message by message, including sending what no real peer would.
 */
export class RawPeer {
  readonly session: Session
  readonly info: Record<string, unknown> & { interface: string; key: string }
  private readonly sockets: AnySocket[] = []

  constructor(t: Teardown, connectionFile: string, session?: string) {
    this.info = JSON.parse(readFileSync(connectionFile, 'utf8')) as RawPeer['info']
    this.session = new Session({ key: this.info.key, session })
    t.teardown(() => closeAll(this.sockets))
  }

  url(channel: string): string {
    return channelUrl(this.info.interface, this.info[channel] as number)
  }

  dealer(channel: string, routingId?: string): Inbox<Dealer> {
    const socket = createDealer(routingId ? { routingId } : {})
    socket.connect(this.url(channel))
    this.sockets.push(socket)
    return new Inbox(socket, this.session)
  }

  subscriber(channel: string): Inbox<Subscriber> {
    const socket = createSubscriber()
    socket.connect(this.url(channel))
    this.sockets.push(socket)
    return new Inbox(socket, this.session)
  }

  frames(type: string, content: object, options: { metadata?: object; buffers?: Buffer[]; idents?: Buffer[]; parent?: Message['header'] } = {}): Frames {
    return this.session.serialize(this.session.msg(type, content, options), options.idents ?? [])
  }
}

/** Collects everything a socket receives; tests wait for the message they expect. */
export class Inbox<S extends Dealer | Subscriber> {
  readonly received: Frames[] = []
  private readonly waiters = new Set<() => void>()

  constructor(readonly socket: S, private readonly session: Session) {
    void (async () => {
      try {
        for await (const frames of socket) {
          this.received.push(frames)
          for (const w of this.waiters) w()
        }
      } catch {
        // closed
      }
    })()
  }

  async send(frames: Frames): Promise<void> {
    await (this.socket as Dealer).send(frames)
  }

  /** The first received message (parsed, unverified replay-wise) that matches, waiting up to the ceiling. */
  next(match: (msg: Message, frames: Frames) => boolean, what: string, timeoutMs = 15_000): Promise<{ msg: Message; frames: Frames }> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        for (let i = 0; i < this.received.length; i++) {
          const frames = this.received[i] as Frames
          let msg: Message
          try {
            msg = parseUnchecked(frames)
          } catch {
            continue
          }
          if (match(msg, frames)) {
            this.received.splice(i, 1)
            finish()
            this.session.verify(frames.slice(frames.findIndex((f) => f.toString() === '<IDS|MSG>')))
            resolve({ msg, frames })
            return
          }
        }
      }
      const timer = setTimeout(() => {
        finish()
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`))
      }, timeoutMs)
      const finish = (): void => {
        clearTimeout(timer)
        this.waiters.delete(check)
      }
      this.waiters.add(check)
      check()
    })
  }

  reply(to: Message['header'], timeoutMs?: number): Promise<{ msg: Message; frames: Frames }> {
    return this.next((m) => (m.parent_header as { msg_id?: string }).msg_id === to.msg_id, `the reply to ${to.msg_type}`, timeoutMs)
  }

  ofType(type: string, timeoutMs?: number): Promise<{ msg: Message; frames: Frames }> {
    return this.next((m) => m.header.msg_type === type, type, timeoutMs)
  }
}

function parseUnchecked(frames: Frames): Message {
  const at = frames.findIndex((f) => f.toString() === '<IDS|MSG>')
  if (at < 0) throw new Error('no delimiter')
  const part = (i: number): Record<string, unknown> => JSON.parse((frames[at + i] as Buffer).toString()) as Record<string, unknown>
  return { header: part(2) as Message['header'], parent_header: part(3) as Message['parent_header'], metadata: part(4), content: part(5), buffers: frames.slice(at + 6) }
}
