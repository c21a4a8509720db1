import { ProtocolError, errorContent } from '../common/errors.js'
import type { Logger } from '../common/log.js'
import { replyTypeOf, type Header, type Message } from '../protocol/messages.js'
import { parentIdOf } from '../protocol/replies.js'
import type { Session } from '../protocol/session.js'
import type { Frames } from '../transport/sockets.js'

/** One engine a broadcast goes to, as the client names it: `[uuid, id]`. */
export type BroadcastTarget = [string, number]

export interface BroadcastHooks {
  /** Sends `[engine uuid, ...client idents, ...message]` on the engine-side broadcast socket. */
  toEngine(frames: Frames, undeliverable: () => void): void
  /** Sends `[...client idents, ...message]` on the client-side broadcast socket. */
  toClient(frames: Frames): void
  isConnected(uuid: string): boolean
  log: Logger
}

/** What the controller still owes for one engine's copy of a broadcast. */
interface Copy {
  clientIdents: Buffer[]
  /** The request as the engine got it (header msg_id `<original>_<uuid>`); parent of a made-up reply. */
  header: Header
  originalMsgId: string
  coalescing: boolean
  target: BroadcastTarget
}

/** A coalescing broadcast waiting for the replies of all its engines. */
interface Gathering {
  clientIdents: Buffer[]
  targets: BroadcastTarget[]
  replies: Map<string, Message>
}

/**
 * The broadcast channel (ipyparallel 7's BroadcastView). ipyparallel routes a broadcast through a tree of
 * scheduler processes; one relay here gives the client the same messages:
 *
 * - every target engine gets a re-signed copy whose msg_id is `<original>_<engine uuid>` and whose metadata
 *   carries `original_msg_id`;
 * - non-coalescing: each engine's reply goes to the client untouched (its parent msg_id is what the client
 *   waits for);
 * - coalescing: once every engine has answered, the client gets one message: the last reply with
 *   `broadcast_targets` (all targets, in the order the client gave them, which ipyparallel's tree does not
 *   keep) and the buffers of all replies concatenated in that order. If an engine failed, the first failed
 *   reply's content is sent instead, so the client raises rather than mis-reading a short buffer list. Ours
 *   adds `broadcast_replies`, each engine's reply (content, metadata, date, number of buffers) in target order,
 *   from which our client gives each engine its own value or error.
 *
 * Unlike ipyparallel, an engine that is not connected or dies before answering gets an EngineError reply in
 * its place, so a broadcast never waits forever. Broadcasts are not recorded by the hub (nor in ipyparallel).
 */
export class BroadcastRelay {
  /** Keyed by the msg_id an engine got: `<original>_<uuid>`. */
  private readonly copies = new Map<string, Copy>()
  private readonly gatherings = new Map<string, Gathering>()

  constructor(private readonly session: Session, private readonly hooks: BroadcastHooks) {}

  /** In flight: copies sent to engines and not yet answered. */
  get pending(): number {
    return this.copies.size
  }

  /** A request from a client: `[...client idents, <IDS|MSG>, ...]`. */
  submitted(frames: Frames): void {
    const { idents, msg } = this.session.deserialize(frames)
    const metadata = msg.metadata
    const targets = targetsOf(metadata.targets)
    const coalescing = metadata.is_coalescing === true
    const originalMsgId = typeof metadata.original_msg_id === 'string' ? metadata.original_msg_id : msg.header.msg_id
    if (coalescing) this.gatherings.set(originalMsgId, { clientIdents: idents, targets, replies: new Map() })
    for (const target of targets) {
      const [uuid] = target
      const header = { ...msg.header, msg_id: `${originalMsgId}_${uuid}` }
      const copy: Copy = { clientIdents: idents, header, originalMsgId, coalescing, target }
      this.copies.set(header.msg_id, copy)
      if (!this.hooks.isConnected(uuid)) {
        this.fail(copy, `engine ${uuid} is not connected`)
        continue
      }
      const forwarded = { ...msg, header, metadata: { ...metadata, original_msg_id: originalMsgId } }
      this.hooks.toEngine(this.session.serialize(forwarded, [Buffer.from(uuid), ...idents]), () => this.fail(copy, `engine ${uuid} could not be reached`))
    }
  }

  /** A reply from an engine: `[engine uuid, ...client idents, <IDS|MSG>, ...]`; throws for one that answers nothing in flight. */
  replied(frames: Frames): void {
    const { msg } = this.session.deserialize(frames)
    const parentId = parentIdOf(msg) ?? ''
    const copy = this.copies.get(parentId)
    // Thrown rather than logged here: the receive loop counts it and rate-limits the warning, as any peer can send these.
    if (!copy) throw new ProtocolError(`a reply to ${parentId}, which is not in flight (late, or its engine was given up)`)
    this.copies.delete(parentId)
    if (copy.coalescing) this.gathered(copy, msg)
    else this.hooks.toClient(frames.slice(1))
  }

  /** An engine left: its unanswered copies are answered with an EngineError. */
  engineLeft(uuid: string): void {
    for (const copy of [...this.copies.values()]) {
      if (copy.target[0] === uuid) this.fail(copy, `engine ${uuid} died before answering the broadcast`)
    }
  }

  private fail(copy: Copy, why: string): void {
    this.copies.delete(copy.header.msg_id)
    const [uuid, id] = copy.target
    const metadata = {
      status: 'error', engine: uuid, dependencies_met: true,
      is_broadcast: true, is_coalescing: copy.coalescing, original_msg_id: copy.originalMsgId,
      engine_info: { engine_uuid: uuid, engine_id: id },
    }
    const content = { ...errorContent('EngineError', why), engine_info: { engine_uuid: uuid, engine_id: id } }
    const reply = this.session.msg(replyTypeOf(copy.header.msg_type), content, { parent: copy.header, metadata })
    if (copy.coalescing) this.gathered(copy, reply)
    else this.hooks.toClient(this.session.serialize(reply, copy.clientIdents))
  }

  private gathered(copy: Copy, reply: Message): void {
    const gathering = this.gatherings.get(copy.originalMsgId)
    if (!gathering) return
    gathering.replies.set(copy.target[0], reply)
    if (gathering.replies.size < gathering.targets.length) return
    this.gatherings.delete(copy.originalMsgId)
    const replies = gathering.targets.map(([uuid]) => gathering.replies.get(uuid) as Message)
    const failed = replies.find((r) => r.content.status !== 'ok')
    const combined: Message = {
      ...reply,
      content: failed ? failed.content : reply.content,
      metadata: {
        ...reply.metadata,
        broadcast_targets: gathering.targets,
        // Ours (Python's client ignores it): each engine's reply, so our client can give each its own outcome.
        broadcast_replies: replies.map((r) => ({ content: r.content, metadata: r.metadata, date: r.header.date, buffers: r.buffers.length })),
        ...(failed ? { status: 'error' } : {}),
      },
      buffers: replies.flatMap((r) => r.buffers),
    }
    this.hooks.toClient(this.session.serialize(combined, gathering.clientIdents))
  }
}

/** The `targets` of a broadcast's metadata: `[uuid, id]` pairs, each engine once; anything else is refused by name. */
function targetsOf(value: unknown): BroadcastTarget[] {
  if (!Array.isArray(value)) throw new TypeError('broadcast request metadata has no targets list')
  const targets = new Map<string, BroadcastTarget>()
  for (const t of value as unknown[]) {
    if (!Array.isArray(t) || typeof t[0] !== 'string' || typeof t[1] !== 'number') {
      throw new TypeError(`broadcast target ${JSON.stringify(t)} is not a [uuid, id] pair`)
    }
    if (!targets.has(t[0])) targets.set(t[0], [t[0], t[1]])
  }
  return [...targets.values()]
}
