import { statSync, existsSync, readFileSync } from 'node:fs'
import t from 'tap'
import { newSessionId } from '../../src/common/ids.js'
import { createDealer, createSubscriber, closeAll } from '../../src/transport/sockets.js'
import { startController, type Teardown } from '../helpers/processes.js'
import { RawPeer } from '../helpers/peer.js'

/** Echoes the controller's pings as an engine's heart would, until the test ends or stop() is called. */
function heart(t: Teardown, peer: RawPeer, uuid: string): { stop: () => void } {
  const ping = createSubscriber()
  const pong = createDealer({ routingId: uuid })
  ping.connect(peer.url('hb_ping'))
  pong.connect(peer.url('hb_pong'))
  void (async () => {
    try {
      for await (const frames of ping) await pong.send(frames)
    } catch {
      // closed
    }
  })()
  const stop = (): void => closeAll([ping, pong])
  t.teardown(stop)
  return { stop }
}

t.test('connection files: both written 0600 after binding, with the keys peers read; removed on SIGTERM', async (t) => {
  const c = await startController(t)
  for (const file of [c.clientFile, c.engineFile]) t.equal(statSync(file).mode & 0o777, 0o600, file)
  const client = JSON.parse(readFileSync(c.clientFile, 'utf8')) as Record<string, unknown>
  const engine = JSON.parse(readFileSync(c.engineFile, 'utf8')) as Record<string, unknown>
  for (const key of ['interface', 'registration', 'control', 'mux', 'task', 'task_scheme', 'iopub', 'notification', 'broadcast', 'key', 'pack', 'unpack', 'signature_scheme', 'location']) t.ok(key in client, `client file has ${key}`)
  for (const key of ['interface', 'registration', 'control', 'mux', 'task', 'iopub', 'hb_ping', 'hb_pong', 'broadcast', 'key']) t.ok(key in engine, `engine file has ${key}`)
  t.equal(client.task_scheme, 'leastload')
  t.equal(client.interface, 'tcp://127.0.0.1')
  t.ok(Array.isArray(engine.broadcast), 'engine broadcast is a list')
  t.equal(client.registration, engine.registration)
  const started = Date.now()
  await c.proc.stop('SIGTERM', 10_000)
  const { code, signal } = await c.proc.exited
  t.same({ code, signal }, { code: 0, signal: null }, 'SIGTERM was handled: the controller stopped itself')
  // ipyparallel's launcher kills a controller that has not exited 5 s after SIGTERM (stop_seconds_until_kill).
  t.ok(Date.now() - started < 5000, `exited in ${Date.now() - started} ms, before a launcher would kill it (5000 ms)`)
  t.notOk(existsSync(c.clientFile))
  t.notOk(existsSync(c.engineFile))
})

t.test('registration is two-phase: completed by the first heartbeat, then notified', async (t) => {
  const c = await startController(t)
  const client = new RawPeer(t, c.clientFile)
  const notifications = client.subscriber('notification')
  const query = client.dealer('registration')
  const uuid = newSessionId()
  const engine = new RawPeer(t, c.engineFile, uuid)
  const reg = engine.dealer('registration', uuid)

  const request = engine.session.msg('registration_request', { uuid, language: 'javascript' })
  await reg.send(engine.session.serialize(request))
  const { msg: reply } = await reg.reply(request.header)
  t.match(reply.content, { status: 'ok', id: 0, hb_period: 250 })
  t.type((reply.content as { connection_info: { mux: unknown } }).connection_info.mux, 'number')

  const before = client.session.msg('connection_request', {})
  await query.send(client.session.serialize(before))
  const beforeReply = (await query.reply(before.header)).msg.content as { status: string; engines: object; connection_info: object }
  t.equal(beforeReply.status, 'ok')
  t.same(beforeReply.engines, {}, 'not registered before its heart is seen')
  t.notOk('key' in beforeReply.connection_info, 'the client channels, without the key')

  heart(t, engine, uuid)
  const { msg: note } = await notifications.ofType('registration_notification')
  t.same(note.content, { id: 0, uuid })
  const after = client.session.msg('connection_request', {})
  await query.send(client.session.serialize(after))
  t.match((await query.reply(after.header)).msg.content, { status: 'ok', engines: { '0': uuid } })

  const again = engine.session.msg('registration_request', { uuid })
  await reg.send(engine.session.serialize(again))
  t.match((await reg.reply(again.header)).msg.content, { status: 'error', ename: 'KeyError', evalue: /in use/ })
})

t.test('an engine whose heart stops is unregistered and notified', async (t) => {
  const c = await startController(t)
  const client = new RawPeer(t, c.clientFile)
  const notifications = client.subscriber('notification')
  const uuid = newSessionId()
  const engine = new RawPeer(t, c.engineFile, uuid)
  const reg = engine.dealer('registration', uuid)
  await reg.send(engine.frames('registration_request', { uuid }))
  const h = heart(t, engine, uuid)
  await notifications.ofType('registration_notification')
  h.stop()
  // 10 missed beats of 250 ms: about 3 s.
  const { msg } = await notifications.ofType('unregistration_notification', 20_000)
  t.same(msg.content, { id: 0, uuid })
})

t.test('unknown requests get hub_error; unknown engines in queue_request get IndexError', async (t) => {
  const c = await startController(t)
  const client = new RawPeer(t, c.clientFile)
  const query = client.dealer('registration')
  const bad = client.session.msg('foo_request', {})
  await query.send(client.session.serialize(bad))
  const { msg } = await query.reply(bad.header)
  t.equal(msg.header.msg_type, 'hub_error')
  t.match(msg.content, { status: 'error', ename: 'KeyError', evalue: /Bad Message Type: 'foo_request'/, engine_info: {} })

  const q = client.session.msg('queue_request', { targets: [99], verbose: false })
  await query.send(client.session.serialize(q))
  t.match((await query.reply(q.header)).msg.content, { status: 'error', ename: 'IndexError', evalue: /No Such Engine: \[99\]/ })

  const all = client.session.msg('queue_request', { targets: null, verbose: false })
  await query.send(client.session.serialize(all))
  t.same((await query.reply(all.header)).msg.content, { status: 'ok', unassigned: 0 })
})

t.test('a request with malformed content is answered with an error naming the field', async (t) => {
  const c = await startController(t)
  const client = new RawPeer(t, c.clientFile)
  const query = client.dealer('registration')
  const ask = async (type: string, content: object): Promise<unknown> => {
    const request = client.session.msg(type, content)
    await query.send(client.session.serialize(request))
    return (await query.reply(request.header)).msg.content
  }
  t.match(await ask('registration_request', { uuid: 5 }), { status: 'error', ename: 'ValueError', evalue: 'registration_request: uuid must be a non-empty string, not 5' })
  t.match(await ask('result_request', { msg_ids: [1] }), { status: 'error', ename: 'TypeError', evalue: 'result_request: msg_ids must be a list of message id strings, not [1]' })
  t.match(await ask('db_request', { query: 5 }), { status: 'error', ename: 'TypeError', evalue: /db_request: query must be an object or null, not 5/ })
  t.match(await ask('purge_request', { msg_ids: [null] }), { status: 'error', ename: 'TypeError', evalue: /purge_request: msg_ids must be/ })
  t.equal(c.proc.child.exitCode, null, 'controller still running')
})

t.test('forged, replayed and malformed messages are dropped; the controller goes on serving', async (t) => {
  const c = await startController(t)
  const client = new RawPeer(t, c.clientFile)
  const query = client.dealer('registration')
  const task = client.dealer('task')
  const request = client.session.msg('connection_request', {})
  const good = client.session.serialize(request)
  const tampered = [...good]
  tampered[3] = Buffer.from(JSON.stringify({ ...request.header, msg_type: 'shutdown_request' }))
  await query.send(tampered) // signature no longer matches
  await query.send([Buffer.from('garbage')]) // no delimiter
  await query.send([Buffer.from('<IDS|MSG>'), Buffer.from('x')]) // too short
  await task.send([Buffer.from('<IDS|MSG>'), Buffer.alloc(0), Buffer.from('{'), Buffer.from('{}'), Buffer.from('{}'), Buffer.from('{}')])
  await query.send(good)
  await query.reply(request.header)
  await query.send(good) // a replay of a message already seen
  const second = client.session.msg('connection_request', {})
  await query.send(client.session.serialize(second))
  await query.reply(second.header)
  t.equal(query.received.length, 0, 'nothing answered the bad messages or the replay')
  t.equal(c.proc.child.exitCode, null, 'controller still running')
  // The controller logs each drop; its stderr reaches us on a pipe, not in step with the socket replies.
  t.ok(await c.proc.waitForOutput(/invalid message signature/, 15_000))
  t.ok(await c.proc.waitForOutput(/duplicate message signature/, 15_000))
})

t.test('--Session.digest_history_size bounds the signatures remembered against replays', async (t) => {
  const c = await startController(t, ['--Session.digest_history_size=16'])
  const client = new RawPeer(t, c.clientFile)
  const query = client.dealer('registration')
  const first = client.session.msg('connection_request', {})
  const firstFrames = client.session.serialize(first)
  await query.send(firstFrames)
  await query.reply(first.header)
  await query.send(firstFrames) // within the window: refused
  t.ok(await c.proc.waitForOutput(/duplicate message signature/, 15_000))
  for (let i = 0; i < 20; i++) {
    const next = client.session.msg('connection_request', {})
    await query.send(client.session.serialize(next))
    await query.reply(next.header)
  }
  await query.send(firstFrames) // 20 signatures later: forgotten, so answered again
  await query.reply(first.header)
  t.pass('a replay older than the window is no longer recognised')
  t.notMatch(c.proc.output(), /ignoring option/, 'the ipcontroller spelling is understood')
})

t.test('a client shutdown_request is answered, notified, and stops the controller', async (t) => {
  const c = await startController(t)
  const client = new RawPeer(t, c.clientFile)
  const notifications = client.subscriber('notification')
  const query = client.dealer('registration')
  // Let the subscription reach the publisher before the notification is sent.
  const probe = client.session.msg('connection_request', {})
  await query.send(client.session.serialize(probe))
  await query.reply(probe.header)
  const request = client.session.msg('shutdown_request', {})
  await query.send(client.session.serialize(request))
  t.same((await query.reply(request.header)).msg.content, { status: 'ok' })
  t.same((await notifications.ofType('shutdown_notification')).msg.content, { status: 'ok' })
  t.equal((await c.proc.exited).code, 0)
})

t.test('an unknown --scheme fails at start naming the known ones', async (t) => {
  await t.rejects(startController(t, ['--scheme=fastest']), /unknown scheme 'fastest'; known schemes: leastload, lru/)
})
