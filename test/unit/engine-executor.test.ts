import t, { type Test } from 'tap'
import { silentLogger } from '../../src/common/log.js'
import { Executor, type RunOutcome } from '../../src/engine/executor.js'
import { decodeValue, encodeApply, type FunctionDescriptor } from '../../src/protocol/payload.js'

const source = (f: Function): FunctionDescriptor => ({ kind: 'source', source: f.toString(), name: f.name })

function executor(t: Test) {
  const stray: string[] = []
  const ex = new Executor({ log: silentLogger, onStrayOutput: (_name, text) => stray.push(text) })
  t.teardown(() => ex.close())
  return { ex, stray }
}

function value(outcome: RunOutcome): unknown {
  if (outcome.status !== 'ok') throw new Error(`task did not succeed: ${JSON.stringify(outcome)}`)
  return decodeValue(outcome.frames)
}

t.test('runs a function sent as source and returns its value', async (t) => {
  const { ex } = executor(t)
  t.equal(value(await ex.run(encodeApply(source((a: number, b: number) => a + b), [1, 2]), () => {})), 3)
})

t.test('awaits a promise and keeps large binary arguments and results intact', async (t) => {
  const { ex } = executor(t)
  const big = new Float64Array(200_000).map((_, i) => i)
  const f = async (a: Float64Array) => a.map((v) => v * 2)
  const result = value(await ex.run(encodeApply(source(f), [big]), () => {})) as Float64Array
  t.equal(result.length, 200_000)
  t.equal(result[199_999], 399_998)
})

t.test('a thrown error becomes its name, message and stack', async (t) => {
  const { ex } = executor(t)
  const outcome = await ex.run(encodeApply(source(() => { throw new RangeError('too far') }), []), () => {})
  t.match(outcome, { status: 'error', error: { ename: 'RangeError', evalue: 'too far' } })
})

t.test('an unknown name in a source function gets a hint about module references', async (t) => {
  const { ex } = executor(t)
  const outcome = await ex.run(encodeApply({ kind: 'source', source: '() => notDefinedAnywhere', name: '' }, []), () => {})
  t.match(outcome, { status: 'error', error: { ename: 'ReferenceError', evalue: /notDefinedAnywhere is not defined.*moduleFunction\(import\.meta\.url/ } })
})

t.test('a result that cannot be cloned names the part that cannot', async (t) => {
  const { ex } = executor(t)
  const outcome = await ex.run(encodeApply(source(() => ({ list: [1, () => 2] })), []), () => {})
  t.match(outcome, { status: 'error', error: { ename: 'DataCloneError', evalue: /result\.list\[1\] is a function/ } })
})

t.test('a result with cycles that cannot be cloned (the thread\'s global object) says so, not a stack overflow', async (t) => {
  const { ex } = executor(t)
  const outcome = await ex.run(encodeApply({ kind: 'source', source: 'function () { return this }', name: '' }, []), () => {})
  t.match(outcome, { status: 'error', error: { ename: 'DataCloneError', evalue: /the task's result cannot be sent back: result\./ } })
})

t.test('console output reaches the listener formatted, tagged by stream', async (t) => {
  const { ex } = executor(t)
  const seen: string[] = []
  const f = () => {
    console.log('n=%d', 5, { a: 1 })
    console.warn('careful')
  }
  await ex.run(encodeApply(source(f), []), (name, text) => seen.push(`${name}:${text}`))
  t.same(seen, ['stdout:n=5 { a: 1 }\n', 'stderr:careful\n'])
})

t.test('global and module descriptors resolve', async (t) => {
  const { ex } = executor(t)
  t.equal(value(await ex.run(encodeApply({ kind: 'global', path: 'Math.max' }, [1, 9, 3]), () => {})), 9)
  const url = new URL('../../src/protocol/messages.js', import.meta.url).href
  t.equal(value(await ex.run(encodeApply({ kind: 'module', module: url, export: 'replyTypeOf' }, ['abort_request']), () => {})), 'abort_reply')
})

t.test('interrupt ends a task that never yields, and the next task runs', async (t) => {
  const { ex } = executor(t)
  let started!: () => void
  const spinning = new Promise<void>((resolve) => (started = resolve))
  const spin = () => {
    console.log('spinning')
    for (;;) { /* spin */ }
  }
  const running = ex.run(encodeApply(source(spin), []), (_name, text) => text === 'spinning\n' && started())
  await spinning
  t.equal(ex.interrupt(), true)
  t.same(await running, { status: 'aborted' })
  t.equal(value(await ex.run(encodeApply(source(() => 'next'), []), () => {})), 'next')
})

t.test('a task that exits its thread fails with EngineError and a fresh thread serves the next', async (t) => {
  const { ex } = executor(t)
  const outcome = await ex.run(encodeApply(source(() => process.exit(7)), []), () => {})
  t.match(outcome, { status: 'error', error: { ename: 'EngineError', evalue: /exited with code 7/ } })
  t.equal(value(await ex.run(encodeApply(source(() => 1), []), () => {})), 1)
})

t.test('reset drops state kept by earlier tasks', async (t) => {
  const { ex } = executor(t)
  await ex.run(encodeApply(source(() => { (globalThis as Record<string, unknown>).kept = 1 }), []), () => {})
  t.equal(value(await ex.run(encodeApply(source(() => (globalThis as Record<string, unknown>).kept), []), () => {})), 1)
  await ex.reset()
  t.equal(value(await ex.run(encodeApply(source(() => typeof (globalThis as Record<string, unknown>).kept), []), () => {})), 'undefined')
})

t.test('reset during a task waits for it to finish, then drops what it kept', async (t) => {
  const { ex } = executor(t)
  const slow = () => new Promise((resolve) => setTimeout(() => {
    (globalThis as Record<string, unknown>).kept = 1
    console.log('finishing')
    resolve('done')
  }, 200))
  let finishing = false
  const running = ex.run(encodeApply(source(slow), []), (_name, text) => void (finishing ||= text === 'finishing\n'))
  const reset = ex.reset().then(() => finishing)
  t.equal(value(await running), 'done', 'the task was not interrupted')
  t.equal(await reset, true, 'the reset ended after the task had reached its end')
  const kept = value(await ex.run(encodeApply(source(() => typeof (globalThis as Record<string, unknown>).kept), []), () => {}))
  t.equal(kept, 'undefined', 'and replaced the thread the task had run in')
})

t.test('a source sent again is compiled once per executor thread, so V8 can optimise it across tasks', async (t) => {
  const { ex } = executor(t)
  // The source is an expression that counts its own evaluations, then gives the function that reads the count.
  const counting = '(() => { globalThis.compiles = (globalThis.compiles ?? 0) + 1; return () => globalThis.compiles })()'
  const fn: FunctionDescriptor = { kind: 'source', source: counting, name: 'counting' }
  for (let i = 0; i < 3; i++) t.equal(value(await ex.run(encodeApply(fn, []), () => {})), 1, `run ${i + 1} uses the first compilation`)
})
