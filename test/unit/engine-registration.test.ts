import t, { type Test } from 'tap'
import { silentLogger } from '../../src/common/log.js'
import { register } from '../../src/engine/registration.js'
import { Session } from '../../src/protocol/session.js'
import { Outbox, bindPort, createDealer, createRouter } from '../../src/transport/sockets.js'

/** A hub stand-in: a bound ROUTER, and an engine-side DEALER connected to it. */
async function setup(t: Test) {
  const key = 'test-key'
  const hub = createRouter()
  const port = await bindPort(hub, 'tcp://127.0.0.1')
  const engineSession = new Session({ key, session: 'eeeeeeee-000000000000000000000001' })
  const socket = createDealer({ routingId: engineSession.session })
  socket.connect(`tcp://127.0.0.1:${port}`)
  t.teardown(() => {
    hub.close()
    socket.close()
  })
  const hubSession = new Session({ key })
  const outbox = new Outbox(socket, () => {})
  const hubOutbox = new Outbox(hub, () => {})
  const receive = async () => {
    const frames = await hub.receive()
    return hubSession.deserialize(frames)
  }
  const answer = (idents: Buffer[], content: object) =>
    hubOutbox.send(hubSession.serialize(hubSession.msg('registration_reply', content), idents))
  return { engineSession, socket, outbox, receive, answer }
}

t.test('sends uuid, requested id and language, and returns the id and heartbeat period', async (t) => {
  const { engineSession, socket, outbox, receive, answer } = await setup(t)
  const registering = register({ session: engineSession, socket, outbox, requestedId: 3, timeoutMs: 5000, log: silentLogger })
  const { idents, msg } = await receive()
  t.equal(msg.header.msg_type, 'registration_request')
  t.same(msg.content, { uuid: engineSession.session, language: 'javascript', id: 3 })
  t.equal(idents[0]?.toString(), engineSession.session, 'the DEALER routing id is the uuid')
  t.same(msg.metadata, { engine: engineSession.session })
  answer(idents, { status: 'ok', id: 5, hb_period: 250, connection_info: {} })
  t.same(await registering, { id: 5, hbPeriodMs: 250 })
})

t.test('an error reply is a refusal naming the reason', async (t) => {
  const { engineSession, socket, outbox, receive, answer } = await setup(t)
  const registering = register({ session: engineSession, socket, outbox, requestedId: undefined, timeoutMs: 5000, log: silentLogger })
  const { idents } = await receive()
  answer(idents, { status: 'error', ename: 'KeyError', evalue: "uuid 'x' in use", traceback: [] })
  await t.rejects(registering, { name: 'RegistrationRefused', message: /KeyError: uuid 'x' in use/ })
})

t.test('no reply within the timeout unregisters and throws TimeoutError', async (t) => {
  const { engineSession, socket, outbox, receive } = await setup(t)
  const registering = register({ session: engineSession, socket, outbox, requestedId: undefined, timeoutMs: 200, log: silentLogger })
  await receive()
  await t.rejects(registering, { name: 'TimeoutError', message: /within 200 ms/ })
  const { msg } = await receive()
  t.equal(msg.header.msg_type, 'unregistration_request')
  t.same(msg.content, { id: null })
})
