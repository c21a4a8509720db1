import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import t from 'tap'
import { chunkDescriptor, describeFunction, encodeChunk, encodeTask, moduleFunction } from '../../src/client/functions.js'
import { ConfigError } from '../../src/common/errors.js'
import { decodeApply, type FunctionDescriptor } from '../../src/protocol/payload.js'

const globalEval = eval

/** Runs a source descriptor the way an engine does: indirect eval, then call and await. */
async function runSource(fn: FunctionDescriptor, args: unknown[]): Promise<unknown> {
  if (fn.kind !== 'source') throw new Error('not a source descriptor')
  const f = globalEval(`(${fn.source})`) as (...a: unknown[]) => unknown
  return f(...args)
}

t.test('functions travel by source', async (t) => {
  t.same(describeFunction((x: number) => x + 1), { kind: 'source', source: '(x) => x + 1', name: '' })
  const named = async function work(a: number) { return a * 2 }
  t.match(describeFunction(named), { kind: 'source', name: 'work', source: /^async function work/ })
  const square = (x: number) => x * x
  t.match(describeFunction(square), { name: 'square' })
})

t.test('well-known globals travel by path', async (t) => {
  t.same(describeFunction(Math.abs), { kind: 'global', path: 'Math.abs' })
  t.same(describeFunction(JSON.stringify), { kind: 'global', path: 'JSON.stringify' })
  t.same(describeFunction(parseInt), { kind: 'global', path: 'parseInt' }, 'the top-level name wins over Number.parseInt')
  t.same(describeFunction(Number), { kind: 'global', path: 'Number' })
  t.same(describeFunction(Object.keys), { kind: 'global', path: 'Object.keys' })
})

t.test('what cannot travel is refused with advice', async (t) => {
  t.throws(() => describeFunction([].map), { name: 'ConfigError', message: /native code; native functions other than well-known globals .* cannot travel.*moduleFunction/ })
  t.throws(() => describeFunction(((x: number) => x).bind(null)), { name: 'ConfigError', message: /is bound/ })
  t.throws(() => describeFunction(class Worker {}), { name: 'ConfigError', message: /class 'Worker' cannot be a task/ })
  const holder = { compute(x: number) { return x } }
  // eslint-disable-next-line @typescript-eslint/unbound-method -- the point: a method taken off its object
  t.throws(() => describeFunction(holder.compute), { name: 'ConfigError', message: /method .*write it as an arrow or function expression/ })
  // eslint-disable-next-line @typescript-eslint/unbound-method -- the point: an accessor taken off its object
  const accessor = Object.getOwnPropertyDescriptor({ get value() { return 1 } }, 'value')?.get
  t.throws(() => describeFunction(accessor), ConfigError)
  t.throws(() => describeFunction(42), { message: /must be a function or a moduleFunction/ })
})

t.test('moduleFunction accepts paths, file URLs and node: specifiers', async (t) => {
  const abs = join(tmpdir(), 'work.js')
  t.same(describeFunction(moduleFunction(abs, 'heavy')), { kind: 'module', module: pathToFileURL(abs).href, export: 'heavy' })
  t.equal(moduleFunction(new URL('file:///srv/x.mjs'), 'default').module, 'file:///srv/x.mjs')
  t.equal(moduleFunction('file:///srv/x.mjs', 'f').module, 'file:///srv/x.mjs')
  t.equal(moduleFunction('node:os', 'cpus').module, 'node:os')
  t.equal(moduleFunction('work.js', 'f').module, pathToFileURL(join(process.cwd(), 'work.js')).href)
  t.throws(() => moduleFunction('https://example.com/x.js', 'f'), { name: 'ConfigError', message: /file path, a file: URL or a node: specifier/ })
  t.throws(() => moduleFunction(abs, ''), { name: 'ConfigError', message: /exportName/ })
  t.throws(() => (moduleFunction(abs, 'f') as unknown as () => void)(), TypeError, 'not callable')
})

t.test('arguments that cannot be cloned are refused, naming their path', async (t) => {
  const fn = describeFunction((x: unknown) => x)
  t.throws(() => encodeTask(fn, [1, { callback: function callback() {} }]), {
    name: 'ConfigError',
    message: 'argument args[1].callback is a function (callback): pass data, not functions; functions can only be the task itself',
  })
  t.throws(() => encodeTask(fn, [new Map([['k', Symbol('s')]])]), { message: /argument args\[0\]\.get\(k\) is a symbol: only structured-cloneable data/ })
  const buffers = encodeTask(fn, [1, new Date(0), new Map([[1, 2]])])
  t.same(decodeApply(buffers).args, [1, new Date(0), new Map([[1, 2]])])
})

t.test('map inputs that cannot be cloned are refused, naming the input and position', async (t) => {
  const pairs = chunkDescriptor(describeFunction((a: unknown, b: unknown) => [a, b]), 2)
  t.throws(() => encodeChunk(pairs, [[1, 'a'], [2, { cb: () => 0 }]], 10, 2), { message: /^map input inputs\[1\]\[11\]\.cb is a function \(cb\)/ })
  const single = chunkDescriptor(describeFunction((a: unknown) => a), 1)
  t.throws(() => encodeChunk(single, [1, 2, { cb: () => 0 }], 10, 1), { message: /^map input inputs\[0\]\[12\]\.cb is a function \(cb\)/ })
})

t.test('the chunk wrapper applies a source function to each argument list, awaiting async ones', async (t) => {
  const sync = chunkDescriptor(describeFunction((a: number, b: number) => a * b), 2)
  t.equal(sync.kind, 'source')
  t.same(await runSource(sync, [[[1, 2], [3, 4]]]), [2, 12])
  const async = chunkDescriptor(describeFunction(async (a: number, b: number) => { await new Promise((r) => setTimeout(r, 1)); return -a - b }), 2)
  t.same(await runSource(async, [[[1, 1], [2, 2]]]), [-2, -4])
  const failing = chunkDescriptor(describeFunction((a: number) => { if (a === 2) throw new RangeError('two'); return a }), 2)
  await t.rejects(runSource(failing, [[[1], [2]]]), { name: 'RangeError', message: 'two' })
  const decl = chunkDescriptor(describeFunction(function named(x: number) { return x + 1 }), 2)
  t.same(await runSource(decl, [[[1]]]), [2])
})

t.test('with one input, the chunk holds the values themselves: arrays are not spread, and only promises are awaited', async (t) => {
  const length = chunkDescriptor(describeFunction((xs: unknown) => (Array.isArray(xs) ? xs.length : -1)), 1)
  t.same(await runSource(length, [[[1, 2, 3], 'ab', []]]), [3, -1, 0])
  const indexes = chunkDescriptor(describeFunction((...a: unknown[]) => a.length), 1)
  t.same(await runSource(indexes, [[7, 8]]), [1, 1], 'one argument each, not map\'s (value, index, array)')
  const mixed = chunkDescriptor(describeFunction((x: number) => (x % 2 ? Promise.resolve(x * 10) : x)), 1)
  t.same(await runSource(mixed, [[1, 2, 3]]), [10, 2, 30])
  const failing = chunkDescriptor(describeFunction(async (x: number) => { if (x === 2) throw new RangeError('two'); return x }), 1)
  await t.rejects(runSource(failing, [[1, 2, 3]]), { name: 'RangeError', message: 'two' })
  const plain = chunkDescriptor(describeFunction(() => ({ then: 5 })), 1)
  t.same(await runSource(plain, [[1]]), [{ then: 5 }], 'an object whose then is not a function is a plain result')
})

t.test('the chunk wrapper finds globals by path and module functions by import', async (t) => {
  t.same(await runSource(chunkDescriptor(describeFunction(Math.max), 2), [[[1, 5, 2], [7, 3]]]), [5, 7])
  t.same(await runSource(chunkDescriptor(describeFunction(Math.abs), 1), [[-1, 2, -3]]), [1, 2, 3])
  const dir = mkdtempSync(join(tmpdir(), 'jsparallel-fn-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'work.mjs')
  writeFileSync(file, 'export function heavy(x, y) { return x * 10 + y }\n')
  const wrapped = chunkDescriptor(describeFunction(moduleFunction(file, 'heavy')), 2)
  t.match(wrapped, { kind: 'source', name: 'heavy' })
  t.same(await runSource(wrapped, [[[1, 2], [3, 4]]]), [12, 34])
})
