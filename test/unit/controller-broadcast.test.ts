// The broadcast relay on its own: frames in, frames out, with a session and no sockets.
import t from 'tap'
import { silentLogger } from '../../src/common/log.js'
import { BroadcastRelay } from '../../src/controller/broadcast.js'
import type { Header, JsonObject, Message } from '../../src/protocol/messages.js'
import { Session } from '../../src/protocol/session.js'
import type { Frames } from '../../src/transport/sockets.js'

const KEY = 'broadcast-test-key'
const CLIENT = Buffer.from('client-1')

interface Harness {
  relay: BroadcastRelay
  toEngines: Frames[]
  toClient: Frames[]
  client: Session
  engine: (uuid: string) => Session
  connected: Set<string>
}

function harness(): Harness {
  const toEngines: Frames[] = []
  const toClient: Frames[] = []
  const connected = new Set(['A', 'B', 'C'])
  const relay = new BroadcastRelay(new Session({ key: KEY }), {
    toEngine: (frames) => toEngines.push(frames),
    toClient: (frames) => toClient.push(frames),
    isConnected: (uuid) => connected.has(uuid),
    log: silentLogger,
  })
  const engines = new Map<string, Session>()
  const engine = (uuid: string): Session => {
    let s = engines.get(uuid)
    if (!s) engines.set(uuid, (s = new Session({ key: KEY, session: uuid })))
    return s
  }
  return { relay, toEngines, toClient, client: new Session({ key: KEY }), engine, connected }
}

/** A client's broadcast request as it arrives at the controller's ROUTER. */
function request(h: Harness, targets: [string, number][], coalescing: boolean): { frames: Frames; msgId: string } {
  const msg = h.client.msg('apply_request', {}, { metadata: { targets, is_broadcast: true, is_coalescing: coalescing }, buffers: [Buffer.from('f')] })
  return { frames: h.client.serialize(msg, [CLIENT]), msgId: msg.header.msg_id }
}

/** What the engine `uuid` received, parsed; and a reply to it carrying `result`, as the engine would send it. */
function answer(h: Harness, frames: Frames, result: string, status = 'ok'): Frames {
  const uuid = (frames[0] as Buffer).toString()
  const { idents, msg } = h.engine(uuid).deserialize(frames.slice(1))
  const metadata = { engine: uuid, status, is_broadcast: true, is_coalescing: msg.metadata.is_coalescing, original_msg_id: msg.metadata.original_msg_id }
  const content = status === 'ok' ? { status } : { status, ename: 'ZeroDivisionError', evalue: 'division by zero', traceback: [] }
  const reply = h.engine(uuid).msg('apply_reply', content, { parent: msg.header, metadata, buffers: status === 'ok' ? [Buffer.from(result)] : [] })
  return [Buffer.from(uuid), ...h.engine(uuid).serialize(reply, idents)]
}

function received(h: Harness, frames: Frames): Message {
  t.same(frames[0], CLIENT, 'addressed to the client that asked')
  return h.client.deserialize(frames.slice(1)).msg
}

t.test('non-coalescing: each engine gets its own msg_id and each reply goes back as it is', async (t) => {
  const h = harness()
  const { frames, msgId } = request(h, [['A', 0], ['B', 1]], false)
  h.relay.submitted(frames)
  t.equal(h.toEngines.length, 2)
  const first = new Session({ key: KEY }).deserialize((h.toEngines[0] as Frames).slice(1)).msg
  t.equal(first.header.msg_id, `${msgId}_A`)
  t.equal(first.metadata.original_msg_id, msgId)
  t.same(first.buffers.map(String), ['f'], 'buffers forwarded')
  const replyB = answer(h, h.toEngines[1] as Frames, 'b')
  h.relay.replied(replyB)
  t.same(h.toClient[0], replyB.slice(1), 'forwarded byte for byte, engine identity stripped')
  h.relay.replied(answer(h, h.toEngines[0] as Frames, 'a'))
  t.equal((received(h, h.toClient[1] as Frames).parent_header as Header).msg_id, `${msgId}_A`)
  t.equal(h.relay.pending, 0)
})

t.test('coalescing: one message once all answered, targets and buffers in the order asked', async (t) => {
  const h = harness()
  const { frames, msgId } = request(h, [['C', 2], ['A', 0], ['B', 1]], true)
  h.relay.submitted(frames)
  const [toC, toA, toB] = h.toEngines as [Frames, Frames, Frames]
  h.relay.replied(answer(h, toA, 'a'))
  h.relay.replied(answer(h, toB, 'b'))
  t.equal(h.toClient.length, 0, 'nothing until every engine answered')
  h.relay.replied(answer(h, toC, 'c'))
  t.equal(h.toClient.length, 1)
  const msg = received(h, h.toClient[0] as Frames)
  t.equal(msg.metadata.original_msg_id, msgId)
  t.equal(msg.metadata.is_coalescing, true)
  t.same(msg.metadata.broadcast_targets, [['C', 2], ['A', 0], ['B', 1]])
  t.same(msg.buffers.map(String), ['c', 'a', 'b'])
  t.equal((msg.content).status, 'ok')
})

t.test('coalescing: a failed engine makes the combined reply an error, whichever answered last', async (t) => {
  const h = harness()
  h.relay.submitted(request(h, [['A', 0], ['B', 1]], true).frames)
  h.relay.replied(answer(h, h.toEngines[0] as Frames, '', 'error'))
  h.relay.replied(answer(h, h.toEngines[1] as Frames, 'b'))
  const msg = received(h, h.toClient[0] as Frames)
  t.equal((msg.content).ename, 'ZeroDivisionError')
  t.equal(msg.metadata.status, 'error')
  const each = msg.metadata.broadcast_replies as { content: JsonObject; metadata: JsonObject; buffers: number }[]
  t.same(each.map((r) => [r.content.status, r.metadata.engine, r.buffers]), [['error', 'A', 0], ['ok', 'B', msg.buffers.length]], 'each engine\'s own reply is listed, in target order')
})

t.test('an engine that is not connected, or dies, is answered for with an EngineError', async (t) => {
  for (const coalescing of [false, true]) {
    const h = harness()
    h.connected.delete('C')
    const { frames, msgId } = request(h, [['A', 0], ['B', 1], ['C', 2]], coalescing)
    h.relay.submitted(frames)
    t.equal(h.toEngines.length, 2, 'nothing sent to the absent engine')
    h.relay.replied(answer(h, h.toEngines[0] as Frames, 'a'))
    h.relay.engineLeft('B')
    t.equal(h.relay.pending, 0, 'nothing left waiting')
    const late = answer(h, h.toEngines[1] as Frames, 'b')
    t.throws(() => h.relay.replied(late), { name: 'ProtocolError', message: /not in flight/ }, 'the late reply is refused, for the receive loop to count')
    const replies = h.toClient.map((f) => received(h, f))
    if (coalescing) {
      t.equal(replies.length, 1)
      t.equal((replies[0]?.content as JsonObject).ename, 'EngineError')
      t.same(replies[0]?.metadata.broadcast_targets, [['A', 0], ['B', 1], ['C', 2]])
    } else {
      t.same(replies.map((r) => (r.parent_header as Header).msg_id).sort(), [`${msgId}_A`, `${msgId}_B`, `${msgId}_C`], 'one reply per engine; the late one dropped')
      t.same(replies.map((r) => (r.content).ename ?? 'ok').sort(), ['EngineError', 'EngineError', 'ok'])
      t.match((replies.find((r) => (r.parent_header as Header).msg_id === `${msgId}_B`)?.content as JsonObject).evalue, /died/)
    }
  }
})

t.test('a request without a proper targets list is refused by name', async (t) => {
  const h = harness()
  const msg = h.client.msg('apply_request', {}, { metadata: { targets: [['A']], is_coalescing: false } })
  t.throws(() => h.relay.submitted(h.client.serialize(msg, [CLIENT])), /broadcast target \["A"\] is not a \[uuid, id\] pair/)
  const none = h.client.msg('apply_request', {}, { metadata: { is_coalescing: false } })
  t.throws(() => h.relay.submitted(h.client.serialize(none, [CLIENT])), /no targets list/)
  t.equal(h.toEngines.length, 0)
})
