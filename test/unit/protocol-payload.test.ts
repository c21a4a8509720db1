import t from 'tap'
import { decodeApply, decodeValue, encodeApply, encodeValue, findUncloneable } from '../../src/protocol/payload.js'

t.test('structured clone keeps Map, Set, Date, BigInt, typed arrays and cycles', async (t) => {
  const value: Record<string, unknown> = { m: new Map([[1, 'a']]), s: new Set(['x']), d: new Date(5), n: 10n ** 30n, u: new Uint16Array([1, 2]) }
  value.self = value
  const out = decodeValue(encodeValue(value)) as typeof value
  t.same(out.m, value.m)
  t.same(out.s, value.s)
  t.equal((out.d as Date).getTime(), 5)
  t.equal(out.n, 10n ** 30n)
  t.same([...(out.u as Uint16Array)], [1, 2])
  t.equal(out.self, out)
})

t.test('large binary data travels as its own frame and is not copied on the way in', async (t) => {
  const big = new Float64Array(1 << 20).map((_, i) => i * 0.5) // 8 MiB
  const frames = encodeValue({ big, small: new Uint8Array(10) })
  t.equal(frames.length, 2, 'one out-of-band frame')
  t.equal(frames[1]?.byteLength, 8 * (1 << 20))
  t.equal(frames[1]?.buffer, big.buffer, 'the frame is a view of the original memory')
  const out = decodeValue(frames) as { big: Float64Array }
  t.ok(out.big instanceof Float64Array)
  t.equal(out.big.buffer, frames[1]?.buffer, 'the decoded array is a view of the received frame')
  t.equal(out.big[123_457], 123_457 * 0.5)
})

t.test('an unaligned frame is copied into an aligned array', async (t) => {
  const big = new Float64Array(10_000).fill(3)
  const [data, frame] = encodeValue(big) as [Buffer, Buffer]
  const shifted = Buffer.alloc(frame.length + 1)
  frame.copy(shifted, 1)
  const out = decodeValue([data, shifted.subarray(1)]) as Float64Array
  t.equal(out[9_999], 3)
})

t.test('apply buffers: descriptor, arguments, frames', async (t) => {
  const buffers = encodeApply({ kind: 'global', path: 'Math.abs' }, [-3, Buffer.alloc(70_000, 1)])
  t.equal(buffers.length, 3)
  const { fn, args } = decodeApply(buffers)
  t.same(fn, { kind: 'global', path: 'Math.abs' })
  t.equal(args[0], -3)
  t.equal((args[1] as Buffer).length, 70_000)
  t.throws(() => decodeApply([Buffer.from('\x80\x04K*.', 'latin1')]), /not a JSON function descriptor/)
  t.throws(() => decodeApply([]), /no buffers/)
  t.throws(() => decodeValue([Buffer.from('garbage')]), /not a valid structured clone/)
})

t.test('findUncloneable names the path of what cannot travel', async (t) => {
  t.same(findUncloneable([1, { opts: { cb: function cb() {} } }], 'args'), { path: 'args[1].opts.cb', what: 'a function (cb)' })
  t.same(findUncloneable([new Map([['k', Symbol('s')]])], 'args'), { path: 'args[0].get(k)', what: 'a symbol' })
  t.equal(findUncloneable([1, 'two', { three: [3] }], 'args'), undefined)
})

t.test('findUncloneable follows a cycle once and still names the part that cannot travel', async (t) => {
  const root: Record<string, unknown> = {}
  const child: Record<string, unknown> = { parent: root, cb: () => 1 }
  root.child = child
  t.same(findUncloneable(root, 'result'), { path: 'result.child.cb', what: 'a function (cb)' })
  t.match(findUncloneable(globalThis, 'result'), { path: /^result\./ })
})
