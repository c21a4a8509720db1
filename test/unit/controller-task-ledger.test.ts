// The task ledger on its own: messages in, queue accounting, records and events out; no sockets, no processes.
import t from 'tap'
import { StoreKeyError } from '../../src/common/errors.js'
import { silentLogger, type Logger } from '../../src/common/log.js'
import type { ControllerEvent } from '../../src/controller/ledger-events.js'
import { MemoryTaskStore, NoTaskStore } from '../../src/controller/store/index.js'
import { TaskLedger, functionNameOf } from '../../src/controller/task-ledger.js'
import type { Header, JsonObject, Message } from '../../src/protocol/messages.js'
import { FakeClock } from '../helpers/fake-clock.js'

const A = { id: 0, uuid: 'engine-a', language: 'javascript' }
const B = { id: 1, uuid: 'engine-b', language: 'javascript' }
const NOW = 1_700_000_000_000

function header(msgId: string, type = 'apply_request', date = '2026-01-02T03:04:05.000006Z'): Header {
  return { msg_id: msgId, msg_type: type, session: 'client-1', username: 'me', date, version: '5.3' }
}

function request(msgId: string, buffers: Buffer[] = [Buffer.from(JSON.stringify({ kind: 'source', source: 'x => x', name: 'square' })), Buffer.alloc(10)]): Message {
  return { header: header(msgId), parent_header: {}, metadata: {}, content: {}, buffers }
}

function reply(msgId: string, content: JsonObject = { status: 'ok' }, metadata: JsonObject = {}, buffers: Buffer[] = [Buffer.alloc(7)]): Message {
  return { header: header(`${msgId}-reply`, 'apply_reply', '2026-01-02T03:04:07Z'), parent_header: header(msgId), metadata, content, buffers }
}

function ledger(options: { store?: MemoryTaskStore | NoTaskStore; log?: Logger } = {}): { ledger: TaskLedger; events: ControllerEvent[]; store: MemoryTaskStore | NoTaskStore } {
  const store = options.store ?? new MemoryTaskStore()
  const l = new TaskLedger(store, options.log ?? silentLogger, new FakeClock(NOW))
  const events: ControllerEvent[] = []
  l.events.on((e) => events.push(e))
  l.engineJoined(A, false)
  l.engineJoined(B, false)
  events.length = 0
  return { ledger: l, events, store }
}

const queues = (l: TaskLedger, e: { uuid: string }): { queue: string[]; tasks: string[]; completed: number } => {
  const q = l.queuesOf(e.uuid)
  return { queue: [...(q?.queue ?? [])], tasks: [...(q?.tasks ?? [])], completed: q?.completed ?? -1 }
}

t.test('a submitted task is pending, unassigned, recorded, and told', async (t) => {
  const { ledger: l, events, store } = ledger()
  l.submitted(request('t1'), 'task')
  t.ok(l.isPending('t1'))
  t.same([...l.unassigned], ['t1'])
  const record = store.getRecord('t1')
  t.equal(record.queue, 'task')
  t.equal(record.client_uuid, 'client-1')
  t.same(record.submitted, new Date('2026-01-02T03:04:05.000Z'))
  t.same(events, [{ type: 'task-submitted', time: NOW, msgId: 't1', queue: 'task', engineUuid: undefined, client: 'client-1', msgType: 'apply_request', functionName: 'square', bytes: 10 + JSON.stringify({ kind: 'source', source: 'x => x', name: 'square' }).length }])
})

t.test('an assigned task moves from unassigned to its engine and its record names the engine', async (t) => {
  const { ledger: l, events, store } = ledger()
  l.submitted(request('t1'), 'task')
  l.assigned('t1', A.uuid)
  t.same([...l.unassigned], [])
  t.same(queues(l, A), { queue: [], tasks: ['t1'], completed: 0 })
  t.equal(store.getRecord('t1').engine_uuid, A.uuid)
  t.same(events.at(-1), { type: 'task-assigned', time: NOW, msgId: 't1', engineUuid: A.uuid })
})

t.test('a finished task leaves its engine, counts as completed, and its record holds the result', async (t) => {
  const { ledger: l, events, store } = ledger()
  l.submitted(request('t1'), 'task')
  l.assigned('t1', A.uuid)
  l.finished(reply('t1', { status: 'ok' }, { started: '2026-01-02T03:04:06Z', engine: A.uuid }), A.uuid, true)
  t.notOk(l.isPending('t1'))
  t.same(queues(l, A), { queue: [], tasks: [], completed: 1 })
  const record = store.getRecord('t1')
  t.same(record.completed, new Date('2026-01-02T03:04:07Z'))
  t.same(record.started, new Date('2026-01-02T03:04:06Z'))
  t.same(record.result_content, { status: 'ok' })
  t.same(events.at(-1), {
    type: 'task-finished', time: NOW, msgId: 't1', engineUuid: A.uuid, status: 'ok', ename: undefined,
    started: Date.parse('2026-01-02T03:04:06Z'), completed: Date.parse('2026-01-02T03:04:07Z'), bytes: 7,
  })
})

t.test('an aborted task leaves its engine without counting as completed', async (t) => {
  const { ledger: l } = ledger()
  l.submitted(request('t1'), 'task')
  l.assigned('t1', A.uuid)
  l.finished(reply('t1', { status: 'aborted' }), A.uuid, false)
  t.same(queues(l, A), { queue: [], tasks: [], completed: 0 })
})

t.test('a task that ends in the controller leaves every engine and the unassigned set', async (t) => {
  const { ledger: l, events } = ledger()
  l.submitted(request('t1'), 'task')
  l.assigned('t1', A.uuid)
  l.submitted(request('t2'), 'task')
  l.finished(reply('t1', { status: 'error', ename: 'TaskTimeout', evalue: '', traceback: [] }), undefined, false)
  l.finished(reply('t2', { status: 'error', ename: 'ImpossibleDependency', evalue: '', traceback: [] }), undefined, false)
  t.same(queues(l, A), { queue: [], tasks: [], completed: 0 })
  t.same([...l.unassigned], [])
  t.same(events.filter((e) => e.type === 'task-finished').map((e) => e.type === 'task-finished' && [e.msgId, e.status, e.ename, e.engineUuid]), [['t1', 'error', 'TaskTimeout', undefined], ['t2', 'error', 'ImpossibleDependency', undefined]])
})

t.test('a re-queued task leaves its engine and waits again, then lands on another', async (t) => {
  const { ledger: l, events } = ledger()
  l.submitted(request('t1'), 'task')
  l.assigned('t1', A.uuid)
  l.requeued('t1', A.uuid, 'failed')
  t.same(queues(l, A).tasks, [])
  t.same([...l.unassigned], ['t1'])
  l.assigned('t1', B.uuid)
  t.same(queues(l, B).tasks, ['t1'])
  t.same([...l.unassigned], [])
  t.same(events.map((e) => e.type), ['task-submitted', 'task-assigned', 'task-requeued', 'task-assigned'])
  t.same(events[2], { type: 'task-requeued', time: NOW, msgId: 't1', engineUuid: A.uuid, why: 'failed' })
})

t.test('a task\'s whole life, step by step: the state after each step, and each event at the time it happened', async (t) => {
  const clock = new FakeClock(NOW)
  const l = new TaskLedger(new MemoryTaskStore(), silentLogger, clock)
  l.engineJoined(A, false)
  l.engineJoined(B, false)
  const events: [string, number][] = []
  l.events.on((e) => events.push([e.type, e.time - NOW]))
  const state = (): { unassigned: string[]; a: string[]; b: string[]; completed: [number, number]; pending: boolean } => ({
    unassigned: [...l.unassigned], a: queues(l, A).tasks, b: queues(l, B).tasks, completed: [queues(l, A).completed, queues(l, B).completed], pending: l.isPending('t1'),
  })
  const steps: [string, ReturnType<typeof state>][] = []
  const step = (name: string, ms: number, act: () => void): void => {
    clock.advance(ms)
    act()
    steps.push([name, state()])
  }
  const busy: Message = { header: header('io-1', 'status'), parent_header: header('t1'), metadata: {}, content: { execution_state: 'busy' }, buffers: [] }
  step('submitted', 0, () => l.submitted(request('t1'), 'task'))
  step('assigned to A', 5, () => l.assigned('t1', A.uuid))
  step('started', 1, () => l.output(busy))
  step('failed on A, re-queued', 20, () => l.requeued('t1', A.uuid, 'failed'))
  step('assigned to B', 3, () => l.assigned('t1', B.uuid))
  step('finished on B', 30, () => l.finished(reply('t1'), B.uuid, true))
  t.same(steps, [
    ['submitted', { unassigned: ['t1'], a: [], b: [], completed: [0, 0], pending: true }],
    ['assigned to A', { unassigned: [], a: ['t1'], b: [], completed: [0, 0], pending: true }],
    ['started', { unassigned: [], a: ['t1'], b: [], completed: [0, 0], pending: true }],
    ['failed on A, re-queued', { unassigned: ['t1'], a: [], b: [], completed: [0, 0], pending: true }],
    ['assigned to B', { unassigned: [], a: [], b: ['t1'], completed: [0, 0], pending: true }],
    ['finished on B', { unassigned: [], a: [], b: [], completed: [0, 1], pending: false }],
  ])
  t.same(events, [['task-submitted', 0], ['task-assigned', 5], ['task-started', 6], ['task-requeued', 26], ['task-assigned', 29], ['task-finished', 59]])
})

t.test('a task assigned again without a re-queue is held by its latest engine only', async (t) => {
  const { ledger: l } = ledger()
  l.submitted(request('t1'), 'task')
  l.assigned('t1', A.uuid)
  l.assigned('t1', B.uuid)
  t.same(queues(l, A).tasks, [])
  t.same(queues(l, B).tasks, ['t1'])
})

t.test('a direct request is queued on its engine, never unassigned, and counted when answered', async (t) => {
  const { ledger: l, store } = ledger()
  l.submitted(request('m1'), 'mux', A.uuid)
  t.same(queues(l, A), { queue: ['m1'], tasks: [], completed: 0 })
  t.same([...l.unassigned], [])
  t.equal(store.getRecord('m1').queue, 'mux')
  t.equal(store.getRecord('m1').engine_uuid, A.uuid)
  l.finished(reply('m1'), A.uuid, true)
  t.same(queues(l, A), { queue: [], tasks: [], completed: 1 })
})

t.test('an engine that leaves hands back its unanswered direct requests and is forgotten', async (t) => {
  const { ledger: l, events } = ledger()
  l.submitted(request('m1'), 'mux', A.uuid)
  l.submitted(request('m2'), 'mux', A.uuid)
  t.same(l.engineLeft(A, 'heartbeat stopped'), ['m1', 'm2'])
  t.equal(l.queuesOf(A.uuid), undefined)
  t.ok(l.isPending('m1'), 'still pending until its EngineError reply is recorded')
  t.same(events.at(-1), { type: 'engine-left', time: NOW, engineId: 0, engineUuid: A.uuid, why: 'heartbeat stopped' })
})

t.test('engines joining and heartbeats lost are told', async (t) => {
  const l = new TaskLedger(new MemoryTaskStore(), silentLogger, new FakeClock(NOW))
  const events: ControllerEvent[] = []
  l.events.on((e) => events.push(e))
  l.engineJoined(A, true)
  l.heartbeatLost(A.uuid)
  t.same(events, [
    { type: 'engine-joined', time: NOW, engineId: 0, engineUuid: A.uuid, language: 'javascript', restored: true },
    { type: 'heartbeat-lost', time: NOW, engineUuid: A.uuid },
  ])
  t.same(queues(l, A), { queue: [], tasks: [], completed: 0 })
})

t.test('a task already recorded by a previous controller is not recorded again', async (t) => {
  const store = new MemoryTaskStore()
  const { ledger: l } = ledger({ store })
  l.submitted(request('t1'), 'task')
  store.updateRecord('t1', { stdout: 'kept' })
  l.submitted(request('t1'), 'task', undefined, true)
  t.equal(store.getRecord('t1').stdout, 'kept')
  t.same([...l.unassigned], ['t1'])
})

t.test('an adopted request is pending without being queued anywhere', async (t) => {
  const { ledger: l } = ledger()
  l.adopted('old')
  t.ok(l.isPending('old'))
  t.same([...l.unassigned], [])
})

t.test('outcomeOf reads finished tasks from the store, and nothing for pending ones', async (t) => {
  const { ledger: l } = ledger()
  l.submitted(request('t1'), 'task')
  t.equal(l.outcomeOf('t1'), undefined)
  l.finished(reply('t1', { status: 'error', ename: 'E', evalue: '', traceback: [] }, { engine: B.uuid }), B.uuid, true)
  t.same(l.outcomeOf('t1'), { ok: false, engineUuid: B.uuid })
  t.equal(l.outcomeOf('never'), undefined)
})

t.test('stream output appends to the record; idle closes it; busy tells that the task started', async (t) => {
  const { ledger: l, store, events } = ledger()
  l.submitted(request('t1'), 'task')
  const iopub = (type: string, content: JsonObject): Message => ({ header: header(`io-${type}`, type), parent_header: header('t1'), metadata: {}, content, buffers: [] })
  l.output(iopub('status', { execution_state: 'busy' }))
  l.output(iopub('stream', { name: 'stdout', text: 'a' }))
  l.output(iopub('stream', { name: 'stdout', text: 'b' }))
  l.output(iopub('stream', { name: 'stderr', text: 'oops' }))
  l.output(iopub('status', { execution_state: 'idle' }))
  t.equal(store.getRecord('t1').stdout, 'ab')
  t.equal(store.getRecord('t1').stderr, 'oops')
  t.same(events.filter((e) => e.type === 'task-started'), [{ type: 'task-started', time: NOW, msgId: 't1' }])
})

t.test('resubmitted links the old record to the new msg id', async (t) => {
  const { ledger: l, store } = ledger()
  l.submitted(request('t1'), 'task')
  l.resubmitted('t1', 't2')
  t.equal(store.getRecord('t1').resubmitted, 't2')
})

t.test('with a store that keeps nothing, requests are still pending until they end', async (t) => {
  const { ledger: l } = ledger({ store: new NoTaskStore() })
  l.submitted(request('t1'), 'task')
  t.ok(l.isPending('t1'))
  l.finished(reply('t1'), A.uuid, true)
  t.notOk(l.isPending('t1'))
})

t.test('a store that fails is logged and does not stop the task\'s accounting', async (t) => {
  const warnings: string[] = []
  const log = { ...silentLogger, warn: (m: string) => warnings.push(m) }
  const store = new MemoryTaskStore()
  store.addRecord = () => {
    throw new Error('disk full')
  }
  const { ledger: l } = ledger({ store, log })
  l.submitted(request('t1'), 'task')
  t.same([...l.unassigned], ['t1'])
  t.match(warnings, [/could not record t1: disk full/])
})

t.test('a missing record (culled or purged) is not worth a warning', async (t) => {
  const warnings: string[] = []
  const store = new MemoryTaskStore()
  store.updateRecord = () => {
    throw new StoreKeyError('gone')
  }
  const { ledger: l } = ledger({ store, log: { ...silentLogger, warn: (m: string) => warnings.push(m) } })
  l.submitted(request('t1'), 'task')
  l.finished(reply('t1'), A.uuid, true)
  t.same(warnings, [])
})

t.test('with no listener, no event is built (the function descriptor is not even parsed)', async (t) => {
  class UnreadClock extends FakeClock {
    override now(): number {
      throw new Error('the clock was read')
    }
  }
  const l = new TaskLedger(new MemoryTaskStore(), silentLogger, new UnreadClock())
  l.engineJoined(A, false)
  l.submitted(request('t1', [Buffer.from('{not json'), Buffer.alloc(1)]), 'task')
  l.assigned('t1', A.uuid)
  l.finished(reply('t1'), A.uuid, true)
  t.equal(l.events.listening, false)
})

t.test('a listener that throws harms neither the ledger nor the other listeners', async (t) => {
  const warnings: string[] = []
  const { ledger: l } = ledger({ log: { ...silentLogger, warn: (m: string) => warnings.push(m) } })
  const seen: string[] = []
  const off = l.events.on(() => {
    throw new Error('listener bug')
  })
  l.events.on((e) => seen.push(e.type))
  l.submitted(request('t1'), 'task')
  t.ok(l.isPending('t1'))
  t.ok(seen.includes('task-submitted'))
  t.match(warnings, [/listener failed on task-submitted: listener bug/])
  off()
  l.assigned('t1', A.uuid)
  t.equal(warnings.length, 1, 'removed listeners are not called')
})

t.test('functionNameOf reads the name from each kind of descriptor, and nothing from others', async (t) => {
  const of = (d: unknown): string | undefined => functionNameOf([Buffer.from(JSON.stringify(d))])
  t.equal(of({ kind: 'source', source: '() => 1', name: 'one' }), 'one')
  t.equal(of({ kind: 'source', source: '() => 1', name: '' }), undefined)
  t.equal(of({ kind: 'module', module: 'file:///m.js', export: 'work' }), 'work')
  t.equal(of({ kind: 'global', path: 'Math.abs' }), 'Math.abs')
  t.equal(of({ kind: 'requires', fn: { kind: 'source', source: '', name: 'inner' }, modules: [] }), 'inner')
  t.equal(of({ kind: 'dependent', fn: { kind: 'global', path: 'Math.max' }, check: {}, args: [] }), 'Math.max')
  t.equal(functionNameOf([Buffer.from([0x80, 0x04])]), undefined, 'a pickle')
  t.equal(functionNameOf([]), undefined)
})
