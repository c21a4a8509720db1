import { DELIMITER } from '../../src/protocol/messages.js'
import type { Session } from '../../src/protocol/session.js'
import type { Frames } from '../../src/transport/sockets.js'

/** Kinds of bad message that must be dropped and counted: none of them verifies or parses. */
export const DROPPED_KINDS = [
  'frame-count', 'no-delimiter', 'bad-signature', 'missing-signature', 'replay', 'non-json', 'wrong-shape', 'empty-frames', 'oversized', 'random-frames',
] as const
/**
 * Kinds that verify and parse (signed with the key, well formed) but carry what no peer sends: an unknown
 * message type, or a known one with nonsense content and metadata. A channel answers them with an error reply
 * where the protocol has one, or drops them; either way nothing may crash or wedge.
 */
export const SIGNED_KINDS = ['unknown-type', 'bad-content'] as const
export type GarbageKind = (typeof DROPPED_KINDS)[number] | (typeof SIGNED_KINDS)[number]

/** Makes the bad messages of a fuzz run from one PRNG; `session` signs those that must verify. */
export class Garbage {
  /** Signed messages the peer has already verified (captured traffic), for replays: their frames from the delimiter on. */
  private readonly captured: Frames[] = []

  constructor(readonly random: () => number, private readonly session: Session, private readonly oversizedBytes: [number, number] = [256 * 1024, 1024 * 1024]) {}

  int(n: number): number {
    return Math.floor(this.random() * n)
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T
  }

  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n)
    for (let i = 0; i < n; i++) b[i] = this.int(256)
    return b
  }

  hex(n: number): string {
    let s = ''
    for (let i = 0; i < n; i++) s += '0123456789abcdef'[this.int(16)]
    return s
  }

  /** A routing id ZeroMQ accepts for a socket: 1-32 characters, never starting with a zero byte. */
  routingId(): string {
    return `fz${this.hex(1 + this.int(30))}`
  }

  /** Remembers a message some peer verified, so that sending it again is a replay. */
  capture(wire: Frames): void {
    this.captured.push(wire.map((f) => Buffer.from(f)))
    if (this.captured.length > 200) this.captured.shift()
  }

  get canReplay(): boolean {
    return this.captured.length > 0
  }

  /** A fresh header of the signing session with a random type unless one is given. */
  header(type = `fuzz_${this.hex(6)}`): Record<string, unknown> {
    return { ...this.session.header(type) }
  }

  /** `[<IDS|MSG>, signature, ...parts]` signed over whatever the four parts hold (valid JSON or not). */
  signed(parts: [Buffer, Buffer, Buffer, Buffer], buffers: Buffer[] = []): Frames {
    return [DELIMITER, this.session.sign(parts), ...parts, ...buffers]
  }

  signedMessage(header: object, content: object = {}, metadata: object = {}, parent: object = {}, buffers: Buffer[] = []): Frames {
    return this.signed([json(header), json(parent), json(metadata), json(content)], buffers)
  }

  randomIdents(): Buffer[] {
    return Array.from({ length: this.int(3) }, () => Buffer.from(this.routingId()))
  }

  /** One bad message of `kind` (frames as a DEALER sends them, after `prefix`, the frames the channel routes by). */
  make(kind: (typeof DROPPED_KINDS)[number], prefix: Buffer[] = []): Frames {
    const idents = [...prefix, ...this.randomIdents()]
    const valid = (): Frames => this.signedMessage(this.header(), { fuzz: this.hex(8) })
    switch (kind) {
      case 'frame-count':
        // A delimiter followed by 0-4 frames: at least 5 are needed.
        return [...idents, ...valid().slice(0, 1 + this.int(5))]
      case 'no-delimiter':
        return this.int(2) === 0 ? [...idents, ...valid().slice(1)] : [...idents, ...Array.from({ length: 1 + this.int(8) }, () => this.bytes(this.int(64)))]
      case 'bad-signature': {
        const wire = valid()
        const signature = wire[1] as Buffer
        const variant = this.int(3)
        if (variant === 0) wire[1] = Buffer.from(this.hex(64))
        else if (variant === 1) wire[1] = Buffer.from(signature.toString().toUpperCase() === signature.toString() ? `${this.hex(63)}g` : signature.toString().toUpperCase())
        else {
          const i = this.int(signature.length)
          const flipped = Buffer.from(signature)
          flipped[i] = signature[i] === 0x30 ? 0x31 : 0x30
          wire[1] = flipped
        }
        return [...idents, ...wire]
      }
      case 'missing-signature': {
        const wire = valid()
        if (this.int(2) === 0) wire[1] = Buffer.alloc(0)
        else wire.splice(1, 1) // the header takes the signature's place and content goes missing
        return [...idents, ...wire]
      }
      case 'replay':
        if (this.captured.length === 0) return this.make('bad-signature', prefix)
        return [...idents, ...this.pick(this.captured)]
      case 'non-json': {
        const parts = [json(this.header()), json({}), json({}), json({})] as [Buffer, Buffer, Buffer, Buffer]
        const text = ['{', '{"a":', 'undefined', "{'single': 1}", '\u0000\u0001', 'NaN', '{"msg_id": "x"', this.bytes(1 + this.int(40)).toString('latin1')]
        parts[this.int(4)] = Buffer.from(this.pick(text), 'latin1')
        return [...idents, ...this.signed(parts)]
      }
      case 'wrong-shape': {
        const notObject = [json([]), json(7), json('header'), json(null), json(true), json([{ msg_id: 'a', msg_type: 'b' }])]
        const variant = this.int(3)
        const parts = [json(this.header()), json({}), json({}), json({})] as [Buffer, Buffer, Buffer, Buffer]
        if (variant === 0) parts[this.int(4)] = this.pick(notObject)
        else if (variant === 1) parts[0] = json({ msg_type: 'apply_request' })
        else parts[0] = json({ ...this.header(), msg_id: this.pick([1, null, {}, ['x']]) })
        return [...idents, ...this.signed(parts)]
      }
      case 'empty-frames':
        return this.int(2) === 0
          ? Array.from({ length: 1 + this.int(8) }, () => Buffer.alloc(0))
          : [...idents, DELIMITER, ...Array.from({ length: this.int(8) }, () => Buffer.alloc(0))]
      case 'oversized': {
        const [min, max] = this.oversizedBytes
        const big = this.bytes(min + this.int(max - min))
        const wire = valid()
        wire[1 + this.int(5)] = big // as the signature or one of the signed parts: the signature no longer matches
        return [...idents, ...wire]
      }
      case 'random-frames':
        return Array.from({ length: 1 + this.int(10) }, () => this.bytes(this.int(200)))
    }
  }
}

export function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value))
}

/** Header and parent of received frames, without verification; undefined for what does not parse. */
export function peek(frames: Frames): { header: Record<string, unknown>; parent: Record<string, unknown>; at: number } | undefined {
  const at = frames.findIndex((f) => f.equals(DELIMITER))
  if (at < 0 || frames.length < at + 6) return undefined
  try {
    return {
      header: JSON.parse((frames[at + 2] as Buffer).toString()) as Record<string, unknown>,
      parent: JSON.parse((frames[at + 3] as Buffer).toString()) as Record<string, unknown>,
      at,
    }
  } catch {
    return undefined
  }
}
