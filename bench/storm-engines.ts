/**
 * Simulated engines for the registration storm: protocol-level only (no shell, no tasks).
 *
 *   node dist/bench/storm-engines.js <engine connection file> <count>
 *
 * Each engine has its own DEALER (routing id = its uuid) on the registration channel and, once registered, its
 * own DEALER on hb_pong; one SUB per process receives the pings, and every registered engine echoes each ping,
 * as ipengine's heart does. Prints `connected` when its sockets are up, sends every registration_request at once
 * on SIGUSR1, and prints `replies <n> ok <k> last <epoch ms>` when every reply has come (`refused ...` lines for
 * errors). It answers heartbeats until SIGTERM.
 */
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import * as zmq from 'zeromq'
import { Session } from '../src/protocol/session.js'
import { Outbox } from '../src/transport/sockets.js'

const [file, countText] = process.argv.slice(2)
if (!file || !countText) {
  console.error('usage: storm-engines.js <engine connection file> <count>')
  process.exit(2)
}
const info = JSON.parse(readFileSync(file, 'utf8')) as { key: string; interface: string; registration: number; hb_ping: number; hb_pong: number }
const url = (port: number): string => `${info.interface}:${port}`
const count = Number(countText)
zmq.context.maxSockets = Math.max(zmq.context.maxSockets, 2 * count + 64)
const options = { sendHighWaterMark: 0, receiveHighWaterMark: 0, linger: 0 }

interface SimEngine {
  uuid: string
  session: Session
  registrar: zmq.Dealer
  pong?: Outbox
}

const engines: SimEngine[] = Array.from({ length: count }, () => {
  const uuid = randomUUID()
  const registrar = new zmq.Dealer({ ...options, routingId: uuid })
  registrar.connect(url(info.registration))
  return { uuid, session: new Session({ key: info.key, session: uuid }), registrar }
})
const hearts: Outbox[] = []
const ping = new zmq.Subscriber({ receiveHighWaterMark: 0, linger: 0 })
ping.subscribe()
ping.connect(url(info.hb_ping))
void (async () => {
  for await (const frames of ping) for (const heart of hearts) heart.send(frames)
})()

let replies = 0
let ok = 0
let last = 0

async function register(engine: SimEngine): Promise<void> {
  const { session, registrar, uuid } = engine
  await registrar.send(session.serialize(session.msg('registration_request', { uuid }, { metadata: { engine: uuid } })))
  const { msg } = session.deserialize(await registrar.receive())
  replies++
  last = performance.timeOrigin + performance.now()
  const content = msg.content as { status?: unknown; ename?: unknown; evalue?: unknown }
  if (content.status !== 'ok') {
    console.log(`refused ${uuid}: ${String(content.ename)}: ${String(content.evalue)}`)
    return
  }
  ok++
  // As ipengine: the heart connects once registration has been answered.
  const pong = new zmq.Dealer({ ...options, routingId: uuid })
  pong.connect(url(info.hb_pong))
  engine.pong = new Outbox(pong, () => {})
  hearts.push(engine.pong)
}

process.on('SIGUSR1', () => {
  Promise.all(engines.map(register)).then(
    () => console.log(`replies ${replies} ok ${ok} last ${last.toFixed(1)}`),
    (e: unknown) => console.log(`failed ${String(e)}`),
  )
})
process.on('SIGTERM', () => process.exit(0))
console.log('connected')
