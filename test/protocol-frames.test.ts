import t from 'tap'
import { PACK_LIMIT_BYTES, PackedFrames } from '../src/protocol/frames.js'

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
