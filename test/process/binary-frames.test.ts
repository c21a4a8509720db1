// What the README says of binary data: typed arrays and Buffers of 64 KiB (OUT_OF_BAND_BYTES) or more go as frames
// of their own; the client sends the array's own memory and hands back views of the frames it receives, the
// controller relays those frames without copying, and the engine copies each once into its executor thread and
// once out of it. Each step is checked just under, at and just over the boundary.
import { MessageChannel } from 'node:worker_threads'
import t from 'tap'
import { silentLogger } from '../../src/common/log.js'
import { Executor } from '../../src/engine/executor.js'
import { packFrames } from '../../src/engine/worker-protocol.js'
import { PackedFrames } from '../../src/protocol/frames.js'
import { decodeApply, decodeValue, encodeApply, encodeValue, OUT_OF_BAND_BYTES } from '../../src/protocol/payload.js'
import { Session } from '../../src/protocol/session.js'
import { bindPort, closeAll, createDealer, createRouter } from '../../src/transport/sockets.js'
import { startCluster } from '../helpers/cluster.js'

const BOUNDARY = OUT_OF_BAND_BYTES
const SIZES = [BOUNDARY - 8, BOUNDARY - 1, BOUNDARY, BOUNDARY + 1, BOUNDARY + 8]
const ECHO = { kind: 'global', path: 'Array.of' } as const

type Make = (bytes: number) => Buffer | Float64Array
const kinds: [string, Make, (bytes: number) => boolean][] = [
  ['Buffer', (bytes) => Buffer.alloc(bytes, 7), () => true],
  ['Float64Array', (bytes) => new Float64Array(bytes / 8).fill(0.5), (bytes) => bytes % 8 === 0],
]

t.test('client: out of band from 64 KiB, sent from the array\'s own memory, decoded as a view of the frame', async (t) => {
  for (const [name, make, fits] of kinds) {
    for (const bytes of SIZES.filter(fits)) {
      const value = make(bytes)
      const frames = encodeApply(ECHO, [value])
      const [arg] = decodeApply(frames).args as [Buffer | Float64Array]
      t.equal(arg.byteLength, bytes, `${name} of ${bytes} bytes comes back whole`)
      if (bytes < BOUNDARY) {
        t.equal(frames.length, 2, `${name} of ${bytes} bytes: inside the clone (descriptor, clone)`)
        t.notOk(frames.some((f) => f.buffer === value.buffer), 'no frame is the array\'s memory')
        continue
      }
      t.equal(frames.length, 3, `${name} of ${bytes} bytes: a frame of its own (descriptor, clone, data)`)
      const data = frames[2] as Buffer
      t.equal(data.byteLength, bytes)
      t.ok(data.buffer === value.buffer && data.byteOffset === value.byteOffset, 'the frame is the array\'s own memory, not a copy')
      t.ok(arg.buffer === data.buffer && arg.byteOffset === data.byteOffset, 'the decoded array is a view of the frame, not a copy')
    }
  }
})

t.test('controller: a message carrying an out-of-band frame keeps the very frames it received', async (t) => {
  const session = new Session({ key: 'k' })
  const value = Buffer.alloc(BOUNDARY, 1)
  const wire = session.serialize(session.msg('apply_request', {}, { buffers: encodeApply(ECHO, [value]) }))
  const views = new PackedFrames(wire).views()
  t.equal(views.length, wire.length)
  t.ok(views.every((v, i) => v === wire[i]), 'the frames relayed are the frames received')
  t.equal(views.at(-1)?.buffer, value.buffer, 'down to the client\'s own memory, in this process')
})

/** Posts `frames` as the engine does and says which of the senders' ArrayBuffers were moved (detached) rather than copied. */
async function post(frames: Buffer[], owned: (index: number) => boolean): Promise<{ moved: boolean[]; received: Uint8Array[] }> {
  const sizes = frames.map((f) => f.buffer.byteLength)
  const { views, transfer } = packFrames(frames, owned)
  const { port1, port2 } = new MessageChannel()
  const arrived = new Promise<Uint8Array[]>((resolve) => port2.once('message', (m: Uint8Array[]) => resolve(m)))
  port1.postMessage(views, transfer)
  const received = await arrived
  port1.close()
  return { moved: frames.map((f, i) => f.buffer.byteLength === 0 && sizes[i] !== 0), received }
}

t.test('engine: each frame is copied once on its way into the executor thread', async (t) => {
  for (const bytes of [BOUNDARY - 1, BOUNDARY, BOUNDARY + 1]) {
    const frames = encodeApply(ECHO, [Buffer.alloc(bytes, 3)])
    const { moved, received } = await post(frames, () => false)
    t.same(moved, frames.map(() => false), `${bytes} bytes: no received frame is taken from its owner`)
    t.same(received.map((r) => r.byteLength), frames.map((f) => f.byteLength), 'every frame arrives whole')
    t.equal(Buffer.from(received.at(-1) as Uint8Array).equals(frames.at(-1) as Buffer), true, 'with the same bytes')
  }
})

t.test('engine: the executor runs a task on copies, leaving the frames it was handed as they were', async (t) => {
  const executor = new Executor({ log: silentLogger, onStrayOutput: () => {} })
  t.teardown(() => executor.close())
  for (const bytes of [BOUNDARY - 1, BOUNDARY, BOUNDARY + 1]) {
    const frames = encodeApply({ kind: 'source', source: '(b) => b.byteLength', name: 'size' }, [Buffer.alloc(bytes, 2)])
    const lengths = frames.map((f) => f.byteLength)
    const outcome = await executor.run(frames, () => {})
    t.equal(outcome.status === 'ok' ? decodeValue(outcome.frames) : outcome, bytes, `${bytes} bytes reached the task`)
    t.same(frames.map((f) => f.byteLength), lengths, 'no frame was moved out from under the engine')
  }
})

t.test('engine: a result\'s clone moves back without a copy; its out-of-band data is copied once, the task keeping its own', async (t) => {
  for (const bytes of [BOUNDARY - 1, BOUNDARY, BOUNDARY + 1]) {
    const result = Buffer.from(new ArrayBuffer(bytes)).fill(9)
    const frames = encodeValue(result)
    t.equal(frames.length, bytes < BOUNDARY ? 1 : 2, `${bytes} bytes: ${bytes < BOUNDARY ? 'inside the clone' : 'a frame of its own'}`)
    const { moved, received } = await post(frames, (index) => index === 0)
    t.equal(moved[0], true, 'the clone (the serializer\'s own buffer) is moved, not copied')
    if (bytes >= BOUNDARY) {
      t.equal(moved[1], false, 'the out-of-band frame is copied: it is the task\'s memory')
      t.equal(result.byteLength, bytes, 'the task still has its data')
      t.equal(received[1]?.byteLength, bytes)
    }
  }
})

t.test('why the engine copies on the way in: a frame ZeroMQ hands over cannot be transferred, only cloned', async (t) => {
  const router = createRouter()
  const dealer = createDealer({ routingId: 'd' })
  t.teardown(() => closeAll([router, dealer]))
  const port = await bindPort(router, 'tcp://127.0.0.1')
  dealer.connect(`tcp://127.0.0.1:${port}`)
  await dealer.send([Buffer.alloc(BOUNDARY, 5)])
  const [, frame] = (await router.receive()) as [Buffer, Buffer]
  t.equal(frame.byteLength, BOUNDARY)
  const { port1, port2 } = new MessageChannel()
  const arrived = new Promise<ArrayBuffer>((resolve) => port2.once('message', (m: ArrayBuffer) => resolve(m)))
  port1.postMessage(frame.buffer, [frame.buffer as ArrayBuffer])
  const received = await arrived
  port1.close()
  t.equal(frame.byteLength, BOUNDARY, 'the frame is still there after the "transfer": postMessage cloned it')
  t.equal(received.byteLength, frame.buffer.byteLength, 'the other side got a copy')
})

t.test('through a controller and an engine: out of band from 64 KiB on the wire, both ways', async (t) => {
  const { client } = await startCluster(t, 1)
  const view = client.loadBalancedView()
  for (const bytes of [BOUNDARY - 1, BOUNDARY, BOUNDARY + 1]) {
    const ar = view.apply((b: Buffer) => b, Buffer.alloc(bytes, 4))
    const back = await ar
    t.ok(Buffer.isBuffer(back) && back.byteLength === bytes && back.every((x) => x === 4), `${bytes} bytes come back`)
    const [record] = await client.dbQuery({ msg_id: ar.msgIds[0] }, ['buffers', 'result_buffers'])
    const request = (record?.buffers ?? []).map((b) => b.byteLength)
    const reply = (record?.result_buffers ?? []).map((b) => b.byteLength)
    if (bytes < BOUNDARY) {
      t.equal(request.length, 2, `${bytes} bytes: the request is a descriptor and a clone`)
      t.equal(reply.length, 1, 'the reply is a clone')
    } else {
      t.same(request.slice(2), [bytes], `${bytes} bytes: the request carries them as a third frame`)
      t.same(reply.slice(1), [bytes], 'and so does the reply, as its second')
    }
  }
})
