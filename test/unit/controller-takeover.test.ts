// Taking over a dead controller's tasks (--restore), on its own: records in a store, frames out; no processes.
import t from 'tap'
import { silentLogger } from '../../src/common/log.js'
import { MemoryTaskStore, NoTaskStore, emptyRecord } from '../../src/controller/store/index.js'
import { Takeover } from '../../src/controller/takeover.js'
import { TaskLedger } from '../../src/controller/task-ledger.js'
import type { Message } from '../../src/protocol/messages.js'
import { Session } from '../../src/protocol/session.js'
import type { Frames } from '../../src/transport/sockets.js'
import type { ControllerEvent } from '../../src/controller/ledger-events.js'
import { FakeClock } from '../helpers/fake-clock.js'

const KEY = 'takeover-test-key'
const RESTORED = 'engine-restored'
const GONE = 'engine-gone'

interface Harness {
  takeover: Takeover
  ledger: TaskLedger
  store: MemoryTaskStore
  requeued: { msgId: string; idents: string[] }[]
  toClient: Frames[]
  session: Session
  /** The ledger's clock, at epoch 0. */
  clock: FakeClock
  events: ControllerEvent[]
}

/** A previous controller's store: `running` was given to the restored engine, `lost` to one that is gone, `queued` to none. */
function harness(): Harness {
  const store = new MemoryTaskStore()
  const session = new Session({ key: KEY })
  for (const [msgId, engine] of [['running', RESTORED], ['lost', GONE], ['queued', null]] as const) {
    const header = session.header('apply_request')
    header.msg_id = msgId
    store.addRecord({ ...emptyRecord(msgId), header, client_uuid: 'client-1', engine_uuid: engine, queue: 'task', submitted: new Date() })
  }
  store.addRecord({ ...emptyRecord('done'), queue: 'task', completed: new Date(), engine_uuid: RESTORED, header: session.header('apply_request') })
  const clock = new FakeClock(0)
  const ledger = new TaskLedger(store, silentLogger, clock)
  const events: ControllerEvent[] = []
  ledger.events.on((e) => events.push(e))
  ledger.engineJoined({ id: 0, uuid: RESTORED, language: 'javascript' }, true)
  const requeued: Harness['requeued'] = []
  const toClient: Frames[] = []
  const takeover = new Takeover(ledger, session, {
    requeue: (msg, idents) => requeued.push({ msgId: msg.header.msg_id, idents: idents.map(String) }),
    toClient: (frames) => toClient.push(frames),
    engineName: (uuid) => uuid,
    log: silentLogger,
  })
  takeover.adoptUnfinished(new Set([RESTORED]))
  return { takeover, ledger, store, requeued, toClient, session, clock, events }
}

function reply(h: Harness, msgId: string): { msg: Message; wire: Buffer[] } {
  const parent = h.store.getRecord(msgId).header as unknown as Message['header']
  const msg = h.session.msg('apply_reply', { status: 'ok' }, { parent, metadata: { engine: RESTORED, status: 'ok' } }) as unknown as Message
  return { msg, wire: h.session.serialize(msg) }
}

t.test('unfinished tasks are in flight again; those of engines not restored go back to the scheduler', async (t) => {
  const h = harness()
  t.ok(h.ledger.isPending('running'))
  t.ok(h.ledger.isPending('lost'))
  t.ok(h.ledger.isPending('queued'))
  t.notOk(h.ledger.isPending('done'))
  t.same(h.requeued, [{ msgId: 'lost', idents: ['client-1'] }, { msgId: 'queued', idents: ['client-1'] }])
})

t.test('the restored engine\'s reply to an orphan is recorded and forwarded to the client\'s session identity', async (t) => {
  const h = harness()
  const { msg, wire } = reply(h, 'running')
  t.ok(h.takeover.replied(RESTORED, 'running', msg, wire))
  t.notOk(h.ledger.isPending('running'))
  t.ok(h.store.getRecord('running').completed instanceof Date)
  t.same(h.toClient[0]?.slice(0, 2).map(String), ['client-1', RESTORED])
  t.notOk(h.takeover.replied(RESTORED, 'running', msg, wire), 'a second reply is not an orphan\'s')
})

t.test('a reply for a task that is no orphan of that engine is left to the caller', async (t) => {
  const h = harness()
  const { msg, wire } = reply(h, 'running')
  t.notOk(h.takeover.replied('another-engine', 'running', msg, wire))
  t.same(h.toClient, [])
})

t.test('an orphan the engine says it does not hold goes back to the scheduler; one it holds keeps waiting', async (t) => {
  const h = harness()
  h.requeued.length = 0
  h.takeover.inventory(RESTORED, new Set(['running']))
  t.same(h.requeued, [])
  h.takeover.inventory(RESTORED, new Set())
  t.same(h.requeued, [{ msgId: 'running', idents: ['client-1'] }])
  h.takeover.inventory(RESTORED, new Set())
  t.equal(h.requeued.length, 1, 'only once')
})

t.test('the orphans of an engine that leaves end with EngineError, to the client and the records', async (t) => {
  const h = harness()
  h.takeover.engineLeft(RESTORED)
  t.notOk(h.ledger.isPending('running'))
  t.match(h.store.getRecord('running').result_content, { status: 'error', ename: 'EngineError', evalue: /Engine engine-restored died while running task 'running'/ })
  const sent = h.session.deserialize(h.toClient[0] ?? [])
  t.same(sent.idents.map(String), ['client-1'])
  t.equal(sent.msg.content.ename, 'EngineError')
})

t.test('the steps of a takeover, in order: adopting tells nothing, then each orphan ends once, by reply or by its engine leaving', async (t) => {
  const h = harness()
  t.same(h.events.map((e) => e.type), ['engine-joined'], 'adopting is not a step of a task: the previous controller told its submission')
  const running = reply(h, 'running')
  h.clock.advance(40)
  t.ok(h.takeover.replied(RESTORED, 'running', running.msg, running.wire))
  h.clock.advance(60)
  h.takeover.engineLeft(RESTORED)
  h.takeover.engineLeft(RESTORED)
  t.same(h.events.slice(1).map((e) => [e.type, e.time, 'msgId' in e ? e.msgId : undefined, e.type === 'task-finished' ? e.ename : undefined]), [
    ['task-finished', 40, 'running', undefined],
  ], 'the engine had no orphan left when it went: nothing ends twice')
  t.equal(h.toClient.length, 1)
})

t.test('an orphan outlived by its engine ends with EngineError at the time the engine leaves', async (t) => {
  const h = harness()
  h.clock.advance(250)
  h.takeover.engineLeft(RESTORED)
  t.same(h.events.slice(1).map((e) => [e.type, e.time, 'msgId' in e ? e.msgId : undefined]), [['task-finished', 250, 'running']])
  t.match(h.events.at(-1), { type: 'task-finished', engineUuid: RESTORED, status: 'error', ename: 'EngineError' })
  t.same(h.requeued.map((r) => r.msgId), ['lost', 'queued'], 'the requeued ones are the scheduler\'s now, not ended here')
})

t.test('a store that keeps nothing has nothing to take over', async (t) => {
  const ledger = new TaskLedger(new NoTaskStore(), silentLogger)
  const requeued: string[] = []
  const takeover = new Takeover(ledger, new Session({ key: KEY }), { requeue: (msg) => requeued.push(msg.header.msg_id), toClient: () => {}, engineName: String, log: silentLogger })
  takeover.adoptUnfinished(new Set())
  t.same(requeued, [])
})
