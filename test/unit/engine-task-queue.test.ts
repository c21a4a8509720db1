import t from 'tap'
import type { ErrorContent } from '../../src/common/errors.js'
import { silentLogger } from '../../src/common/log.js'
import type { OutputListener, RunOutcome, TaskRunner } from '../../src/engine/executor.js'
import { TaskQueue, isJavaScriptApply, type ShellRequest } from '../../src/engine/task-queue.js'
import type { Header, ReplyMetadata } from '../../src/protocol/messages.js'
import { encodeApply } from '../../src/protocol/payload.js'

/** A runner whose tasks finish when the test says so. */
class FakeRunner implements TaskRunner {
  runs: { frames: Buffer[]; code?: string; onOutput: OutputListener; resolve: (o: RunOutcome) => void }[] = []
  interrupts = 0
  resets = 0
  run(frames: Buffer[], onOutput: OutputListener): Promise<RunOutcome> {
    return new Promise((resolve) => this.runs.push({ frames, onOutput, resolve }))
  }
  execute(code: string, onOutput: OutputListener): Promise<RunOutcome> {
    return new Promise((resolve) => this.runs.push({ frames: [], code, onOutput, resolve }))
  }
  interrupt(): boolean {
    this.interrupts++
    this.runs.shift()?.resolve({ status: 'aborted' })
    return true
  }
  async reset(): Promise<void> {
    this.resets++
  }
  async close(): Promise<void> {
    for (const r of this.runs.splice(0)) r.resolve({ status: 'aborted' })
  }
  finish(value: Buffer[] = [Buffer.from('result')]): void {
    this.runs.shift()?.resolve({ status: 'ok', frames: value })
  }
}

const jsBuffers = (): Buffer[] => encodeApply({ kind: 'source', source: '() => 1', name: '' }, [])
let n = 0
function request(buffers = jsBuffers(), metadata: Record<string, unknown> = {}): ShellRequest {
  const header: Header = { msg_id: `m${n++}`, msg_type: 'apply_request', username: 'u', session: 'client', date: '', version: '5.3' }
  return { idents: [Buffer.from('task_out'), Buffer.from('client')], msg: { header, parent_header: {}, metadata, content: {}, buffers } }
}

function executeRequest(code: string, silent = false): ShellRequest {
  const header: Header = { msg_id: `m${n++}`, msg_type: 'execute_request', username: 'u', session: 'client', date: '', version: '5.3' }
  return { idents: [Buffer.from('client')], msg: { header, parent_header: {}, metadata: {}, content: { code, silent, user_expressions: {} }, buffers: [] } }
}

function setup() {
  const runner = new FakeRunner()
  const events: string[] = []
  const replies: { id: string; content: Record<string, unknown>; metadata: ReplyMetadata; buffers: Buffer[] }[] = []
  const queue = new TaskQueue({
    reply: (req, content, metadata, buffers = []) => {
      events.push(`reply ${req.msg.header.msg_id} ${String((content as { status: string }).status)}`)
      replies.push({ id: req.msg.header.msg_id, content: content as Record<string, unknown>, metadata, buffers })
    },
    status: (parent, state) => events.push(`${state} ${parent.msg_id}`),
    publishError: (parent, content: ErrorContent) => events.push(`error ${parent.msg_id} ${content.ename}`),
    output: (parent, name, text) => events.push(`${name} ${parent.msg_id} ${text}`),
    publishExecute: (parent: Header, type: string, content: object) => events.push(`${type} ${parent.msg_id} ${JSON.stringify(content)}`),
    trackOutput: () => {},
    finishOutput: () => {
      events.push('flush')
      return 0
    },
  }, runner, { engine: { uuid: 'engine-uuid', id: 4 }, log: silentLogger, now: () => 'NOW' })
  return { runner, events, replies, queue }
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

t.test('tasks run one at a time in arrival order, bracketed by busy and idle', async (t) => {
  const { runner, events, queue } = setup()
  const a = request()
  const b = request()
  queue.submit(a)
  queue.submit(b)
  t.equal(runner.runs.length, 1)
  runner.runs[0]?.onOutput('stdout', 'hi\n')
  runner.finish()
  await tick()
  runner.finish()
  await tick()
  const [ia, ib] = [a.msg.header.msg_id, b.msg.header.msg_id]
  t.same(events, [`busy ${ia}`, `stdout ${ia} hi\n`, 'flush', `reply ${ia} ok`, `idle ${ia}`, `busy ${ib}`, 'flush', `reply ${ib} ok`, `idle ${ib}`])
})

t.test('a request whose metadata says iopub_status: false gets no busy/idle, on success and on refusal', async (t) => {
  const { runner, events, queue } = setup()
  const quiet = request(jsBuffers(), { iopub_status: false })
  const refused = request([Buffer.from('not a descriptor'), Buffer.from('x')], { iopub_status: false })
  queue.submit(quiet)
  runner.runs[0]?.onOutput('stdout', 'hi\n')
  runner.finish()
  await tick()
  queue.submit(refused)
  const [iq, ir] = [quiet.msg.header.msg_id, refused.msg.header.msg_id]
  t.same(events, [`stdout ${iq} hi\n`, 'flush', `reply ${iq} ok`, 'flush', `error ${ir} NotImplementedError`, `reply ${ir} error`])
})

t.test('a reply carries ipyparallel metadata and the result buffers', async (t) => {
  const { runner, replies, queue } = setup()
  queue.submit(request(jsBuffers(), { is_broadcast: true, is_coalescing: true, original_msg_id: 'orig' }))
  runner.finish([Buffer.from('r')])
  await tick()
  t.same(replies[0]?.metadata, {
    started: 'NOW', dependencies_met: true, engine: 'engine-uuid', is_broadcast: true, is_coalescing: true, original_msg_id: 'orig', status: 'ok',
    streams: 0,
  })
  t.same(replies[0]?.buffers.map(String), ['r'])
})

t.test('a failed task answers error content naming the engine and publishes an IOPub error', async (t) => {
  const { runner, events, replies, queue } = setup()
  const a = request()
  queue.submit(a)
  runner.runs.shift()?.resolve({ status: 'error', error: { ename: 'UnmetDependency', evalue: 'not yet', traceback: [] } })
  await tick()
  t.match(replies[0], {
    content: { status: 'error', ename: 'UnmetDependency', evalue: 'not yet', engine_info: { engine_uuid: 'engine-uuid', engine_id: 4, method: 'apply' } },
    metadata: { status: 'error', dependencies_met: false, engine_info: { engine_uuid: 'engine-uuid', engine_id: 4 } },
  })
  t.ok(events.includes(`error ${a.msg.header.msg_id} UnmetDependency`))
})

t.test('an execute_request runs its code: execute_input, output, execute_result, then a reply with the count and the value', async (t) => {
  const { runner, events, replies, queue } = setup()
  const a = executeRequest('console.log("hi"); 6 * 7')
  queue.submit(a)
  t.equal(runner.runs[0]?.code, 'console.log("hi"); 6 * 7')
  runner.runs[0]?.onOutput('stdout', 'hi\n')
  runner.runs.shift()?.resolve({ status: 'ok', frames: [Buffer.from('42')], text: '42' })
  await tick()
  const id = a.msg.header.msg_id
  t.same(events, [
    `busy ${id}`,
    `execute_input ${id} {"code":"console.log(\\"hi\\"); 6 * 7","execution_count":1}`,
    `stdout ${id} hi\n`,
    'flush',
    `execute_result ${id} {"execution_count":1,"data":{"text/plain":"42"},"metadata":{}}`,
    `reply ${id} ok`,
    `idle ${id}`,
  ])
  t.same(replies[0]?.content, { status: 'ok', execution_count: 1, user_expressions: {}, payload: [], data: { 'text/plain': '42' } })
  t.same(replies[0]?.buffers.map(String), ['42'])
})

t.test('a silent execute publishes neither its input nor its result and does not count', async (t) => {
  const { runner, events, replies, queue } = setup()
  queue.submit(executeRequest('x = 1', true))
  runner.runs.shift()?.resolve({ status: 'ok', frames: [], text: '1' })
  await tick()
  queue.submit(executeRequest('x'))
  runner.runs.shift()?.resolve({ status: 'error', error: { ename: 'SyntaxError', evalue: 'bad', traceback: [] } })
  await tick()
  t.notOk(events.some((e) => e.startsWith('execute_result')))
  t.equal(events.filter((e) => e.startsWith('execute_input')).length, 1)
  t.match(replies[0]?.content, { status: 'ok', execution_count: 0 })
  t.match(replies[1]?.content, { status: 'error', ename: 'SyntaxError', engine_info: { method: 'execute' } })
})

t.test('an execute_request without code is answered with an error, and the queue goes on', async (t) => {
  const { runner, replies, queue } = setup()
  const bad = executeRequest('')
  ;(bad.msg.content as Record<string, unknown>).code = 5
  queue.submit(bad)
  await tick()
  t.match(replies[0]?.content, { status: 'error', ename: 'EngineError', evalue: /code/ })
  queue.submit(request())
  runner.finish()
  await tick()
  t.equal(replies[1]?.content.status, 'ok')
})

t.test('buffers that are not a JavaScript descriptor are refused at once', async (t) => {
  const { runner, replies, queue } = setup()
  queue.submit(request([Buffer.from([0x80, 4, 0x95]), Buffer.from('args')]))
  t.equal(runner.runs.length, 0)
  t.match(replies[0]?.content, { status: 'error', ename: 'NotImplementedError', evalue: /JavaScript engine/ })
})

t.test('abort answers queued tasks at once, interrupts a running one, and remembers unseen ids', async (t) => {
  const { runner, replies, queue } = setup()
  const running = request()
  const queued = request()
  const other = request()
  queue.submit(running)
  queue.submit(queued)
  queue.submit(other)
  queue.abort([running.msg.header.msg_id, queued.msg.header.msg_id, 'later'])
  await tick()
  t.equal(runner.interrupts, 1)
  t.same(replies.map((r) => [r.id, r.content.status, r.metadata.status]), [
    [queued.msg.header.msg_id, 'aborted', 'aborted'],
    [running.msg.header.msg_id, 'aborted', 'aborted'],
  ])
  t.equal(runner.runs.length, 1, 'the task not named runs next')
  const later = request()
  later.msg.header.msg_id = 'later'
  queue.submit(later)
  t.same(replies.at(-1)?.content, { status: 'aborted' })
})

t.test('abort with an empty list aborts everything queued but not the running task', async (t) => {
  const { runner, replies, queue } = setup()
  queue.submit(request())
  queue.submit(request())
  queue.submit(request())
  queue.abort([])
  t.equal(replies.length, 2)
  t.equal(runner.interrupts, 0)
  t.equal(queue.queued, 0)
})

t.test('interrupt (SIGINT) ends the running task with KeyboardInterrupt', async (t) => {
  const { replies, queue } = setup()
  queue.submit(request())
  t.equal(queue.interrupt(), true)
  await tick()
  t.match(replies[0]?.content, { status: 'error', ename: 'KeyboardInterrupt' })
})

t.test('close answers queued and running tasks aborted', async (t) => {
  const { replies, queue } = setup()
  queue.submit(request())
  queue.submit(request())
  await queue.close()
  t.same(replies.map((r) => r.content.status), ['aborted', 'aborted'])
  queue.submit(request())
  t.same(replies.at(-1)?.content, { status: 'aborted' })
})

t.test('isJavaScriptApply tells our descriptors from anything else', async (t) => {
  t.equal(isJavaScriptApply(jsBuffers()), true)
  t.equal(isJavaScriptApply([Buffer.from('{"kind":"pickle"}'), Buffer.from('x')]), false)
  t.equal(isJavaScriptApply([Buffer.from('{not json'), Buffer.from('x')]), false)
  t.equal(isJavaScriptApply([Buffer.from('{"kind":"source"}')]), false, 'arguments are required')
})
