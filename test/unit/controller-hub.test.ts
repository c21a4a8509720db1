// The hub on its own, on a fake clock: two-phase registration (completed by the first heartbeat, or timed out),
// the engine state file written once per burst; no sockets, no processes.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { silentLogger } from '../../src/common/log.js'
import { Hub } from '../../src/controller/hub.js'
import type { ControllerEvent } from '../../src/controller/ledger-events.js'
import { RecordQueries } from '../../src/controller/record-queries.js'
import { MemoryTaskStore } from '../../src/controller/store/index.js'
import { TaskLedger } from '../../src/controller/task-ledger.js'
import { Session } from '../../src/protocol/session.js'
import { FakeClock } from '../helpers/fake-clock.js'

const REGISTRATION_TIMEOUT_MS = 5000

function harness(t: Test) {
  const dir = mkdtempSync(join(tmpdir(), 'jsparallel-hub-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const clock = new FakeClock(0)
  const ledger = new TaskLedger(new MemoryTaskStore(), silentLogger, clock)
  const events: [string, number][] = []
  ledger.events.on((e: ControllerEvent) => events.push([e.type, e.time]))
  const replies: [string, Record<string, unknown>][] = []
  const notifications: string[] = []
  const warnings: string[] = []
  const joined: string[] = []
  const reply = (_idents: Buffer[], type: string, content: object): void => void replies.push([type, content as Record<string, unknown>])
  const queries = new RecordQueries(ledger, { reply, resubmit: () => 'x', freshHeader: (type) => new Session({ key: 'k' }).header(type), engineUuid: () => undefined })
  const enginesFile = join(dir, 'engines.json')
  const hub = new Hub({
    reply,
    notify: (type) => notifications.push(type),
    engineJoined: (engine) => joined.push(engine.uuid),
    engineLeft: () => {},
    shutdownRequested: () => {},
    clock,
    log: { ...silentLogger, warn: (m) => warnings.push(m) },
  }, { heartbeatPeriodMs: 3000, registrationTimeoutMs: REGISTRATION_TIMEOUT_MS, engineChannels: {} as never, enginesFile }, ledger, queries)
  const session = new Session({ key: 'k' })
  const register = (uuid: string): void => hub.handleQuery([Buffer.from(uuid)], session.msg('registration_request', { uuid, language: 'javascript' }))
  return { hub, clock, events, replies, notifications, warnings, joined, register, enginesFile }
}

t.test('a registration completes at the first heartbeat; the state file follows 50 ms later, once per burst', async (t) => {
  const h = harness(t)
  h.register('e1')
  h.register('e2')
  t.match(h.replies, [['registration_reply', { status: 'ok', id: 0, hb_period: 3000 }], ['registration_reply', { status: 'ok', id: 1 }]])
  t.same(h.hub.registered, [], 'not before its heart is seen')
  h.clock.advance(100)
  h.hub.heartSeen('e1')
  h.clock.advance(10)
  h.hub.heartSeen('e2')
  t.same(h.hub.registered.map((e) => e.uuid), ['e1', 'e2'])
  t.same(h.joined, ['e1', 'e2'])
  t.same(h.notifications, ['registration_notification', 'registration_notification'])
  t.same(h.events, [['engine-joined', 100], ['engine-joined', 110]])
  h.clock.advance(39)
  t.notOk(existsSync(h.enginesFile), 'not yet: 50 ms after the first registration')
  h.clock.advance(1)
  t.same(JSON.parse(readFileSync(h.enginesFile, 'utf8')), { engines: { 0: 'e1', 1: 'e2' }, next_id: 2, languages: { e1: 'javascript', e2: 'javascript' } })
  h.clock.advance(REGISTRATION_TIMEOUT_MS)
  t.same(h.warnings, [], 'the completed registrations\' timeouts were cancelled')
})

t.test('a registration with no heartbeat within the timeout is dropped at exactly that time; a later heart is ignored', async (t) => {
  const h = harness(t)
  h.register('silent')
  h.clock.advance(REGISTRATION_TIMEOUT_MS - 1)
  t.same(h.warnings, [])
  h.clock.advance(1)
  t.match(h.warnings, [/registration of engine 0 \(silent\) timed out: no heartbeat seen/])
  h.hub.heartSeen('silent')
  t.same(h.hub.registered, [])
  t.same(h.events, [])
  h.register('silent')
  t.match(h.replies.at(-1), ['registration_reply', { status: 'ok' }], 'its uuid is free again')
})
