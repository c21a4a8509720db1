import { PassThrough } from 'node:stream'
import t from 'tap'
import { AsyncResult, type ResultContext } from '../../src/client/async-result.js'
import { ClientClosedError } from '../../src/client/connection.js'
import { AsyncMapResult, lazyMap } from '../../src/client/map.js'
import { Task, type ResultMetadata } from '../../src/client/task.js'
import { CompositeError, RemoteError } from '../../src/common/errors.js'

let counter = 0
const newTask = (): Task => new Task(`m${counter++}`, new Date())
const context: ResultContext = { label: 'work', abort: async () => {} }
const remote = (evalue: string): RemoteError => new RemoteError({ ename: 'Error', evalue, traceback: [] }, { engineId: 0 })
const single = (task: Task) => new AsyncResult<unknown>([task], (v) => v[0], context, { single: true })
const mapOf = (tasks: Task[], ordered = true) => new AsyncMapResult<number>(tasks, context, { ordered })
const tick = () => new Promise((resolve) => setImmediate(resolve))

async function collect<T>(source: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const x of source) out.push(x)
  return out
}

t.test('a single result resolves to its value and reports readiness', async (t) => {
  const task = newTask()
  const ar = single(task)
  t.notOk(ar.ready())
  t.equal(ar.progress, 0)
  t.throws(() => ar.successful(), { name: 'ConfigError', message: /before the result was ready/ })
  t.equal(await ar.wait(1), false)
  task.resolve(42)
  t.ok(ar.ready())
  t.ok(ar.successful())
  t.equal(ar.progress, 1)
  t.equal(await ar, 42)
  t.equal(await ar.get(1), 42)
  t.equal(ar.metadata.msgId, task.msgId)
  t.equal(Object.prototype.toString.call(ar), '[object AsyncResult]')
})

t.test('a failure nobody awaits is not an unhandled rejection', async (t) => {
  let unhandled = 0
  const count = () => unhandled++
  process.on('unhandledRejection', count)
  t.teardown(() => process.off('unhandledRejection', count))
  const task = newTask()
  single(task)
  mapOf([task])
  task.reject(remote('ignored'))
  await tick()
  await tick()
  t.equal(unhandled, 0)
})

t.test('one failed task rejects with its RemoteError; several with a CompositeError', async (t) => {
  const [a, b, c] = [newTask(), newTask(), newTask()]
  const oneFailed = mapOf([a, b])
  a?.resolve([1])
  b?.reject(remote('b failed'))
  await t.rejects(oneFailed, { name: 'RemoteError', message: /b failed/ })
  const twoFailed = mapOf([b, c])
  c?.reject(remote('c failed'))
  const error = await twoFailed.catch((e: unknown) => e)
  t.ok(error instanceof CompositeError)
  t.same((error as CompositeError).errors.map((e) => e.remoteMessage), ['b failed', 'c failed'])
})

t.test('a local failure (the client closed) wins over remote ones', async (t) => {
  const [a, b] = [newTask(), newTask()]
  a.reject(remote('remote'))
  b.reject(new ClientClosedError('the client was closed'))
  await t.rejects(mapOf([a, b]), ClientClosedError)
})

t.test('the whole map waits for every task before rejecting', async (t) => {
  const [a, b] = [newTask(), newTask()]
  const result = mapOf([a, b])
  let settled = false
  result.catch(() => {}).finally(() => (settled = true)).catch(() => {})
  a.reject(remote('early'))
  await tick()
  t.notOk(settled, 'not settled while a task runs')
  b.resolve([2])
  await t.rejects(result, { message: /early/ })
})

t.test('ordered iteration yields in input order as chunks arrive', async (t) => {
  const tasks = [newTask(), newTask(), newTask()]
  const result = mapOf(tasks)
  const seen: number[] = []
  const done = (async () => {
    for await (const x of result) seen.push(x)
  })()
  tasks[1]?.resolve([3, 4])
  await tick()
  t.same(seen, [], 'waits for the first chunk')
  tasks[0]?.resolve([1, 2])
  await tick()
  t.same(seen, [1, 2, 3, 4])
  tasks[2]?.resolve([5])
  await done
  t.same(seen, [1, 2, 3, 4, 5])
  t.same(await result, [1, 2, 3, 4, 5])
})

t.test('unordered iteration yields chunks as they arrive', async (t) => {
  const tasks = [newTask(), newTask(), newTask()]
  const iteration = collect(mapOf(tasks, false))
  tasks[2]?.resolve([5])
  tasks[0]?.resolve([1, 2])
  tasks[1]?.resolve([3, 4])
  t.same(await iteration, [5, 1, 2, 3, 4])
})

t.test('iteration throws at the failed chunk after yielding the earlier ones', async (t) => {
  const tasks = [newTask(), newTask(), newTask()]
  tasks[0]?.resolve([1])
  tasks[1]?.reject(remote('second'))
  tasks[2]?.resolve([3])
  const seen: number[] = []
  await t.rejects(
    (async () => {
      for await (const x of mapOf(tasks)) seen.push(x)
    })(),
    { message: /second/ },
  )
  t.same(seen, [1])
})

t.test('an empty map is ready at once', async (t) => {
  const result = mapOf([])
  t.ok(result.ready())
  t.same(await result, [])
  t.same(await collect(result), [])
})

t.test('imap keeps at most maxOutstanding tasks unfinished and reads input lazily', async (t) => {
  const submitted: Task[] = []
  let unfinishedPeak = 0
  let read = 0
  async function* inputs() {
    for (let i = 0; i < 10; i++) {
      read++
      yield [[i]]
    }
  }
  const submit = (items: unknown[]) => {
    const task = newTask()
    submitted.push(task)
    unfinishedPeak = Math.max(unfinishedPeak, submitted.filter((s) => !s.settled).length)
    const [[x]] = items as [[number]]
    setImmediate(() => task.resolve([x * 2]))
    return task
  }
  const results = await collect(lazyMap<number>(inputs(), submit, { ordered: true, maxOutstanding: 3 }, async () => {}))
  t.same(results, [0, 2, 4, 6, 8, 10, 12, 14, 16, 18])
  t.ok(unfinishedPeak <= 3, `peak ${unfinishedPeak}`)
  t.equal(read, 10)
})

t.test('imap in order: results held behind one slow task count against maxOutstanding', async (t) => {
  // Task 0 stays unfinished until tasks 1 and 2 have finished. Their results wait behind it, so the input must not
  // be read further: a fourth read before the first result would let one slow task pull the input far ahead.
  let read = 0
  async function* inputs() {
    for (let i = 0; i < 6; i++) {
      read++
      yield [[i]]
    }
  }
  const submitted: Task[] = []
  const submit = (items: unknown[]) => {
    const task = newTask()
    const [[x]] = items as [[number]]
    submitted.push(task)
    if (x === 2) task.onSettled(() => setImmediate(() => submitted[0]?.resolve([0])))
    if (x > 0) setImmediate(() => task.resolve([x]))
    return task
  }
  let readAtFirstResult = -1
  const results: number[] = []
  for await (const x of lazyMap<number>(inputs(), submit, { ordered: true, maxOutstanding: 3 }, async () => {})) {
    if (results.length === 0) readAtFirstResult = read
    results.push(x)
  }
  t.same(results, [0, 1, 2, 3, 4, 5])
  t.equal(readAtFirstResult, 3, 'only three inputs read while the first task ran')
})

t.test('imap stops reading its input when the iteration stops', async (t) => {
  let read = 0
  let closed = false
  async function* endless() {
    try {
      for (let i = 0; ; i++) {
        read++
        yield [[i]]
      }
    } finally {
      closed = true
    }
  }
  const submit = (items: unknown[]) => {
    const task = newTask()
    setImmediate(() => task.resolve((items as [number][]).map(([x]) => x)))
    return task
  }
  const seen: number[] = []
  for await (const x of lazyMap<number>(endless(), submit, { ordered: false, maxOutstanding: 2 }, async () => {})) {
    seen.push(x)
    if (seen.length === 5) break
  }
  t.equal(seen.length, 5)
  t.ok(closed, 'the input was closed')
  t.ok(read <= 7, `read ${read} inputs`)
})

t.test('waitInteractive: a bar on a TTY, one line otherwise', async (t) => {
  const tasks = [newTask(), newTask()]
  const result = mapOf(tasks)
  const tty = Object.assign(new PassThrough(), { isTTY: true, columns: 100 })
  let drawn = ''
  tty.on('data', (d: Buffer) => (drawn += d.toString()))
  const waiting = result.waitInteractive({ stream: tty, intervalMs: 10 })
  tasks[0]?.resolve([1])
  setTimeout(() => tasks[1]?.resolve([2]), 30)
  t.equal(await waiting, true)
  t.match(drawn, /work \[.*\] 2\/2 tasks/)

  const plain = new PassThrough()
  let line = ''
  plain.on('data', (d: Buffer) => (line += d.toString()))
  t.equal(await result.waitInteractive({ stream: plain }), true)
  t.match(line, /^work: 2\/2 tasks done in \d+\.\d s\n$/)

  const pending = mapOf([newTask()])
  let timedOut = ''
  const out = new PassThrough()
  out.on('data', (d: Buffer) => (timedOut += d.toString()))
  t.equal(await pending.waitInteractive({ stream: out, timeoutMs: 20 }), false)
  t.match(timedOut, /0\/1 tasks done, still running/)
})

/** A finished task: ran on `engineId`, submitted at 0 ms, started and completed at the given ms, received at `received`. */
function ranTask(engineId: number, value: unknown, times: { started: number; completed: number; received: number }): Task {
  const task = new Task(`m${counter++}`, new Date(0))
  Object.assign(task.metadata, { engineId, started: new Date(times.started), completed: new Date(times.completed), received: new Date(times.received) })
  task.resolve(value)
  return task
}

t.test('engineId is the engine of a single task, or of each task in order', async (t) => {
  const a = ranTask(3, 'x', { started: 1, completed: 2, received: 3 })
  const b = ranTask(1, 'y', { started: 1, completed: 2, received: 3 })
  t.equal(single(a).engineId, 3)
  const many = new AsyncResult<unknown[], readonly ResultMetadata[]>([a, b], (v) => v, context, { single: false })
  t.same(many.engineId, [3, 1])
  t.equal(single(newTask()).engineId, undefined, 'undefined until known')
})

t.test('wallTimeMs spans first submission to last reply; serialTimeMs adds up the tasks\' run times', async (t) => {
  const a = ranTask(0, 1, { started: 10, completed: 110, received: 120 })
  const b = ranTask(1, 2, { started: 20, completed: 70, received: 200 })
  const ar = new AsyncResult<unknown[], readonly ResultMetadata[]>([a, b], (v) => v, context, { single: false })
  await ar
  t.equal(ar.wallTimeMs, 200)
  t.equal(ar.serialTimeMs, 150)
  t.throws(() => single(newTask()).wallTimeMs, { name: 'ConfigError', message: /wallTimeMs was read before the result was ready/ })
  t.throws(() => single(newTask()).serialTimeMs, { name: 'ConfigError' })
})

t.test('getDict keys the results by engine; a map task gives its chunk; two tasks on one engine are refused', async (t) => {
  const times = { started: 1, completed: 2, received: 3 }
  const ar = new AsyncResult<unknown[], readonly ResultMetadata[]>([ranTask(2, 'two', times), ranTask(0, 'zero', times)], (v) => v, context, { single: false })
  t.same([...(await ar.getDict())], [[2, 'two'], [0, 'zero']])
  t.same([...(await mapOf([ranTask(1, [1, 2], times), ranTask(0, [3], times)]).getDict())], [[1, [1, 2]], [0, [3]]])
  const twice = mapOf([ranTask(1, [1], times), ranTask(1, [2], times)])
  await t.rejects(twice.getDict(), { name: 'ConfigError', message: /more than one task ran on engine 1/ })
  const failed = newTask()
  failed.reject(remote('broken'))
  await t.rejects(single(failed).getDict(), { name: 'RemoteError', message: /broken/ })
})

t.test('returnExceptions: errors in place of values, for get and for a map', async (t) => {
  const [a, b, c] = [newTask(), newTask(), newTask()]
  const many = new AsyncResult<unknown[], readonly ResultMetadata[]>([a, b] as Task[], (v) => v, context, { single: false })
  a?.resolve('ok')
  const bError = remote('b failed')
  b?.reject(bError)
  await t.rejects(many, { name: 'RemoteError', message: /b failed/ }, 'awaiting still rejects')
  t.same(await many.get({ returnExceptions: true }), ['ok', bError])
  await t.rejects(many.get({ returnExceptions: false }), { name: 'RemoteError' })
  const one = single(c)
  const cError = remote('c failed')
  c?.reject(cError)
  t.equal(await one.get({ returnExceptions: true }), cError, 'a single task gives its error')
  await t.rejects(one.get({ returnExceptions: 'yes' as unknown as boolean }), { name: 'ConfigError', message: /returnExceptions must be a boolean/ })
  await t.rejects(one.get({ timeout: 5 } as never), { name: 'ConfigError', message: /unknown option 'timeout'/ })

  // A map made with returnExceptions resolves; a failed chunk's error stands at each of its inputs.
  const [x, y, z] = [newTask(), newTask(), newTask()]
  const map = new AsyncMapResult<number>([x, y, z] as Task[], context, { ordered: true, returnExceptions: true, sizes: [2, 2, 1] })
  x?.resolve([1, 2])
  const yError = remote('chunk 2 failed')
  y?.reject(yError)
  z?.resolve([5])
  t.same(await map, [1, 2, yError, yError, 5])
  t.ok(map.successful())
  t.same(await collect(map), [1, 2, yError, yError, 5], 'iteration yields the errors too')
})

t.test('displayOutputs shows each engine\'s stdout then stderr under headers, or one task\'s output as it is', async (t) => {
  const out = (id: number, stdout: string, stderr: string): Task => {
    const task = ranTask(id, 1, { started: 1, completed: 2, received: 3 })
    Object.assign(task.metadata, { stdout, stderr })
    return task
  }
  const ar = new AsyncResult<unknown[], readonly ResultMetadata[]>([out(0, 'a\n', ''), out(1, 'b', 'oops\n'), out(1, 'c\n', '')], (v) => v, context, { single: false })
  t.equal(await ar.displayOutputs({ print: false }), '[stdout:0]\na\n[stdout:1]\nb\nc\n[stderr:1]\noops\n')
  t.equal(await ar.displayOutputs({ groupBy: 'engine', print: false }), '[stdout:0]\na\n[stdout:1]\nb\nc\n[stderr:1]\noops\n')
  const mixed = new AsyncResult<unknown[], readonly ResultMetadata[]>([out(0, 'a\n', 'e0\n'), out(1, 'b\n', 'e1\n')], (v) => v, context, { single: false })
  t.equal(await mixed.displayOutputs({ print: false }), '[stdout:0]\na\n[stdout:1]\nb\n[stderr:0]\ne0\n[stderr:1]\ne1\n')
  t.equal(await mixed.displayOutputs({ groupBy: 'engine', print: false }), '[stdout:0]\na\n[stderr:0]\ne0\n[stdout:1]\nb\n[stderr:1]\ne1\n')
  t.equal(await single(out(3, 'just this\n', '')).displayOutputs({ print: false }), 'just this\n')
  await t.rejects(mixed.displayOutputs({ groupBy: 'order' as 'type' }), { name: 'ConfigError', message: /groupBy must be 'type' or 'engine'/ })
})

t.test('imap cancel stops submitting, aborts what is in flight and ends the iteration', async (t) => {
  const submitted: Task[] = []
  let read = 0
  async function* endless() {
    for (let i = 0; ; i++) {
      read++
      yield [i]
    }
  }
  const submit = (items: unknown[]) => {
    const task = newTask()
    submitted.push(task)
    // The first finishes at once; the rest stay running until aborted.
    if ((items[0] as number) === 0) setImmediate(() => task.resolve([0]))
    return task
  }
  const aborted: string[][] = []
  const abort = async (ids: string[]) => {
    aborted.push(ids)
    for (const task of submitted) if (ids.includes(task.msgId)) task.reject(remote('aborted'))
  }
  const it = lazyMap<number>(endless(), submit, { ordered: true, maxOutstanding: 3 }, abort)
  const first = await it.next()
  t.same(first, { value: 0, done: false })
  const pending = it.next()
  await tick()
  const readBefore = read
  const submittedBefore = submitted.length
  await it.cancel()
  t.same(await pending, { value: undefined, done: true }, 'a waiting next() ends')
  t.same(aborted, [submitted.slice(1).map((s) => s.msgId)], 'the unfinished tasks were aborted')
  t.equal(submitted.length, submittedBefore, 'nothing more was submitted')
  t.ok(read <= readBefore + 1, 'the input was not read on')
  t.same(await it.next(), { value: undefined, done: true })
  await it.cancel()
  t.equal(aborted.length, 1, 'cancel is idempotent')
})
