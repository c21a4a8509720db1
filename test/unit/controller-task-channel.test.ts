// The task channels on their own: the scheduled channel driven by frames through a fake io (its sockets are made
// but never bound) on a fake clock, and the choice of channel by scheme name.
import t, { type Test } from 'tap'
import { silentLogger } from '../../src/common/log.js'
import { PureTaskChannel } from '../../src/controller/pure-channel.js'
import { ScheduledTaskChannel } from '../../src/controller/scheduled-channel.js'
import { MemoryTaskStore, emptyRecord } from '../../src/controller/store/index.js'
import type { TaskIo } from '../../src/controller/task-channel.js'
import { knownTaskSchemes, taskChannelOf } from '../../src/controller/task-channels.js'
import { TaskLedger } from '../../src/controller/task-ledger.js'
import type { ControllerEvent } from '../../src/controller/ledger-events.js'
import { TASK_INVENTORY, type JsonObject } from '../../src/protocol/messages.js'
import { Session } from '../../src/protocol/session.js'
import { SchemeRegistry, leastload } from '../../src/schedulers/schemes.js'
import type { Frames } from '../../src/transport/sockets.js'
import { FakeClock } from '../helpers/fake-clock.js'

const KEY = 'task-channel-test-key'
const CLIENT = Buffer.from('client-1')
const A = 'engine-a'
const B = 'engine-b'

interface Harness {
  channel: ScheduledTaskChannel
  ledger: TaskLedger
  /** The controller's clock: the ledger's event times and the scheduler's timers. */
  clock: FakeClock
  events: ControllerEvent[]
  /** Frames sent on the engine-facing and the client-facing socket. */
  toEngines: { frames: Frames; undeliverable: (() => void) | undefined }[]
  toClient: Frames[]
  /** The receive loops' handlers, by channel name. */
  loops: Map<string, (frames: Frames) => void>
  warnings: string[]
  client: Session
  engine: (uuid: string) => Session
}

function harness(t: Test, store = new MemoryTaskStore()): Harness {
  const channel = new ScheduledTaskChannel({ scheme: leastload, hwm: 1, random: Math.random, strandedGraceMs: 10, maxEngineDeaths: 3 }, undefined)
  t.teardown(() => {
    channel.sockets.client.close()
    channel.sockets.engine.close()
  })
  // Epoch 0: event times read as milliseconds since the harness was made.
  const clock = new FakeClock(0)
  const ledger = new TaskLedger(store, silentLogger, clock)
  const events: ControllerEvent[] = []
  ledger.events.on((e) => events.push(e))
  const h: Harness = {
    channel, ledger, clock, events, toEngines: [], toClient: [], loops: new Map(), warnings: [], client: new Session({ key: KEY }),
    engine: (uuid) => new Session({ key: KEY, session: uuid }),
  }
  const io: TaskIo = {
    send: (socket, frames, undeliverable) => {
      if (socket === channel.sockets.engine) h.toEngines.push({ frames, undeliverable })
      else h.toClient.push(frames)
    },
    loop: (socket, handle) => h.loops.set(socket === channel.sockets.client ? 'task' : 'task (engines)', handle),
  }
  channel.open({ session: new Session({ key: KEY }), ledger, io, clock: h.clock, engineName: String, log: { ...silentLogger, warn: (m) => h.warnings.push(m) } })
  for (const uuid of [A, B]) {
    ledger.engineJoined({ id: uuid === A ? 0 : 1, uuid, language: 'javascript' }, false)
    channel.engineJoined(uuid, 'javascript')
  }
  events.length = 0
  return h
}

function submit(h: Harness, metadata: JsonObject = {}): string {
  const msg = h.client.msg('apply_request', {}, { metadata: { language: 'javascript', ...metadata }, buffers: [Buffer.from('{}'), Buffer.from('args')] })
  h.loops.get('task')?.(h.client.serialize(msg, [CLIENT]))
  return msg.header.msg_id
}

/** The reply of the engine that got `sent`, as it arrives at the engine-facing ROUTER. */
function answer(h: Harness, sent: Frames, status = 'ok', extra: JsonObject = {}): Frames {
  const uuid = (sent[0] as Buffer).toString()
  const engine = h.engine(uuid)
  const { idents, msg } = engine.deserialize(sent.slice(1))
  const content = status === 'ok' ? { status } : { status, ename: 'Error', evalue: 'failed', traceback: [] }
  const reply = engine.msg('apply_reply', content, { parent: msg.header, metadata: { engine: uuid, status, ...extra } })
  return engine.serialize(reply, [Buffer.from(uuid), ...idents])
}

t.test('a task goes to an engine and its reply to the client; the ledger follows each step', async (t) => {
  const h = harness(t)
  const msgId = submit(h)
  const sent = h.toEngines[0]?.frames ?? []
  t.equal(sent[1]?.toString(), CLIENT.toString(), 'after the engine\'s identity, the client\'s')
  const engine = sent[0]?.toString() ?? ''
  t.same([...(h.ledger.queuesOf(engine)?.tasks ?? [])], [msgId])
  h.loops.get('task (engines)')?.(answer(h, sent))
  t.same(h.toClient[0]?.slice(0, 2).map(String), [CLIENT.toString(), engine])
  t.notOk(h.ledger.isPending(msgId))
  t.same(h.events.map((e) => e.type), ['task-submitted', 'task-assigned', 'task-finished'])
})

t.test('a failed task with retries is re-queued to the other engine; only the last reply reaches the client', async (t) => {
  const h = harness(t)
  const msgId = submit(h, { retries: 1 })
  const first = h.toEngines[0]?.frames ?? []
  h.loops.get('task (engines)')?.(answer(h, first, 'error'))
  t.same(h.toClient, [])
  const second = h.toEngines[1]?.frames ?? []
  t.not(second[0]?.toString(), first[0]?.toString(), 'another engine')
  t.same(h.events.map((e) => e.type), ['task-submitted', 'task-assigned', 'task-requeued', 'task-assigned'])
  t.match(h.events[2], { type: 'task-requeued', msgId, engineUuid: first[0]?.toString(), why: 'failed' })
  h.loops.get('task (engines)')?.(answer(h, second, 'error'))
  t.equal(h.toClient.length, 1)
  t.notOk(h.ledger.isPending(msgId))
})

t.test('a task with bad dependency metadata is refused with InvalidDependency', async (t) => {
  const h = harness(t)
  const msgId = submit(h, { after: 42 })
  t.same(h.toEngines, [])
  const reply = h.client.deserialize(h.toClient[0] ?? []).msg
  t.match(reply.content, { status: 'error', ename: 'InvalidDependency' })
  t.notOk(h.ledger.isPending(msgId))
  t.same([...h.ledger.unassigned], [])
})

t.test('a message that is not a task request is refused with an error naming its type, not queued', async (t) => {
  const h = harness(t)
  const msg = h.client.msg('status', { execution_state: 'idle' }, { metadata: { language: 'javascript' } })
  h.loops.get('task')?.(h.client.serialize(msg, [CLIENT]))
  t.same(h.toEngines, [])
  const reply = h.client.deserialize(h.toClient[0] ?? []).msg
  t.match(reply.content, { status: 'error', ename: 'ProtocolError', evalue: /status message is not a task/ })
  t.notOk(h.ledger.isPending(msg.header.msg_id))
  t.same([...h.ledger.unassigned], [])
})

t.test('a task with no engine free waits unassigned, and is placed when one frees', async (t) => {
  const h = harness(t)
  const ids = [submit(h), submit(h), submit(h)]
  t.equal(h.toEngines.length, 2)
  t.same([...h.ledger.unassigned], [ids[2]])
  h.loops.get('task (engines)')?.(answer(h, h.toEngines[0]?.frames ?? []))
  t.equal(h.toEngines.length, 3)
  t.same([...h.ledger.unassigned], [])
})

t.test('an undeliverable task goes back to the queue as re-queued', async (t) => {
  const h = harness(t)
  const msgId = submit(h)
  const first = h.toEngines[0]
  first?.undeliverable?.()
  t.match(h.events.find((e) => e.type === 'task-requeued'), { msgId, engineUuid: first?.frames[0]?.toString(), why: 'undeliverable' })
})

t.test('a reply to a task not pending on that engine is discarded with a warning; a resent one silently', async (t) => {
  const h = harness(t)
  submit(h)
  const sent = h.toEngines[0]?.frames ?? []
  const reply = answer(h, sent)
  h.loops.get('task (engines)')?.(reply)
  h.loops.get('task (engines)')?.(answer(h, sent, 'ok', { resent: true }))
  t.same(h.warnings, [])
  h.loops.get('task (engines)')?.(answer(h, sent))
  t.match(h.warnings, [/discarded a late reply to task/])
  t.equal(h.toClient.length, 1)
})

t.test('a resubmitted task runs with no client to answer; its result stays in the records', async (t) => {
  const h = harness(t)
  const msg = h.client.msg('apply_request', {}, { metadata: { language: 'javascript' }, buffers: [Buffer.from('{}')] })
  h.channel.resubmit(msg)
  const sent = h.toEngines[0]?.frames ?? []
  t.equal(sent.length > 0, true)
  h.loops.get('task (engines)')?.(answer(h, sent))
  t.same(h.toClient, [])
  t.ok(h.ledger.store.getRecord(msg.header.msg_id).completed instanceof Date)
})

/** The events of one task (or engine), as [type, time, what else matters], in order. */
function trace(h: Harness, id: string): [string, number, string | undefined][] {
  return h.events.flatMap((e): [string, number, string | undefined][] => {
    if ('msgId' in e ? e.msgId !== id : e.engineUuid !== id) return []
    const detail = e.type === 'task-assigned' ? e.engineUuid : e.type === 'task-requeued' ? `${e.why} on ${e.engineUuid}` : e.type === 'task-finished' ? `${e.status}${e.ename ? ` ${e.ename}` : ''}` : undefined
    return [[e.type, e.time, detail]]
  })
}

/** What the hub does when an engine goes: the ledger forgets it, then the channel hears of it. */
function engineLeaves(h: Harness, uuid: string): void {
  h.ledger.engineLeft({ id: uuid === A ? 0 : 1, uuid, language: 'javascript' }, 'heartbeat stopped')
  h.channel.engineLeft(uuid)
}

t.test('a task that waits past its timeout ends with TaskTimeout at exactly that time, to its client and the records', async (t) => {
  const h = harness(t)
  submit(h)
  submit(h) // both engines are full (hwm 1)
  h.clock.advance(1000)
  const msgId = submit(h, { timeout: 0.5 })
  h.clock.advance(499)
  t.same(h.toClient, [])
  t.same([...h.ledger.unassigned], [msgId])
  h.clock.advance(1)
  t.equal(h.toClient.length, 1)
  const reply = h.client.deserialize(h.toClient[0] ?? []).msg
  t.equal(reply.parent_header.msg_id, msgId)
  t.match(reply.content, { status: 'error', ename: 'TaskTimeout' })
  t.notOk(h.ledger.isPending(msgId))
  t.same([...h.ledger.unassigned], [])
  t.match(h.ledger.store.getRecord(msgId).result_content, { ename: 'TaskTimeout' })
  t.same(trace(h, msgId), [['task-submitted', 1000, undefined], ['task-finished', 1500, 'error TaskTimeout']])
  h.clock.advance(60_000)
  t.equal(h.toClient.length, 1, 'it ends once')
})

t.test('the timeout bounds only the wait: a task placed on an engine runs as long as it takes', async (t) => {
  const h = harness(t)
  const msgId = submit(h, { timeout: 0.5 })
  h.clock.advance(60_000)
  t.same(h.toClient, [])
  h.loops.get('task (engines)')?.(answer(h, h.toEngines[0]?.frames ?? []))
  t.match(h.client.deserialize(h.toClient[0] ?? []).msg.content, { status: 'ok' })
  t.same(trace(h, msgId).map(([type, time]) => [type, time]), [['task-submitted', 0], ['task-assigned', 0], ['task-finished', 60_000]])
})

t.test('the task of an engine that dies ends with EngineError once the grace period for late replies is over', async (t) => {
  const h = harness(t)
  const msgId = submit(h)
  const engine = h.toEngines[0]?.frames[0]?.toString() ?? ''
  h.clock.advance(5)
  engineLeaves(h, engine)
  h.clock.advance(9)
  t.same(h.toClient, [], 'not within the grace period (10 ms)')
  h.clock.advance(1)
  const reply = h.client.deserialize(h.toClient[0] ?? []).msg
  t.match(reply.content, { status: 'error', ename: 'EngineError', evalue: `Engine ${engine} died while running task ${msgId}` })
  t.match(reply.metadata, { engine, status: 'error' })
  t.same(trace(h, msgId), [['task-submitted', 0, undefined], ['task-assigned', 0, engine], ['task-finished', 15, 'error EngineError']])
  t.same(trace(h, engine).map(([type, time]) => [type, time]), [['engine-left', 5]])
  t.notOk(h.ledger.isPending(msgId))
})

t.test('a dead engine\'s task with retries runs again on another engine when the grace period is over', async (t) => {
  const h = harness(t)
  const msgId = submit(h, { retries: 1 })
  const first = h.toEngines[0]?.frames[0]?.toString() ?? ''
  const other = first === A ? B : A
  engineLeaves(h, first)
  h.clock.advance(10)
  const second = h.toEngines[1]?.frames ?? []
  t.equal(second[0]?.toString(), other)
  h.clock.advance(5)
  h.loops.get('task (engines)')?.(answer(h, second))
  t.equal(h.toClient.length, 1)
  t.same(trace(h, msgId), [
    ['task-submitted', 0, undefined], ['task-assigned', 0, first],
    ['task-requeued', 10, `engine-lost on ${first}`], ['task-assigned', 10, other],
    ['task-finished', 15, 'ok'],
  ])
})

t.test('a dead engine\'s reply that arrives within the grace period still reaches the client, and nothing fails later', async (t) => {
  const h = harness(t)
  const msgId = submit(h)
  const sent = h.toEngines[0]?.frames ?? []
  engineLeaves(h, sent[0]?.toString() ?? '')
  h.clock.advance(5)
  h.loops.get('task (engines)')?.(answer(h, sent))
  h.clock.advance(1000)
  t.equal(h.toClient.length, 1)
  t.match(h.client.deserialize(h.toClient[0] ?? []).msg.content, { status: 'ok' })
  t.same(trace(h, msgId).map(([type, time]) => [type, time]), [['task-submitted', 0], ['task-assigned', 0], ['task-finished', 5]])
})

t.test('an undeliverable task is offered again 50 ms later', async (t) => {
  const h = harness(t)
  const msgId = submit(h)
  const first = h.toEngines[0]
  first?.undeliverable?.()
  t.same([...h.ledger.unassigned], [msgId])
  h.clock.advance(49)
  t.equal(h.toEngines.length, 1)
  h.clock.advance(1)
  t.equal(h.toEngines.length, 2)
  const engine = first?.frames[0]?.toString()
  t.same(trace(h, msgId).slice(0, 3), [['task-submitted', 0, undefined], ['task-assigned', 0, engine], ['task-requeued', 0, `undeliverable on ${engine}`]])
  t.match(trace(h, msgId)[3], ['task-assigned', 50])
})

t.test('--restore through the channel: an orphan waits for its engine, the rest is scheduled again, and the engine\'s inventory sends back what it never got', async (t) => {
  // The previous controller's store: `running` went to A, `queued` to no engine; both unfinished.
  const store = new MemoryTaskStore()
  const previous = new Session({ key: KEY })
  for (const [msgId, engine] of [['running', A], ['queued', null]] as const) {
    const msg = previous.msg('apply_request', {}, { metadata: { language: 'javascript' }, buffers: [Buffer.from('{}')] })
    msg.header.msg_id = msgId
    store.addRecord({ ...emptyRecord(msgId), header: msg.header, metadata: msg.metadata, content: msg.content, buffers: msg.buffers, client_uuid: CLIENT.toString(), engine_uuid: engine, queue: 'task', submitted: new Date() })
  }
  const h = harness(t, store)
  h.channel.adoptUnfinished(new Set([A]))
  t.same(h.toEngines.map((s) => h.engine(s.frames[0]?.toString() ?? '').deserialize(s.frames.slice(1)).msg.header.msg_id), ['queued'], 'only the task of no engine is scheduled again')
  t.ok(h.ledger.isPending('running'))
  t.same(store.findRecords({ msg_id: 'queued' }).length, 1, 'recorded once: it was already')

  // A says it holds nothing: `running` never reached it, so it goes back to the scheduler too.
  const inventory = h.engine(A).msg(TASK_INVENTORY, { msg_ids: [] })
  h.loops.get('task (engines)')?.(h.engine(A).serialize(inventory, [Buffer.from(A)]))
  t.equal(h.toEngines.length, 2)
  const rerun = h.toEngines[1]?.frames ?? []
  t.equal(h.engine(A).deserialize(rerun.slice(1)).msg.header.msg_id, 'running')
  t.same(rerun.slice(1, 2).map(String), [CLIENT.toString()], 'its reply goes to the submitting client\'s identity')

  h.loops.get('task (engines)')?.(answer(h, rerun))
  t.equal(h.client.deserialize(h.toClient[0] ?? []).msg.parent_header.msg_id, 'running')
  t.notOk(h.ledger.isPending('running'))
  t.same(trace(h, 'running').map(([type]) => type), ['task-submitted', 'task-assigned', 'task-finished'], 'this controller\'s observers see it enter when it goes back to the scheduler')
  t.same(store.findRecords({ msg_id: 'running' }).length, 1, 'and it is not recorded again')
})

t.test('the scheme name chooses the channel; an unknown one lists every known name, pure included', async (t) => {
  const registry = new SchemeRegistry({ sticky: () => 0 })
  t.same(knownTaskSchemes(registry), ['leastload', 'lru', 'plainrandom', 'twobin', 'weighted', 'sticky', 'pure'])
  t.throws(() => taskChannelOf('nope', registry), { name: 'ConfigError', message: "unknown scheme 'nope'; known schemes: leastload, lru, plainrandom, twobin, weighted, sticky, pure" })
  const settings = { hwm: 2, random: Math.random, strandedGraceMs: 1, maxEngineDeaths: 3 }
  const pure = taskChannelOf('pure', registry)(settings, undefined)
  const sticky = taskChannelOf('sticky', registry)(settings, undefined)
  t.teardown(() => [pure, sticky].forEach((c) => [c.sockets.client, c.sockets.engine].forEach((s) => s.close())))
  t.ok(pure instanceof PureTaskChannel)
  t.same(pure.closedOnStop, [], 'the native device closes its own sockets')
  t.ok(sticky instanceof ScheduledTaskChannel)
  t.equal(sticky.description, ', hwm 2')
})
