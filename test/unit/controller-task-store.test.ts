import { join } from 'node:path'
import t from 'tap'
import { QueryError, StoreKeyError } from '../../src/common/errors.js'
import { MemoryTaskStore, SqliteTaskStore, emptyRecord, openTaskStore, type Query, type TaskRecord, type TaskStore } from '../../src/controller/store/index.js'
import { tempDir, type Teardown } from '../helpers/processes.js'

const at = (s: number): Date => new Date(Date.UTC(2026, 10, 22, 12, 0, s))

/** Five records with a spread of values: dates, engines, statuses, streams, lists. */
function fixtures(): TaskRecord[] {
  return [0, 1, 2, 3, 4].map((i) => ({
    ...emptyRecord(`id${i}`),
    header: { msg_id: `id${i}`, msg_type: 'apply_request', n: i },
    metadata: { language: i % 2 === 0 ? 'javascript' : 'python' },
    content: {},
    buffers: [Buffer.from(`request ${i}`), Buffer.alloc(0)],
    submitted: at(i),
    client_uuid: 'client-a',
    engine_uuid: i === 4 ? null : `engine-${i % 2}`,
    queue: i === 3 ? 'mux' : 'task',
    started: i === 4 ? null : at(i + 10),
    completed: i === 4 ? null : at(i + 20),
    result_content: i === 4 ? null : { status: i === 2 ? 'error' : 'ok' },
    result_buffers: i === 4 ? [] : [Buffer.from(`result ${i}`)],
    execute_result: i === 1 ? { data: [1, 2, 3] } : null,
    stdout: i === 0 ? 'hello world' : '',
  }))
}

const stores: [string, (t: Teardown) => TaskStore][] = [
  ['memory', () => new MemoryTaskStore()],
  ['sqlite in memory', () => new SqliteTaskStore({ path: ':memory:' })],
  ['sqlite file', (t) => new SqliteTaskStore({ path: join(tempDir(t), 'tasks.db') })],
]

/** Query -> the ids it must find, in insertion order. Run against every store. */
const cases: [string, Query, string[]][] = [
  ['equality shorthand', { engine_uuid: 'engine-1' }, ['id1', 'id3']],
  ['null equality matches null', { completed: null }, ['id4']],
  ['$eq', { queue: { $eq: 'mux' } }, ['id3']],
  ['$ne', { queue: { $ne: 'task' } }, ['id3']],
  ['$ne null', { engine_uuid: { $ne: null } }, ['id0', 'id1', 'id2', 'id3']],
  ['$eq null', { started: { $eq: null } }, ['id4']],
  ['$gt on dates means after', { submitted: { $gt: at(2) } }, ['id3', 'id4']],
  ['$gte', { submitted: { $gte: at(2) } }, ['id2', 'id3', 'id4']],
  ['$lt', { submitted: { $lt: at(2) } }, ['id0', 'id1']],
  ['$lte', { submitted: { $lte: at(2) } }, ['id0', 'id1', 'id2']],
  ['$lt with null field is false', { completed: { $lt: at(59) } }, ['id0', 'id1', 'id2', 'id3']],
  ['an ISO string against a date field', { completed: { $gte: at(22).toISOString() } }, ['id2', 'id3']],
  ['two operators on one field are ANDed', { submitted: { $gt: at(0), $lt: at(3) } }, ['id1', 'id2']],
  ['two fields are ANDed', { engine_uuid: 'engine-0', queue: 'task' }, ['id0', 'id2']],
  ['$in', { msg_id: { $in: ['id4', 'id1', 'nope'] } }, ['id1', 'id4']],
  ['$nin', { msg_id: { $nin: ['id0', 'id1'] } }, ['id2', 'id3', 'id4']],
  ['$in on dates', { submitted: { $in: [at(1), at(3)] } }, ['id1', 'id3']],
  ['$all on a string', { stdout: { $all: ['hello', 'world'] } }, ['id0']],
  ['$all on a list (inside JSON)', { execute_result: { $eq: { data: [1, 2, 3] } } }, ['id1']],
  ['$exists true', { execute_result: { $exists: true } }, ['id1']],
  ['$exists false', { engine_uuid: { $exists: false } }, ['id4']],
  ['a field no record has is null', { no_such_field: null }, ['id0', 'id1', 'id2', 'id3', 'id4']],
  ['nested equality on a JSON field', { result_content: { status: 'error' } }, ['id2']],
  ['msg_id $ne empty (the test suite\'s "everything")', { msg_id: { $ne: '' } }, ['id0', 'id1', 'id2', 'id3', 'id4']],
]

for (const [name, make] of stores) {
  t.test(`${name} store`, async (t) => {
    const store = make(t)
    t.teardown(() => store.close())
    for (const record of fixtures()) store.addRecord(record)
    t.equal(store.size, 5)

    for (const [what, query, ids] of cases) {
      t.same(store.findRecords(query).map((r) => r.msg_id), ids, what)
    }

    t.test('$mod and $all on a list field', async (t) => {
      const extra = { ...emptyRecord('numbers'), execute_input: null, error: [1, 2, 3] as unknown }
      store.addRecord(extra)
      t.same(store.findRecords({ error: { $all: [1, 3] } }).map((r) => r.msg_id), ['numbers'])
      t.same(store.findRecords({ error: { $all: [1, 4] } }).map((r) => r.msg_id), [])
      store.updateRecord('numbers', { execute_result: 7 })
      t.same(store.findRecords({ execute_result: { $mod: [4, 3] } }).map((r) => r.msg_id), ['numbers'])
      store.dropRecord('numbers')
    })

    t.test('keys project the records, msg_id always included', async (t) => {
      const [record] = store.findRecords({ msg_id: 'id1' }, ['completed', 'engine_uuid'])
      t.same(record, { msg_id: 'id1', completed: at(21), engine_uuid: 'engine-1' })
    })

    t.test('frames and dates round-trip exactly', async (t) => {
      const record = store.getRecord('id0')
      t.same(record.buffers.map((b) => b.toString()), ['request 0', ''])
      t.equal(record.submitted?.getTime(), at(0).getTime())
      t.same(record.header, { msg_id: 'id0', msg_type: 'apply_request', n: 0 })
      const big = Buffer.alloc(1024 * 1024, 7)
      store.updateRecord('id4', { result_buffers: [big, Buffer.alloc(0)], completed: at(30) })
      const back = store.getRecord('id4')
      t.ok(back.result_buffers[0]?.equals(big), '1 MiB frame intact')
      t.equal(back.result_buffers[1]?.length, 0, 'empty frame intact')
    })

    t.test('history is ordered by submission', async (t) => {
      store.addRecord({ ...emptyRecord('early'), submitted: new Date(Date.UTC(2020, 0, 1)) })
      store.addRecord({ ...emptyRecord('undated') })
      t.same(store.getHistory(), ['early', 'id0', 'id1', 'id2', 'id3', 'id4'], 'undated records are left out')
      store.dropRecord('early')
      store.dropRecord('undated')
    })

    t.test('errors name what was wrong', async (t) => {
      t.throws(() => store.addRecord(emptyRecord('id0')), StoreKeyError)
      t.throws(() => store.getRecord('missing'), { name: 'StoreKeyError', message: /No such message: missing/ })
      t.throws(() => store.updateRecord('missing', { stdout: 'x' }), StoreKeyError)
      t.throws(() => store.findRecords({ completed: { $near: 1 } }), { name: 'QueryError', message: /completed: unknown operator \$near/ })
      t.throws(() => store.findRecords({ msg_id: { $in: 'id0' } }), QueryError)
      t.throws(() => store.findRecords({ msg_id: { $mod: [0, 1] } }), /\$mod takes/)
      t.doesNotThrow(() => store.dropRecord('missing'))
    })

    t.test('dropMatchingRecords says how many went', async (t) => {
      t.equal(store.dropMatchingRecords({ engine_uuid: 'engine-1' }), 2)
      t.same(store.findRecords({}).map((r) => r.msg_id), ['id0', 'id2', 'id4'])
      t.notOk(store.hasRecord('id1'))
    })
  })
}

t.test('memory store culls the oldest finished records past its limit, never pending ones', async (t) => {
  const store = new MemoryTaskStore({ recordLimit: 10, cullFraction: 0.5 })
  store.addRecord({ ...emptyRecord('pending'), submitted: at(0) })
  for (let i = 0; i < 11; i++) store.addRecord({ ...emptyRecord(`done${i}`), submitted: at(i + 1), completed: at(i + 2) })
  t.ok(store.hasRecord('pending'), 'a pending record is never culled')
  t.notOk(store.hasRecord('done0'), 'the oldest finished one is')
  t.equal(store.size, 1 + 6, 'half of the limit went')
  t.throws(() => store.getRecord('done0'), /culled/, 'asking for a culled one says so')
  t.throws(() => store.getRecord('never'), /No such message/)
})

t.test('memory store culls by frame bytes too', async (t) => {
  const store = new MemoryTaskStore({ sizeLimitBytes: 1000 })
  for (let i = 0; i < 5; i++) store.addRecord({ ...emptyRecord(`big${i}`), submitted: at(i), completed: at(i), result_buffers: [Buffer.alloc(300)] })
  t.ok(store.findRecords({}).length <= 3, 'under 1000 bytes of frames kept')
  t.ok(store.hasRecord('big4'), 'the newest stays')
})

t.test('sqlite: a reopened file has its records; writes of one turn are visible at once and committed after it', async (t) => {
  const path = join(tempDir(t), 'tasks.db')
  const first = new SqliteTaskStore({ path })
  first.addRecord({ ...emptyRecord('a'), submitted: at(1) })
  first.updateRecord('a', { stdout: 'written in the same turn' })
  t.equal(first.getRecord('a').stdout, 'written in the same turn')
  first.addRecord({ ...emptyRecord('b'), submitted: at(2) })
  await new Promise((resolve) => setImmediate(resolve))
  // A second connection sees what the first committed at the end of its turn.
  const reader = new SqliteTaskStore({ path })
  t.same(reader.getHistory(), ['a', 'b'])
  reader.close()
  first.close()
  const reopened = new SqliteTaskStore({ path })
  t.teardown(() => reopened.close())
  t.equal(reopened.getRecord('a').stdout, 'written in the same turn')
})

t.test('afterCommit: sqlite holds a send until the writes before it are committed; the others send at once', async (t) => {
  const path = join(tempDir(t), 'tasks.db')
  const store = new SqliteTaskStore({ path })
  t.teardown(() => store.close())
  const sent: string[] = []
  store.afterCommit(() => sent.push('nothing pending'))
  t.same(sent, ['nothing pending'], 'nothing to wait for: sent at once')
  store.addRecord({ ...emptyRecord('r'), submitted: at(1) })
  store.afterCommit(() => {
    // What a client is shown is already on disk: another connection reads it.
    const reader = new SqliteTaskStore({ path })
    sent.push(`after commit, another connection sees ${reader.getHistory().join(',')}`)
    reader.close()
  })
  t.same(sent, ['nothing pending'], 'held while the write is pending')
  await new Promise((resolve) => setImmediate(resolve))
  t.same(sent, ['nothing pending', 'after commit, another connection sees r'])
  for (const other of [new MemoryTaskStore(), openTaskStore('none', tempDir(t))]) {
    other.addRecord({ ...emptyRecord('m'), submitted: at(1) })
    let done = false
    other.afterCommit(() => (done = true))
    t.ok(done, `${other.kind}: at once`)
  }
})

t.test('sqlite: a file that is not ours is refused with a clear message', async (t) => {
  const path = join(tempDir(t), 'other.db')
  const store = new SqliteTaskStore({ path })
  ;(store as unknown as { db: { exec(sql: string): void } }).db.exec("UPDATE jsparallel_meta SET value = '99'")
  store.close()
  t.throws(() => new SqliteTaskStore({ path }), /schema version 99/)
})

t.test('sqlite: 100,000 records, a date range query uses the index', async (t) => {
  const store = new SqliteTaskStore({ path: join(tempDir(t), 'big.db') })
  t.teardown(() => store.close())
  const t0 = performance.now()
  for (let i = 0; i < 100_000; i++) {
    store.addRecord({ ...emptyRecord(`m${i}`), submitted: new Date(i * 1000), completed: new Date(i * 1000 + 500), engine_uuid: `e${i % 4}` })
  }
  store.flush()
  const inserted = performance.now() - t0
  const q0 = performance.now()
  const recent = store.findRecords({ completed: { $gt: new Date(99_000 * 1000) } }, ['msg_id'])
  const queried = performance.now() - q0
  t.equal(recent.length, 1000)
  t.comment(`100,000 inserts ${inserted.toFixed(0)} ms; $gt query ${queried.toFixed(1)} ms`)
  const plan = store.queryPlan({ completed: { $gt: new Date(99_000 * 1000) } }, ['msg_id'])
  t.match(plan.join('\n'), /SEARCH tasks USING INDEX tasks_completed \(completed>\?\)/, `SQLite reads the index, not the table: ${plan.join('; ')}`)
  const byEngine = store.queryPlan({ engine_uuid: 'e1', completed: { $ne: null } }, ['msg_id'])
  t.match(byEngine.join('\n'), /USING INDEX tasks_(engine_uuid|completed)/, `and an engine's finished tasks are found by index too: ${byEngine.join('; ')}`)
})

t.test('openTaskStore reads the flag forms', async (t) => {
  const dir = tempDir(t)
  t.equal(openTaskStore('memory', dir).kind, 'memory')
  const sqlite = openTaskStore('sqlite', dir)
  t.equal(sqlite.kind, 'sqlite')
  sqlite.close()
  const none = openTaskStore('none', dir)
  t.throws(() => none.getHistory(), /keeps no task records/)
  t.throws(() => openTaskStore('mongodb', dir), /use memory, sqlite, sqlite:<path> or none/)
})
