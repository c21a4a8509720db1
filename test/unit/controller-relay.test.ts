// The mux/control relay on its own: frames in, frames out, a ledger over an in-memory store; no sockets.
import t from 'tap'
import { silentLogger } from '../../src/common/log.js'
import { DirectRelay } from '../../src/controller/relay.js'
import { MemoryTaskStore } from '../../src/controller/store/index.js'
import { TaskLedger } from '../../src/controller/task-ledger.js'
import { Session } from '../../src/protocol/session.js'
import type { Frames } from '../../src/transport/sockets.js'

const KEY = 'relay-test-key'
const CLIENT = Buffer.from('client-1')
const ENGINE = { id: 3, uuid: 'engine-a', language: 'javascript' }

interface Harness {
  relay: DirectRelay
  ledger: TaskLedger
  toEngine: { frames: Frames; undeliverable: () => void }[]
  toClient: Frames[]
  client: Session
  engine: Session
}

function harness(recorded = true): Harness {
  const toEngine: Harness['toEngine'] = []
  const toClient: Frames[] = []
  const ledger = new TaskLedger(new MemoryTaskStore(), silentLogger)
  ledger.engineJoined(ENGINE, false)
  const relay = new DirectRelay(new Session({ key: KEY }), {
    toEngine: (frames, undeliverable) => toEngine.push({ frames, undeliverable }),
    toClient: (frames) => toClient.push(frames),
    isConnected: (uuid) => uuid === ENGINE.uuid,
  }, recorded ? ledger : undefined)
  return { relay, ledger, toEngine, toClient, client: new Session({ key: KEY }), engine: new Session({ key: KEY, session: ENGINE.uuid }) }
}

/** A client's request to `engine` as it arrives at the controller's ROUTER: `[client, engine, msg]`. */
function request(h: Harness, engine = ENGINE.uuid): { frames: Frames; msgId: string } {
  const msg = h.client.msg('apply_request', {}, { buffers: [Buffer.from('f')] })
  return { frames: h.client.serialize(msg, [CLIENT, Buffer.from(engine)]), msgId: msg.header.msg_id }
}

/** The engine's reply to what it received, as it arrives at the controller's ROUTER: `[engine, client, msg]`. */
function answer(h: Harness, received: Frames): Frames {
  const { idents, msg } = h.engine.deserialize(received.slice(1))
  const reply = h.engine.msg('apply_reply', { status: 'ok' }, { parent: msg.header, metadata: { engine: ENGINE.uuid, status: 'ok' } })
  return h.engine.serialize(reply, [Buffer.from(ENGINE.uuid), ...idents])
}

t.test('a request goes to its engine with the identities swapped and is recorded on that engine', async (t) => {
  const h = harness()
  const { frames, msgId } = request(h)
  h.relay.submitted(frames)
  const sent = h.toEngine[0]?.frames ?? []
  t.same(sent.slice(0, 2), [Buffer.from(ENGINE.uuid), CLIENT])
  t.same(sent.slice(2), frames.slice(2), 'the message itself passes unchanged')
  t.ok(h.ledger.isPending(msgId))
  t.same([...(h.ledger.queuesOf(ENGINE.uuid)?.queue ?? [])], [msgId])
})

t.test('a reply goes back to its client with the identities swapped and ends the request', async (t) => {
  const h = harness()
  const { frames, msgId } = request(h)
  h.relay.submitted(frames)
  const reply = answer(h, h.toEngine[0]?.frames ?? [])
  h.relay.replied(reply)
  t.same(h.toClient[0]?.slice(0, 2), [CLIENT, Buffer.from(ENGINE.uuid)])
  t.notOk(h.ledger.isPending(msgId))
  t.equal(h.ledger.queuesOf(ENGINE.uuid)?.completed, 1)
})

t.test('a request for an engine that is not connected is answered with EngineError and not recorded', async (t) => {
  const h = harness()
  const { frames, msgId } = request(h, 'engine-gone')
  h.relay.submitted(frames)
  t.same(h.toEngine, [])
  t.equal(h.toClient[0]?.[0]?.toString(), CLIENT.toString())
  const reply = h.client.deserialize(h.toClient[0] ?? []).msg
  t.match(reply.content, { status: 'error', ename: 'EngineError', evalue: /no engine engine-gone is connected/ })
  t.equal((reply.parent_header as { msg_id?: string }).msg_id, msgId)
  t.notOk(h.ledger.isPending(msgId))
})

t.test('a request ZeroMQ cannot deliver is answered with EngineError and ends in the records', async (t) => {
  const h = harness()
  const { frames, msgId } = request(h)
  h.relay.submitted(frames)
  h.toEngine[0]?.undeliverable()
  const reply = h.client.deserialize(h.toClient[0] ?? []).msg
  t.equal(reply.content.ename, 'EngineError')
  t.notOk(h.ledger.isPending(msgId))
  t.same([...(h.ledger.queuesOf(ENGINE.uuid)?.queue ?? [])], [])
  t.equal(h.ledger.queuesOf(ENGINE.uuid)?.completed, 0, 'not counted as completed')
})

t.test('without a ledger (control) nothing is recorded', async (t) => {
  const h = harness(false)
  const { frames, msgId } = request(h)
  h.relay.submitted(frames)
  h.relay.replied(answer(h, h.toEngine[0]?.frames ?? []))
  t.equal(h.toClient.length, 1)
  t.notOk(h.ledger.isPending(msgId))
  t.same(h.ledger.queuesOf(ENGINE.uuid), { queue: new Set(), tasks: new Set(), completed: 0 })
})

t.test('the requests an engine took with it end with EngineError in the records', async (t) => {
  const h = harness()
  const { frames, msgId } = request(h)
  h.relay.submitted(frames)
  const held = h.ledger.engineLeft(ENGINE, 'heartbeat stopped')
  h.relay.engineLeft(ENGINE, held)
  t.notOk(h.ledger.isPending(msgId))
  t.match(h.ledger.store.getRecord(msgId).result_content, { status: 'error', ename: 'EngineError', evalue: /Engine 3 died while running task/ })
  t.same(h.toClient, [], 'the client learns it from the unregistration notification')
})

t.test('a message without both identity frames is refused by name', async (t) => {
  const h = harness()
  t.throws(() => h.relay.submitted(h.client.serialize(h.client.msg('apply_request', {}), [CLIENT])), /no engine identity frame/)
  t.throws(() => h.relay.replied(h.engine.serialize(h.engine.msg('apply_reply', {}), [Buffer.from(ENGINE.uuid)])), /no client identity frame/)
})
