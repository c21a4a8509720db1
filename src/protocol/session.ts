import { createHmac, timingSafeEqual } from 'node:crypto'
import { ProtocolError } from '../common/errors.js'
import { newSessionId } from '../common/ids.js'
import { isoNow } from './dates.js'
import { DELIMITER, PROTOCOL_VERSION, type Header, type JsonObject, type Message, type Received } from './messages.js'

export interface SessionOptions {
  /** The HMAC key (connection file `key`); empty disables signing, as in jupyter_client. */
  key: string
  /** This peer's session id; for an engine, its uuid. Default: a fresh id. */
  session?: string
  username?: string
  /** How many recent signatures to remember for replay rejection (jupyter_client keeps 65,536). */
  replayWindow?: number
  /** Only `hmac-sha256` is supported. */
  signatureScheme?: string
}

/**
 * Builds, signs, verifies and parses messages. Owns no socket and starts no timer: frames in, messages out.
 */
export class Session {
  readonly session: string
  readonly username: string
  private readonly key: Buffer
  private readonly replayWindow: number
  private readonly seen = new Set<string>()
  private counter = 0

  constructor(options: SessionOptions) {
    const scheme = options.signatureScheme ?? 'hmac-sha256'
    if (scheme !== 'hmac-sha256') throw new ProtocolError(`unsupported signature_scheme '${scheme}': only hmac-sha256 is supported`)
    this.key = Buffer.from(options.key, 'utf8')
    this.session = options.session ?? newSessionId()
    this.username = options.username ?? 'username'
    this.replayWindow = options.replayWindow ?? 65_536
  }

  /** A new header of this session. */
  header(msgType: string): Header {
    return {
      msg_id: `${this.session}_${process.pid}_${this.counter++}`,
      msg_type: msgType,
      username: this.username,
      session: this.session,
      date: isoNow(),
      version: PROTOCOL_VERSION,
    }
  }

  /** A new message; `parent` is the request being answered (its whole header is copied). */
  msg<C extends object, M extends object = JsonObject>(
    msgType: string,
    content: C,
    options: { parent?: Header | Record<string, never>; metadata?: M; buffers?: Buffer[]; header?: Header } = {},
  ): Message<C, M> {
    return {
      header: options.header ?? this.header(msgType),
      parent_header: options.parent ?? {},
      metadata: options.metadata ?? ({} as M),
      content,
      buffers: options.buffers ?? [],
    }
  }

  /** The signature of four packed JSON frames: lower-case hex HMAC-SHA256, empty when there is no key. */
  sign(parts: readonly Buffer[]): Buffer {
    if (this.key.length === 0) return Buffer.alloc(0)
    const hmac = createHmac('sha256', this.key)
    for (const part of parts) hmac.update(part)
    return Buffer.from(hmac.digest('hex'), 'ascii')
  }

  /** Frames for a message: `[...idents, <IDS|MSG>, signature, header, parent, metadata, content, ...buffers]`. */
  serialize(msg: Message<object, object>, idents: readonly Buffer[] = []): Buffer[] {
    const parts = [pack(msg.header), pack(msg.parent_header), pack(msg.metadata), pack(msg.content)]
    return [...idents, DELIMITER, this.sign(parts), ...parts, ...msg.buffers]
  }

  /**
   * Verifies and parses frames. Throws ProtocolError naming what was wrong: no delimiter, too few frames,
   * a bad or repeated signature, invalid JSON, a header without msg_id/msg_type.
   */
  deserialize<C = JsonObject, M = JsonObject>(frames: readonly Buffer[]): Received<C, M> {
    const { idents, wire } = splitIdents(frames)
    this.verify(wire)
    const [, , headerFrame, parentFrame, metadataFrame, contentFrame, ...buffers] = wire as [Buffer, Buffer, Buffer, Buffer, Buffer, Buffer, ...Buffer[]]
    const header = unpack(headerFrame, 'header') as Header
    if (typeof header.msg_id !== 'string' || typeof header.msg_type !== 'string') {
      throw new ProtocolError('message header lacks msg_id or msg_type')
    }
    const msg: Message<C, M> = {
      header,
      parent_header: unpack(parentFrame, 'parent_header') as Header,
      metadata: unpack(metadataFrame, 'metadata') as M,
      content: unpack(contentFrame, 'content') as C,
      buffers,
    }
    return { idents, msg, wire }
  }

  /** Checks the signature of `[<IDS|MSG>, signature, header, parent, metadata, content, ...]` and remembers it. */
  verify(wire: readonly Buffer[]): void {
    if (wire.length < 6) throw new ProtocolError(`message has ${wire.length - 1} frames after the delimiter; at least 5 are required`)
    const signature = wire[1] as Buffer
    if (this.key.length === 0) return
    const expected = this.sign(wire.slice(2, 6))
    if (signature.length !== expected.length || !timingSafeEqual(signature, expected)) {
      throw new ProtocolError('invalid message signature')
    }
    const text = signature.toString('ascii')
    if (this.seen.has(text)) throw new ProtocolError('duplicate message signature (replayed message)')
    this.seen.add(text)
    if (this.seen.size > this.replayWindow) {
      // Drop the oldest tenth at once so the cost is amortised.
      let drop = Math.ceil(this.replayWindow / 10)
      for (const old of this.seen) {
        this.seen.delete(old)
        if (--drop === 0) break
      }
    }
  }
}

/** Splits routing frames from the message: everything before the first `<IDS|MSG>` frame. */
export function splitIdents(frames: readonly Buffer[]): { idents: Buffer[]; wire: Buffer[] } {
  const at = frames.findIndex((f) => f.equals(DELIMITER))
  if (at < 0) throw new ProtocolError('message has no <IDS|MSG> delimiter frame')
  return { idents: frames.slice(0, at), wire: frames.slice(at) }
}

function pack(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8')
}

function unpack(frame: Buffer, part: string): JsonObject {
  let value: unknown
  try {
    value = JSON.parse(frame.toString('utf8'))
  } catch (e) {
    throw new ProtocolError(`message ${part} is not valid JSON`, { cause: e })
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ProtocolError(`message ${part} is not a JSON object`)
  }
  return value as JsonObject
}
