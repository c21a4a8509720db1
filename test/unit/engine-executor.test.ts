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

// Execute: JavaScript source run in the executor's global scope.

function executed(outcome: RunOutcome): { value: unknown; text: string | undefined } {
  if (outcome.status !== 'ok') throw new Error(`execute did not succeed: ${JSON.stringify(outcome)}`)
  return { value: outcome.frames.length > 0 ? decodeValue(outcome.frames) : undefined, text: outcome.text }
}

t.test('execute gives the last expression\'s value and its inspection; a declaration gives none', async (t) => {
  const { ex } = executor(t)
  t.same(executed(await ex.execute('const a = [1, 2]\na.map((x) => x * 10)', () => {})), { value: [10, 20], text: '[ 10, 20 ]' })
  t.same(executed(await ex.execute('let nothing = 1', () => {})), { value: undefined, text: undefined })
})

t.test('execute keeps its declarations in the global scope, where later code and tasks see them', async (t) => {
  const { ex } = executor(t)
  await ex.execute('const base = 100; var v = 1; function addBase(x) { return x + base }; implicit = 5', () => {})
  t.equal(executed(await ex.execute('addBase(v) + implicit', () => {})).value, 106)
  t.equal(value(await ex.run(encodeApply({ kind: 'source', source: '(x) => addBase(x)', name: '' }, [1]), () => {})), 101)
  await ex.reset()
  t.match(await ex.execute('base', () => {}), { status: 'error', error: { ename: 'ReferenceError', evalue: /base is not defined/ } })
})

t.test('execute allows top-level await; the last expression is still the value', async (t) => {
  const { ex } = executor(t)
  const code = 'const r = await new Promise((resolve) => setTimeout(() => resolve(21), 1))\nglobalThis.kept = r\nr * 2;'
  t.same(executed(await ex.execute(code, () => {})), { value: 42, text: '42' })
  t.equal(executed(await ex.execute('kept', () => {})).value, 21, 'a global assigned by awaiting code stays')
  t.same(executed(await ex.execute('for (let i = 0; i < 2; i++) await i\nconsole.log("done")', () => {})), { value: undefined, text: undefined })
  t.match(executed(await ex.execute('await import("node:os")', () => {})), { value: undefined, text: /EOL/ }, 'a module namespace cannot be cloned: it comes back as text')
  t.match(executed(await ex.execute('(await import("node:os")).EOL', () => {})), { value: '\n' })
})

t.test('execute: a value that cannot be cloned comes back as its text alone', async (t) => {
  const { ex } = executor(t)
  t.same(executed(await ex.execute('square = (x) => x * x', () => {})), { value: undefined, text: '[Function: square]' })
})

t.test('execute: output is captured; an error gives its name, message and a traceback naming the code', async (t) => {
  const { ex } = executor(t)
  const seen: string[] = []
  const outcome = await ex.execute('console.log("before")\nnull.boom', (name, text) => seen.push(`${name}:${text}`))
  t.same(seen, ['stdout:before\n'])
  t.match(outcome, { status: 'error', error: { ename: 'TypeError', evalue: /Cannot read properties of null/, traceback: [/TypeError/, /<execute \d+>:2/] } })
  const awaited = await ex.execute('await 1\nthrow new RangeError("far")', () => {})
  t.match(awaited, { status: 'error', error: { ename: 'RangeError', evalue: 'far', traceback: [/RangeError: far/, /<execute \d+>:2/] } })
})

t.test('execute of Python code fails as a SyntaxError that says the engine runs JavaScript', async (t) => {
  const { ex } = executor(t)
  for (const code of ['import numpy as np', 'def f(x):\n    return x * 2', 'squares = [i * i for i in range(3)]']) {
    const outcome = await ex.execute(code, () => {})
    t.match(outcome, { status: 'error', error: { ename: 'SyntaxError', evalue: /runs JavaScript.*ipengine/ } }, code)
  }
  await ex.execute('const once = 1', () => {})
  const twice = await ex.execute('const once = 2', () => {})
  t.match(twice, { status: 'error', error: { ename: 'SyntaxError', evalue: /^Identifier 'once' has already been declared$/ } }, 'a JavaScript mistake gets no word about Python')
  const awaiting = await ex.execute('await 1\nlet = = 2', () => {})
  t.match(awaiting, { status: 'error', error: { ename: 'SyntaxError', evalue: /^(?!.*await).*Unexpected token/ } }, 'code that awaits: the error is its own, not the await\'s')
  t.equal(executed(await ex.execute('1 + 1', () => {})).value, 2, 'and the engine goes on')
})
