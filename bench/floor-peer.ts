/**
 * The floor's broker and worker, each a process of its own (the client is the suite's own process):
 *
 *   node dist/bench/floor-peer.js broker   binds a client-facing ROUTER and a worker-facing ROUTER on free
 *                                          loopback ports, prints `ports <front> <back>`, and forwards each
 *                                          message in JavaScript, swapping identities as our controller does;
 *   node dist/bench/floor-peer.js worker <back port>
 *                                          a DEALER with routing id `worker` that echoes every message.
 *
 * The broker prints `ready` once the worker has said hello, so nothing is sent to a peer not yet connected.
 * Raw zeromq only: no signing, no JSON, no scheduling. That is what "the floor" means.
 */
import * as zmq from 'zeromq'

const options = { sendHighWaterMark: 0, receiveHighWaterMark: 0, linger: 0 }
const WORKER = Buffer.from('worker')

async function portOf(socket: zmq.Router): Promise<number> {
  await socket.bind('tcp://127.0.0.1:*')
  const endpoint = socket.lastEndpoint ?? ''
  return Number(endpoint.slice(endpoint.lastIndexOf(':') + 1))
}

async function broker(): Promise<void> {
  const front = new zmq.Router(options)
  const back = new zmq.Router({ ...options, mandatory: true })
  console.log(`ports ${await portOf(front)} ${await portOf(back)}`)
  const fromClients = async (): Promise<void> => {
    for await (const [client, ...rest] of front) {
      if (client) await back.send([WORKER, client, ...rest])
    }
  }
  const fromWorker = async (): Promise<void> => {
    for await (const frames of back) {
      if (frames.length === 2) {
        console.log('ready') // the worker's hello: [worker, 'hello']
        continue
      }
      const [, client, ...rest] = frames
      if (client) await front.send([client, ...rest])
    }
  }
  await Promise.all([fromClients(), fromWorker()])
}

async function worker(port: number): Promise<void> {
  const socket = new zmq.Dealer({ ...options, routingId: WORKER.toString() })
  socket.connect(`tcp://127.0.0.1:${port}`)
  await socket.send('hello')
  for await (const frames of socket) await socket.send(frames)
}

const [role, port] = process.argv.slice(2)
process.on('SIGTERM', () => process.exit(0))
if (role === 'broker') await broker()
else if (role === 'worker' && port) await worker(Number(port))
else {
  console.error('usage: floor-peer.js broker | worker <port>')
  process.exit(2)
}
