import { errorContent } from '../common/errors.js'
import { headerOf } from '../protocol/content-readers.js'
import { PROTOCOL_VERSION, replyTypeOf, type Header, type JsonObject, type Message } from '../protocol/messages.js'
import type { Session } from '../protocol/session.js'
import type { Frames } from '../transport/sockets.js'
import type { LedgerEngine, TaskLedger } from './task-ledger.js'

export interface DirectRelayHooks {
  /** Sends `[engine uuid, client ident, ...message]` on the engine-side socket. */
  toEngine(frames: Frames, undeliverable: () => void): void
  /** Sends `[client ident, engine uuid, ...message]` on the client-side socket. */
  toClient(frames: Frames): void
  isConnected(uuid: string): boolean
}

/**
 * A ROUTER-ROUTER relay with identity swap (docs/wire-protocol.md, 'Routing identities and relays'), for the mux and
 * control channels: `[client, engine, msg]` in from a client goes out as `[engine, client, msg]`, and the engine's
 * answer comes back the same way. The frames pass unchanged (still signed by their sender). Given a ledger (mux),
 * every request and reply is recorded; a request for an engine that is not connected is answered here with an
 * EngineError.
 */
export class DirectRelay {
  constructor(private readonly session: Session, private readonly hooks: DirectRelayHooks, private readonly ledger?: TaskLedger) {}

  /** A request from a client: `[client, engine, <IDS|MSG>, ...]`. */
  submitted(frames: Frames): void {
    const { idents, msg } = this.session.deserialize(frames)
    const [client, engine] = idents
    if (!client || !engine) throw new Error('request has no engine identity frame')
    const uuid = engine.toString()
    const refuse = (): Message => this.replyError(client, msg.header, 'EngineError', `no engine ${uuid} is connected`)
    if (!this.hooks.isConnected(uuid)) {
      refuse()
      return
    }
    this.ledger?.submitted(msg, 'mux', uuid)
    this.hooks.toEngine([engine, client, ...frames.slice(2)], () => {
      const reply = refuse()
      this.ledger?.finished(reply, uuid, false)
    })
  }

  /** A reply from an engine: `[engine, client, <IDS|MSG>, ...]`. */
  replied(frames: Frames): void {
    const { idents, msg } = this.session.deserialize(frames)
    const [engine, client] = idents
    if (!engine || !client) throw new Error('reply has no client identity frame')
    this.ledger?.finished(msg, engine.toString(), true)
    this.hooks.toClient([client, engine, ...frames.slice(2)])
  }

  /**
   * Direct requests an engine took with it: their records end with EngineError (the client that sent them
   * learns it from the unregistration notification), so none stays pending forever.
   */
  engineLeft(engine: LedgerEngine, msgIds: readonly string[]): void {
    const ledger = this.ledger
    if (!ledger) return
    for (const msgId of msgIds) {
      let header: Header | undefined
      try {
        header = headerOf(ledger.store.getRecord(msgId).header)
      } catch {
        header = undefined
      }
      // Without a stored request (--db=none) a stand-in header still ends the request's pending state.
      header ??= { msg_id: msgId, msg_type: 'apply_request', username: '', session: '', date: '', version: PROTOCOL_VERSION }
      const reply = this.replyError(undefined, header, 'EngineError', `Engine ${engine.id} died while running task '${msgId}'`, { status: 'error', engine: engine.uuid, dependencies_met: true })
      ledger.finished(reply, engine.uuid, false)
    }
  }

  /** An error reply made here, sent to `client` if there is one to tell. */
  private replyError(client: Buffer | undefined, parent: Header, ename: string, evalue: string, metadata: JsonObject = {}): Message {
    const reply = this.session.msg(replyTypeOf(parent.msg_type), errorContent(ename, evalue), { parent, metadata })
    if (client) this.hooks.toClient(this.session.serialize(reply, [client]))
    return reply
  }
}
