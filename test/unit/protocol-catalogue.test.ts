import t from 'tap'
import { ProtocolError } from '../../src/common/errors.js'
import { contentIfValid, contentOf, headerOf, hubRecordOf } from '../../src/protocol/content-readers.js'
import { wireDate } from '../../src/protocol/dates.js'
import type { JsonObject, Message } from '../../src/protocol/messages.js'
import { engineUuidOf, parentIdOf, replyDates, replyOutcome, replyStatusOf } from '../../src/protocol/replies.js'
import { Session } from '../../src/protocol/session.js'

const session = new Session({ key: '' })

/** A message as Session.deserialize gives it: parent and metadata exactly as a peer sent them. */
function received(content: JsonObject, parts: { parent?: JsonObject; metadata?: JsonObject; date?: string } = {}): Message {
  const msg = session.msg('x', content, { metadata: parts.metadata ?? {} })
  if (parts.date !== undefined) msg.header.date = parts.date
  return { ...msg, parent_header: (parts.parent ?? {}) as Message['parent_header'] }
}

t.test('parentIdOf: the parent header msg id, or undefined for an empty or odd parent', async (t) => {
  const request = session.msg('apply_request', {})
  t.equal(parentIdOf(session.msg('apply_reply', { status: 'ok' }, { parent: request.header })), request.header.msg_id)
  t.equal(parentIdOf(received({})), undefined, 'a parent of {} (registration_reply, notifications)')
  t.equal(parentIdOf(received({}, { parent: { msg_id: 42 } })), undefined, 'a msg id that is not a string')
})

t.test('replyOutcome decodes each status', async (t) => {
  t.same(replyOutcome({ status: 'ok' }), { status: 'ok' })
  t.same(replyOutcome({ status: 'aborted' }), { status: 'aborted' })
  t.same(replyOutcome({
    status: 'error', ename: 'TypeError', evalue: 'bad', traceback: ['a', 2], engine_info: { engine_uuid: 'e-1', engine_id: 0 },
  }), { status: 'error', error: { ename: 'TypeError', evalue: 'bad', traceback: ['a', '2'] }, engineUuid: 'e-1' })
})

t.test('replyOutcome: missing error fields are filled, and an unknown or missing status is an error', async (t) => {
  const filled = { status: 'error', error: { ename: 'Error', evalue: '', traceback: [] }, engineUuid: undefined }
  t.same(replyOutcome({ status: 'error', ename: 5, traceback: 'not a list', engine_info: {} }), filled)
  t.same(replyOutcome({}), filled)
  t.same(replyOutcome({ status: 'weird' }), filled)
})

t.test('replyStatusOf: the metadata status wins, else the content status', async (t) => {
  t.equal(replyStatusOf({ metadata: { status: 'error' }, content: { status: 'ok' } }), 'error')
  t.equal(replyStatusOf({ metadata: {}, content: { status: 'aborted' } }), 'aborted')
})

t.test('dates: every wire form Python writes, and nothing for what is not a date', async (t) => {
  const base = Date.UTC(2026, 10, 22, 7, 8, 45)
  // A Date keeps whole milliseconds; the microseconds are parseIsoDate's.
  t.equal(wireDate('2026-11-22T07:08:45.811574Z')?.getTime(), base + 811)
  t.equal(wireDate('2026-11-22T07:08:45.811574+00:00')?.getTime(), base + 811)
  t.equal(wireDate('2026-11-22T09:08:45+0200')?.getTime(), base)
  t.equal(wireDate('2026-11-22T07:08:45')?.getTime(), base, 'no zone is UTC')
  t.equal(wireDate('2026-11-22T07:08:45.5')?.getTime(), base + 500)
  t.equal(wireDate(null), undefined)
  t.equal(wireDate(12), undefined)
  t.equal(wireDate('22 Nov 2026'), undefined)
})

t.test('replyDates: started from the metadata, completed from the header', async (t) => {
  const reply = received({ status: 'ok' }, { metadata: { started: '2026-11-22T07:08:45.250001Z' }, date: '2026-11-22T07:08:46+00:00' })
  const { started, completed } = replyDates(reply)
  t.equal(started?.getTime(), Date.UTC(2026, 10, 22, 7, 8, 45) + 250)
  t.equal(completed?.getTime(), Date.UTC(2026, 10, 22, 7, 8, 46))
  t.same(replyDates(received({}, { date: 'yesterday' })), { started: undefined, completed: undefined }, 'no started, an unreadable date')
})

t.test('engineUuidOf: metadata.engine when it names one', async (t) => {
  t.equal(engineUuidOf({ metadata: { engine: 'e-1' } }), 'e-1')
  t.equal(engineUuidOf({ metadata: { engine: '' } }), undefined)
  t.equal(engineUuidOf({ metadata: {} }), undefined)
})

t.test('contentOf: malformed content is a ProtocolError naming the message type, the field and the rule', async (t) => {
  t.throws(() => contentOf(received({ uuid: 5 }), 'registration_request'), { name: 'ProtocolError', message: 'registration_request: uuid must be a non-empty string, not 5' })
  t.throws(() => contentOf(received({ uuid: '' }), 'registration_request'), { message: /uuid must be a non-empty string, not ""/ })
  t.throws(() => contentOf(received({ status: 'ok' }), 'registration_reply'), { message: 'registration_reply: id must be a whole number, not absent' })
  t.throws(() => contentOf(received({ msg_ids: [1, 2] }), 'result_request'), ProtocolError)
  t.throws(() => contentOf(received({ msg_ids: 'a' }), 'jsparallel_task_inventory'), { message: /msg_ids must be a list of msg ids/ })
  t.throws(() => contentOf(received({ history: [1] }), 'history_reply'), { message: /history must be a list of strings, not \[1\]/ })
  t.throws(() => contentOf(received({ records: [1] }), 'db_reply'), { message: /db_reply: records must be a list of task records/ })
  t.throws(() => contentOf(received({ query: 5 }), 'db_request'), { message: /query must be an object or null, not 5/ })
  t.throws(() => contentOf(received({ engines: { 0: 7 } }), 'connection_reply'), { message: /engines must be an object of engine uuids by id/ })
  t.throws(() => contentOf(received({ '0': { queue: 'x', completed: 0, tasks: 0 } }), 'queue_reply'), { message: /queue_reply engine 0: queue must be a count/ })
  t.throws(() => contentOf(received({ id: 1 }), 'registration_notification'), { message: /uuid must be a string, not absent/ })
  t.throws(() => contentOf(received({}), 'signal_request'), { message: /sig must be a signal number or name/ })
  t.throws(() => contentOf(received({ text: null }), 'stream'), { message: /stream: text must be a string, not null/ })
  const long = 'x'.repeat(200)
  t.throws(() => contentOf(received({ uuid: [long] }), 'registration_request'), { message: /\.\.\.$/ }, 'a long value is shortened')
})

t.test('contentOf: well-formed content, with the defaults ipyparallel applies', async (t) => {
  t.same(contentOf(received({ uuid: 'e', id: 'three', language: 'javascript' }), 'registration_request'), { uuid: 'e', language: 'javascript' }, 'an id of the wrong type is no request for one')
  t.same(contentOf(received({ id: 2, status: 'ok', hb_period: 250, connection_info: { mux: 1 } }), 'registration_reply'), { status: 'ok', id: 2, hb_period: 250, connection_info: { mux: 1 } })
  t.same(contentOf(received({ id: 2, status: 'ok' }), 'registration_reply'), { status: 'ok', id: 2, connection_info: {} }, 'no heartbeat period: the engine picks its own')
  t.same(contentOf(received({}), 'unregistration_request'), { id: null })
  t.same(contentOf(received({ targets: 3 }), 'queue_request'), { targets: [3], verbose: false }, 'one target is a list of one')
  t.same(contentOf(received({ targets: null, verbose: true }), 'queue_request'), { targets: null, verbose: true })
  t.same(contentOf(received({ msg_ids: 'm1' }), 'result_request'), { msg_ids: ['m1'], status_only: false }, 'one id is a list of one')
  t.same(contentOf(received({}), 'db_request'), { query: {}, keys: null })
  t.same(contentOf(received({ msg_ids: 'all', engine_ids: 1 }), 'purge_request'), { msg_ids: 'all', engine_ids: [1] })
  t.same(contentOf(received({ msg_ids: null }), 'purge_request'), { msg_ids: [], engine_ids: [] })
  t.same(contentOf(received({ msg_ids: 'm1' }), 'abort_request'), { msg_ids: ['m1'] })
  t.same(contentOf(received({}), 'abort_request'), { msg_ids: [] }, 'no list: abort everything queued')
  t.same(contentOf(received({ status: 'ok', engines: { 0: 'a', 1: 'b' } }), 'connection_reply'), { status: 'ok', engines: { 0: 'a', 1: 'b' } })
  t.same(contentOf(received({ name: 'stderr', text: 'x' }), 'stream'), { name: 'stderr', text: 'x' })
  t.same(contentOf(received({ name: 'other', text: 'x' }), 'stream'), { name: 'stdout', text: 'x' }, 'a stream that is not stderr is stdout')
  t.same(contentOf(received({ msg_ids: ['a', 2] }), 'jsparallel_task_inventory'), { msg_ids: ['a', '2'] })
  t.same(contentOf(received({ status: 'ok', unassigned: ['t'], 0: { queue: [], completed: ['a'], tasks: [] } }), 'queue_reply'), {
    status: 'ok', unassigned: ['t'], 0: { queue: [], completed: ['a'], tasks: [] },
  })
})

t.test('contentOf reads a result_reply and its records', async (t) => {
  const content = contentOf(received({
    status: 'ok', pending: ['p'], completed: ['c', 'gone'],
    c: { header: { msg_id: 'c' }, result_content: { status: 'ok' }, received: '2026-11-22T07:08:45Z', io: { stdout: 'hi' } },
  }), 'result_reply')
  t.same(content.pending, ['p'])
  t.same(hubRecordOf(content, 'c'), {
    header: { msg_id: 'c' }, metadata: null, result_header: null, result_metadata: null, result_content: { status: 'ok' },
    received: '2026-11-22T07:08:45Z', io: { stdout: 'hi' },
  })
  t.equal(hubRecordOf(content, 'gone'), undefined, 'a completed id without a record')
  t.equal(hubRecordOf(content, 'pending'), undefined, 'the lists are not records')
  t.throws(() => contentOf(received({ completed: ['c'], c: { header: 5 } }), 'result_reply'), { message: /result_reply record c: header must be an object or null, not 5/ })
})

t.test('contentIfValid: undefined for content contentOf refuses', async (t) => {
  t.equal(contentIfValid(received({ execution_state: 3 }), 'status'), undefined)
  t.same(contentIfValid(received({ execution_state: 'idle' }), 'status'), { execution_state: 'idle' })
})

t.test('headerOf: a stored header with msg_id and msg_type, else undefined', async (t) => {
  const header = session.header('apply_request')
  t.same(headerOf(JSON.parse(JSON.stringify(header))), header)
  t.equal(headerOf(null), undefined)
  t.equal(headerOf({ msg_id: 'm' }), undefined)
  t.equal(headerOf([]), undefined)
})

t.test('contentOf reads a resubmit_reply: new msg ids by old', async (t) => {
  t.same(contentOf(received({ status: 'ok', resubmitted: { a: 'b' } }), 'resubmit_reply'), { status: 'ok', resubmitted: { a: 'b' } })
  t.throws(() => contentOf(received({ status: 'ok', resubmitted: { a: 1 } }), 'resubmit_reply'), { message: /resubmitted must be an object of new msg ids by old, not \{"a":1\}/ })
})
