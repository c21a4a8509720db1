import t from 'tap'
import { PACK_LIMIT_BYTES, PackedFrames, SharedIdentities } from '../../src/protocol/frames.js'

t.test('small messages are packed into one buffer; views give the frames back byte for byte', async (t) => {
  const frames = [Buffer.from('<IDS|MSG>'), Buffer.alloc(0), Buffer.from('{"msg_id":"a"}'), Buffer.from([0, 1, 2, 255])]
  const packed = new PackedFrames(frames)
  t.equal(packed.length, 4)
  const views = packed.views()
  t.same(views.map((v) => v.toString('hex')), frames.map((f) => f.toString('hex')))
  t.equal(new Set(views.map((v) => v.buffer)).size, 1, 'one allocation behind every view')
  t.not(views[0]?.buffer, frames[0]?.buffer, 'a copy, so the received frames can be freed')
  t.same(packed.views(2).map(String), ['{"msg_id":"a"}', '\u0000\u0001\u0002\ufffd'])
  frames[2]?.fill(0)
  t.equal(packed.views(2, 3)[0]?.toString(), '{"msg_id":"a"}', 'independent of the originals')
})

t.test('a large message keeps its frames (no copy)', async (t) => {
  const big = Buffer.alloc(PACK_LIMIT_BYTES)
  const frames = [Buffer.from('x'), big]
  const views = new PackedFrames(frames).views()
  t.equal(views[1], big)
})

t.test('SharedIdentities: one copy per identity, shared by every task of that client; bounded', async (t) => {
  const ids = new SharedIdentities(2)
  const zmqFrame = Buffer.from('client-a')
  const a1 = ids.of([zmqFrame])
  const a2 = ids.of([Buffer.from('client-a')])
  t.equal(a1, a2, 'the same array for the same identity')
  t.not(a1[0], zmqFrame, 'a copy, not the frame ZeroMQ handed over')
  zmqFrame.fill(0)
  t.equal(a1[0]?.toString(), 'client-a', 'the copy does not change with the received frame')
  t.not(ids.of([Buffer.from('client-b')]), a1)
  t.same(ids.of([Buffer.from('x'), Buffer.from('y')]).map(String), ['x', 'y'], 'several routing frames')
  t.not(ids.of([Buffer.from('client-a')]), a1, 'past the limit the cache starts again')
})
