import t from 'tap'
import { splitCoalesced } from '../../src/client/coalesced.js'
import { parseRegistrationUrl } from '../../src/client/discover.js'
import type { Message } from '../../src/protocol/messages.js'
import { encodeValue } from '../../src/protocol/payload.js'

const header = { msg_id: 'r', msg_type: 'apply_reply', session: 's', username: 'u', date: '2026-01-01T00:00:03Z', version: '5.3' }
const parent = { ...header, msg_id: 'orig_B', msg_type: 'apply_request' }

t.test('a coalesced reply of our controller is cut into each engine\'s own reply, in target order', async (t) => {
  const a = encodeValue('from A')
  const c = encodeValue('from C')
  const msg: Message = {
    header, parent_header: parent, content: { status: 'error', ename: 'RangeError', evalue: 'B failed', traceback: [] },
    metadata: {
      is_broadcast: true, is_coalescing: true, original_msg_id: 'orig', status: 'error', broadcast_targets: [['C', 2], ['B', 1], ['A', 0]],
      broadcast_replies: [
        { content: { status: 'ok' }, metadata: { engine: 'C', started: '2026-01-01T00:00:01Z', status: 'ok' }, date: '2026-01-01T00:00:02Z', buffers: c.length },
        { content: { status: 'error', ename: 'RangeError', evalue: 'B failed', traceback: [] }, metadata: { engine: 'B', status: 'error' }, date: '2026-01-01T00:00:03Z', buffers: 0 },
        { content: { status: 'ok' }, metadata: { engine: 'A', status: 'ok' }, date: '2026-01-01T00:00:02Z', buffers: a.length },
      ],
    },
    buffers: [...c, ...a],
  }
  const parts = splitCoalesced(msg, 'orig', ['C', 'B', 'A'])
  t.same(parts.map((p) => p.parent_header.msg_id), ['orig_C', 'orig_B', 'orig_A'])
  t.same(parts.map((p) => p.metadata.engine), ['C', 'B', 'A'])
  t.same(parts.map((p) => p.content.status), ['ok', 'error', 'ok'])
  t.same(parts.map((p) => p.buffers), [c, [], a])
  t.equal(parts[0]?.header.date, '2026-01-01T00:00:02Z', 'each part has its engine\'s completion date')
})

t.test('ipyparallel\'s coalesced reply (no per-engine list) is cut value by value in its own target order', async (t) => {
  const a = encodeValue(1)
  const b = encodeValue(2)
  const msg: Message = {
    header, parent_header: parent, content: { status: 'ok' },
    metadata: { is_broadcast: true, is_coalescing: true, original_msg_id: 'orig', broadcast_targets: [['A', 0], ['B', 1]] },
    buffers: [...a, ...b],
  }
  const parts = splitCoalesced(msg, 'orig', ['B', 'A'])
  t.same(parts.map((p) => [p.parent_header.msg_id, p.buffers]), [['orig_B', b], ['orig_A', a]])
})

t.test('a registration URL must be tcp://host:port', async (t) => {
  t.same(parseRegistrationUrl('tcp://127.0.0.1:5555'), { host: '127.0.0.1', port: 5555 })
  t.same(parseRegistrationUrl('tcp://[::1]:5555'), { host: '[::1]', port: 5555 })
  for (const bad of ['127.0.0.1:5555', 'tcp://host', 'tcp://host:0', 'tcp://host:70000', 'ipc:///tmp/x', 5555]) {
    t.throws(() => parseRegistrationUrl(bad), { name: 'ConfigError', message: /url must be the controller's registration address/ }, String(bad))
  }
})
