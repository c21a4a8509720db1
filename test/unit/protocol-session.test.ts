import t from 'tap'
import { Session, splitIdents } from '../../src/protocol/session.js'
import { formatIsoMicros, isoNow, parseIsoDate } from '../../src/protocol/dates.js'

// Appendix A of the reference: a connection_request captured from the stock 7.1 client, with the key of the
// connection file shown there. The signature is the one the Python client put on the wire.
const KEY = 'a0ed7e57-c5f09daafad760d0220488fd'
const captured = [
  '<IDS|MSG>',
  '6abe48116a828608ff80f65e1a2c00a2029b3a5780c8cfc2fd4e1a1d0858a6d4',
  '{"msg_id": "9921754d-63cc162194e34c76f12043e2_10827_0", "msg_type": "connection_request", "username": "username", "session": "9921754d-63cc162194e34c76f12043e2", "date": "2026-11-22T07:08:45.811574Z", "version": "5.3"}',
  '{}', '{}', '{}',
].map((s) => Buffer.from(s))

t.test('verifies and parses a message signed by the Python client', async (t) => {
  const session = new Session({ key: KEY })
  const { idents, msg } = session.deserialize([Buffer.from('\x00k\x8bEh', 'latin1'), ...captured])
  t.equal(idents.length, 1)
  t.equal(msg.header.msg_type, 'connection_request')
  t.equal(msg.header.msg_id, '9921754d-63cc162194e34c76f12043e2_10827_0')
  t.same(msg.content, {})
})

t.test('signs exactly as jupyter_client does', async (t) => {
  const session = new Session({ key: KEY })
  t.equal(session.sign(captured.slice(2, 6)).toString(), captured[1]?.toString())
})

t.test('rejects a forged signature, a wrong key and a replay, naming the problem', async (t) => {
  const forged = [...captured]
  forged[1] = Buffer.from('0'.repeat(64))
  t.throws(() => new Session({ key: KEY }).deserialize(forged), /invalid message signature/)
  t.throws(() => new Session({ key: 'other' }).deserialize(captured), /invalid message signature/)
  const once = new Session({ key: KEY })
  once.deserialize(captured)
  t.throws(() => once.deserialize(captured), /duplicate message signature/)
})

t.test('rejects malformed frames with a clear error', async (t) => {
  const session = new Session({ key: '' })
  t.throws(() => session.deserialize([Buffer.from('x')]), /no <IDS\|MSG> delimiter/)
  t.throws(() => session.deserialize([Buffer.from('<IDS|MSG>'), Buffer.alloc(0), Buffer.from('{}')]), /at least 5 are required/)
  const bad = [Buffer.from('<IDS|MSG>'), Buffer.alloc(0), Buffer.from('{not json'), Buffer.from('{}'), Buffer.from('{}'), Buffer.from('{}')]
  t.throws(() => session.deserialize(bad), /header is not valid JSON/)
  const noType = [Buffer.from('<IDS|MSG>'), Buffer.alloc(0), Buffer.from('{"msg_id": "x"}'), Buffer.from('{}'), Buffer.from('{}'), Buffer.from('[]')]
  t.throws(() => session.deserialize(noType), /lacks msg_id or msg_type/)
})

t.test('round trip: idents, parent, metadata, content and buffers', async (t) => {
  const a = new Session({ key: 'k' })
  const b = new Session({ key: 'k' })
  const request = a.msg('apply_request', {}, { metadata: { retries: 2 }, buffers: [Buffer.from([1, 2, 3])] })
  const reply = b.msg('apply_reply', { status: 'ok' }, { parent: request.header })
  const frames = b.serialize(reply, [Buffer.from('engine')])
  const { idents, msg, wire } = a.deserialize(frames)
  t.same(idents.map(String), ['engine'])
  t.same(msg.parent_header, request.header)
  t.equal(wire.length, 6)
  const req = b.deserialize(a.serialize(request))
  t.same(req.msg.metadata, { retries: 2 })
  t.same([...(req.msg.buffers[0] ?? [])], [1, 2, 3])
  t.match(request.header.msg_id, new RegExp(`^${a.session}_${process.pid}_\\d+$`))
  t.same(splitIdents(frames).idents.map(String), ['engine'])
})

t.test('dates: microseconds out, every Python form in', async (t) => {
  t.match(isoNow(), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/)
  t.equal(formatIsoMicros(Date.UTC(2026, 10, 22, 7, 8, 45, 811) + 0.574), '2026-11-22T07:08:45.811574Z')
  const base = Date.UTC(2026, 10, 22, 7, 8, 45)
  t.equal(parseIsoDate('2026-11-22T07:08:45Z'), base)
  t.equal(parseIsoDate('2026-11-22T07:08:45.5'), base + 500)
  t.equal(parseIsoDate('2026-11-22T07:08:45.811574+00:00'), base + 811.574)
  t.equal(parseIsoDate('2026-11-22T09:08:45+0200'), base)
  t.equal(parseIsoDate('22 Nov 2026'), undefined)
  t.equal(new Date(parseIsoDate('0042-03-04T00:00:00Z') as number).getUTCFullYear(), 42, 'a two-digit year is not taken as 19xx')
  const before = Date.now()
  const now = parseIsoDate(isoNow()) as number
  t.ok(now >= before && now < Date.now() + 1, 'isoNow follows the wall clock, as new Date() does')
})
