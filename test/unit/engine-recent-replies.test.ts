import t from 'tap'
import { RecentReplies, type SentReply } from '../../src/engine/recent-replies.js'

const reply = (n: number, bytes = 0): SentReply => ({
  idents: [Buffer.from('task_out')],
  type: 'apply_reply',
  content: { status: 'ok' },
  parent: { msg_id: `m${n}`, msg_type: 'apply_request', session: 's', username: 'u', date: '', version: '5.3' },
  metadata: {},
  buffers: bytes > 0 ? [Buffer.alloc(bytes)] : [],
})
const beat = (s: string): Buffer => Buffer.from(s)

t.test('nothing is sent again while the controller\'s lifetime grows', async (t) => {
  const recent = new RecentReplies()
  recent.remember(reply(1))
  for (const s of ['1.0', '1.25', '1.5', '900.75']) t.equal(recent.beat(beat(s)), undefined)
})

t.test('a restart (the lifetime starts again) sends the kept replies at the next ping, once', async (t) => {
  const recent = new RecentReplies()
  recent.remember(reply(1))
  recent.remember(reply(2))
  t.equal(recent.beat(beat('30.5')), undefined)
  t.equal(recent.beat(beat('0.25')), undefined, 'not at the first ping of the new controller: its channels may not be connected yet')
  t.same(recent.beat(beat('0.5'))?.map((r) => r.parent.msg_id), ['m1', 'm2'])
  t.equal(recent.beat(beat('0.75')), undefined, 'once')
})

t.test('payloads that are not a lifetime are ignored', async (t) => {
  const recent = new RecentReplies()
  recent.remember(reply(1))
  t.equal(recent.beat(beat('10')), undefined)
  t.equal(recent.beat(beat('not a number')), undefined)
  t.equal(recent.beat(undefined), undefined)
  t.equal(recent.beat(beat('11')), undefined, 'the garbage did not count as a restart')
})

t.test('a restart with nothing kept still answers, with an empty list (the engine then sends what it holds)', async (t) => {
  const recent = new RecentReplies()
  recent.beat(beat('9'))
  recent.beat(beat('0.3'))
  t.same(recent.beat(beat('0.6')), [])
})

t.test('bounded by count and by bytes; a reply larger than the byte bound is not kept', async (t) => {
  const recent = new RecentReplies({ count: 3, bytes: 1000 })
  for (let i = 0; i < 5; i++) recent.remember(reply(i))
  t.equal(recent.size, 3)
  recent.remember(reply(10, 600))
  recent.remember(reply(11, 600))
  t.equal(recent.size, 1, 'the oldest went, down to the earlier 600 bytes, to make room')
  recent.remember(reply(12, 5000))
  t.equal(recent.size, 1, 'too large to keep')
  recent.beat(beat('5'))
  recent.beat(beat('1'))
  t.same(recent.beat(beat('2'))?.map((r) => r.parent.msg_id), ['m11'])
})
