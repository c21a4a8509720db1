import t from 'tap'
import { Client } from '../../src/client/client.js'
import { ClientClosedError } from '../../src/client/connection.js'
import { EngineError, RemoteError, TaskAborted, TimeoutError } from '../../src/common/errors.js'
import { silentLogger } from '../../src/common/log.js'
import type { TaskMetadata } from '../../src/protocol/messages.js'
import { FakeController } from '../helpers/fake-controller.js'

/** A fake controller and a client connected to it, both closed at the end of the test. */
async function setup(t: { teardown(fn: () => unknown): void }, engines: number[] = [0]): Promise<{ hub: FakeController; client: Client }> {
  const hub = await FakeController.start(engines)
  const client = new Client({ connectionInfo: hub.connectionInfo, log: silentLogger, timeoutMs: 5000 })
  t.teardown(async () => {
    await client.close()
    hub.close()
  })
  await client.ready
  return { hub, client }
}

t.test('connecting fills the engine table; notifications keep it current', async (t) => {
  const { hub, client } = await setup(t, [0, 3])
  t.same(client.ids, [0, 3])
  const waiting = client.waitForEngines(3, { timeoutMs: 5000 })
  hub.notify('registration_notification', 5)
  await waiting
  t.same(client.ids, [0, 3, 5])
  hub.notify('unregistration_notification', 0)
  await t.resolveMatch(pollUntil(() => client.ids.length === 2), true)
  t.same(client.ids, [3, 5])
})

t.test('waitForEngines rejects with TimeoutError', async (t) => {
  const { client } = await setup(t)
  await t.rejects(client.waitForEngines(2, { timeoutMs: 50 }), { name: 'TimeoutError', message: /1 of 2 engines/ })
})

t.test('queueStatus has numeric engine keys and unassigned', async (t) => {
  const { client } = await setup(t, [0, 1])
  t.same(await client.queueStatus(), { unassigned: 2, 0: { queue: 0, completed: 0, tasks: 1 }, 1: { queue: 0, completed: 1, tasks: 1 } })
})

t.test('a malformed hub reply rejects with a ProtocolError naming the field', async (t) => {
  const { hub, client } = await setup(t)
  hub.cannedReplies.set('history_request', { status: 'ok', history: [1] })
  await t.rejects(client.hubHistory(), { name: 'ProtocolError', message: 'history_reply: history must be a list of strings, not [1]' })
  hub.cannedReplies.set('result_request', { status: 'ok', pending: 'p', completed: [] })
  await t.rejects(client.resultStatus('m1'), { name: 'ProtocolError', message: /result_reply: pending must be a list of strings/ })
  // Polled in the background: the malformed reply rejects the result rather than escaping as an unhandled rejection.
  await t.rejects(client.getResult('m1'), { name: 'ProtocolError', message: /result_reply: pending must be a list of strings/ })
  hub.cannedReplies.set('queue_request', { status: 'ok', unassigned: 'none' })
  await t.rejects(client.queueStatus(), { name: 'ProtocolError', message: /queue_reply: unassigned must be a count or a list of msg ids, not "none"/ })
})

t.test('no connection_reply: ready rejects with TimeoutError naming the controller', async (t) => {
  const hub = await FakeController.start()
  hub.answerConnect = false
  const client = new Client({ connectionInfo: hub.connectionInfo, log: silentLogger, timeoutMs: 200 })
  t.teardown(async () => {
    await client.close()
    hub.close()
  })
  await t.rejects(client.ready, TimeoutError)
  await t.rejects(client.ready, { message: /no connection_reply from the controller at tcp:\/\/127\.0\.0\.1:\d+ within 200 ms/ })
  t.throws(() => client.loadBalancedView().apply(() => 1), { message: /could not connect/ })
})

t.test('a task submitted right after new Client() is queued and runs, as in ipyparallel', async (t) => {
  const hub = await FakeController.start()
  const client = new Client({ connectionInfo: hub.connectionInfo, log: silentLogger })
  t.teardown(async () => {
    await client.close()
    hub.close()
  })
  t.equal(await client.loadBalancedView().apply((a: number) => a + 1, 1), 2)
})

t.test('before the connection file exists, submitting is refused with advice', async (t) => {
  const client = new Client({ connectionFile: '/nonexistent/ipcontroller-client.json', timeoutMs: 200, log: silentLogger })
  t.teardown(() => client.close())
  t.throws(() => client.loadBalancedView().apply(() => 1), { name: 'ConfigError', message: /await client\.ready/ })
  await t.rejects(client.ready, /does not exist/)
})

t.test('load-balanced apply: wire metadata, value, reply metadata and stdout', async (t) => {
  const { hub, client } = await setup(t, [0, 1])
  const view = client.loadBalancedView([1], { timeoutMs: 1500, retries: 2 })
  const ar = view.apply(function add(a: number, b: number) { return a + b }, 2, 3)
  t.equal(await ar, 5)
  const [sent] = hub.applies('task')
  const md = sent?.msg.metadata as TaskMetadata
  t.same(md, { after: [], follow: [], timeout: 1.5, targets: ['engine-uuid-1'], retries: 2, language: 'javascript', priority: 0, iopub_status: false })
  t.same(sent?.msg.content, {})
  t.equal(ar.metadata.engineId, 0)
  t.equal(ar.metadata.status, 'ok')
  t.ok(ar.metadata.started instanceof Date && ar.metadata.completed instanceof Date && ar.metadata.received instanceof Date)
  t.ok(ar.metadata.submitted.getTime() <= (ar.metadata.received as Date).getTime())
  t.ok(ar.successful())
  await pollUntil(() => ar.metadata.stdout !== '')
  t.equal(ar.metadata.stdout, 'running add\n')
})

t.test('after and follow travel as msg-id lists or the dict form', async (t) => {
  const { hub, client } = await setup(t)
  const view = client.loadBalancedView()
  const first = view.apply(() => 1)
  await first
  await view.withFlags({ after: first, follow: { dependencies: ['x'], all: false } }).apply(() => 2)
  const md = hub.applies('task')[1]?.msg.metadata as TaskMetadata
  t.same(md.after, first.msgIds)
  t.same(md.follow, { dependencies: ['x'], all: false, success: true, failure: false })
})

t.test('map sends one task per chunk and reassembles in order', async (t) => {
  const { hub, client } = await setup(t)
  const view = client.loadBalancedView()
  const result = view.map((x: number, y: number) => x * y, [1, 2, 3, 4, 5], [10, 20, 30, 40, 50, 60], { chunksize: 2 })
  t.equal(result.msgIds.length, 3)
  t.same(await result, [10, 40, 90, 160, 250])
  t.equal(hub.applies('task').length, 3)
  const items: number[] = []
  for await (const x of result) items.push(x)
  t.same(items, [10, 40, 90, 160, 250])
})

t.test('a remote error rejects with RemoteError naming the engine; aborted with TaskAborted', async (t) => {
  const { client } = await setup(t)
  const view = client.loadBalancedView()
  await t.rejects(view.apply(() => { throw new RangeError('too far') }), { name: 'RemoteError', remoteName: 'RangeError', engineId: 0, message: /\[engine 0\] RangeError: too far/ })
  const aborted = view.apply(() => 'abort me')
  await t.rejects(aborted, TaskAborted)
  t.equal(aborted.metadata.status, 'aborted')
  const failed = view.apply(() => { throw new Error('x') })
  await failed.wait()
  t.notOk(failed.successful())
  t.ok((await failed.catch((e: unknown) => e)) instanceof RemoteError)
})

t.test('direct apply addresses the engine; its unregistration fails the task with EngineError', async (t) => {
  const { hub, client } = await setup(t, [0, 1])
  t.equal(await client.directView(1).apply(() => 'hi'), 'hi')
  t.equal(hub.applies('mux')[0]?.target, 'engine-uuid-1')
  t.same(await client.directView().apply(() => 7), [7, 7])
  const held = client.directView(1).apply(function hold() { return 1 })
  const other = client.directView(0).apply(function hold() { return 1 })
  hub.notify('unregistration_notification', 1)
  await t.rejects(held, EngineError)
  await t.rejects(held, { message: /Engine 1 died while running task/ })
  t.notOk(other.ready(), 'a task on another engine is untouched')
})

t.test('close rejects pending results, requests and waiters with ClientClosedError', async (t) => {
  const { client } = await setup(t)
  const held = client.loadBalancedView().apply(function hold() { return 1 })
  const waiting = client.waitForEngines(9)
  await client.close()
  await t.rejects(held, ClientClosedError)
  await t.rejects(held, { message: /closed before the result of task/ })
  await t.rejects(waiting, ClientClosedError)
  t.throws(() => client.loadBalancedView().apply(() => 1), ClientClosedError)
  await client.close() // idempotent
})

t.test('get(timeoutMs) rejects with TimeoutError and the task keeps going', async (t) => {
  const { client } = await setup(t)
  const held = client.loadBalancedView().apply(function hold() { return 1 })
  await t.rejects(held.get(30), { name: 'TimeoutError', message: /not ready within 30 ms/ })
  t.equal(await held.wait(10), false)
  t.notOk(held.ready())
})

t.test('shutdown_notification closes the client', async (t) => {
  const { client } = await setup(t)
  const held = client.loadBalancedView().apply(function hold() { return 1 })
  await client.shutdown({ hub: true })
  await t.rejects(held, { name: 'ClientClosedError', message: /controller shut down/ })
  t.notOk(client.connected)
})

t.test('the typed API: apply, map, imap, parallel and direct views infer their value types', async (t) => {
  const { client } = await setup(t, [0, 1])
  const view = client.loadBalancedView()
  const sum: number = await view.apply((a, b) => a + b, 1, 2)
  t.equal(sum, 3)
  const words: string[] = await view.map((x) => `#${x}`, [1, 2])
  t.same(words, ['#1', '#2'])
  const awaited: number[] = await view.map(async (x: number) => x * 2, new Set([1, 2]))
  t.same(awaited, [2, 4])
  const lazy: number[] = []
  for await (const x of view.imap((x: number) => x + 1, [1, 2, 3], { maxOutstanding: 1 })) lazy.push(x)
  t.same(lazy, [2, 3, 4])
  const pf = view.parallel((x: number) => 10 * x ** 4)
  const one: number = await pf(3)
  const many: number[] = await pf.map([1, 2])
  t.same([one, many], [810, [10, 160]])
  const single: string = await client.directView(1).apply(() => 'one')
  const several: string[] = await client.directView([0, 1]).apply(() => 'each')
  t.same([single, several], ['one', ['each', 'each']])
  t.same(await client.directView().map((x: number) => x * 3, [1, 2, 3]), [3, 6, 9])
})

async function pollUntil(check: () => boolean, ceilingMs = 5000): Promise<boolean> {
  const end = Date.now() + ceilingMs
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 5))
  }
  return true
}
