import t, { type Test } from 'tap'
// Only to count the calls of close() on a real socket (zeromq.js's sockets are frozen; a subclass can count).
import { Dealer as ZmqDealer } from 'zeromq'
import type { Logger } from '../../src/common/log.js'
import { SocketGroup, type SocketGroupOptions } from '../../src/transport/socket-group.js'
import { bindPort, closeAll, createDealer, createRouter, type Dealer, type Frames, type Router } from '../../src/transport/sockets.js'

/** A ceiling for what should take milliseconds: generous, so that only a hang trips it. */
const CEILING_MS = 10_000

function within<T>(promise: Promise<T>, what: string, ms = CEILING_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)))
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer))
}

/** A logger that keeps its warnings and errors. */
function keeping(): { log: Logger; warnings: string[] } {
  const warnings: string[] = []
  const none = (): void => {}
  return { log: { debug: none, info: none, warn: (m) => warnings.push(m), error: (m) => warnings.push(`ERROR ${m}`) }, warnings }
}

function group(t: Test, options: Partial<SocketGroupOptions> = {}): SocketGroup {
  const g = new SocketGroup({ log: keeping().log, drainMs: 1000, ...options })
  t.teardown(() => g.close())
  return g
}

/** A ROUTER on a free loopback port, in `g` (which closes it) or else closed in teardown. */
async function boundRouter(t: Test, g?: SocketGroup, options: { mandatory?: boolean } = {}): Promise<{ router: Router; url: string }> {
  const router = g ? g.add('inbox', createRouter(options)) : createRouter(options)
  if (!g) t.teardown(() => closeAll([router]))
  return { router, url: `tcp://127.0.0.1:${await bindPort(router, 'tcp://127.0.0.1')}` }
}

/** A DEALER named `query` in `g`, connected to `url`. */
function connectedDealer(g: SocketGroup, url: string): Dealer {
  const dealer = g.add('query', createDealer())
  dealer.connect(url)
  return dealer
}

/** The message text of each message `router` receives, until `count` have come. */
async function receiveTexts(router: Router, count: number): Promise<string[]> {
  const texts: string[] = []
  while (texts.length < count) {
    const [, payload] = await router.receive()
    texts.push(payload?.toString() ?? '')
  }
  return texts
}

const text = (s: string): Frames => [Buffer.from(s)]

/** A receiving group whose ROUTER's handler fails on `throws` and `rejects` and resolves `reached` on `last`. */
async function failingInbox(t: Test, options: Partial<SocketGroupOptions> = {}): Promise<{ inbox: SocketGroup; url: string; warnings: string[]; reached: Promise<void> }> {
  const { log, warnings } = keeping()
  const inbox = group(t, { log, drainMs: 0, ...options })
  const { router, url } = await boundRouter(t, inbox)
  let reach: () => void = () => {}
  const reached = new Promise<void>((resolve) => (reach = resolve))
  inbox.receive(router, (frames) => {
    const payload = frames[1]?.toString()
    if (payload === 'throws') throw new Error('a bad one')
    if (payload === 'rejects') return Promise.reject(new Error('a bad async one'))
    if (payload === 'last') reach()
    return undefined
  })
  return { inbox, url, warnings, reached }
}

t.test('a handler that throws or rejects drops that message, counted, and the loop goes on', async (t) => {
  const { inbox, url, warnings, reached } = await failingInbox(t)
  const sender = group(t)
  const dealer = connectedDealer(sender, url)
  for (const s of ['throws', 'rejects', 'last']) void sender.send(dealer, text(s))
  await within(reached, 'the message after two that fail their handler')
  t.equal(inbox.droppedMessages, 2, 'both failures counted')
  t.same([...inbox.droppedByName], [['inbox', 2]], 'counted under the socket\'s name')
  t.same(warnings, ['inbox: dropped a message: a bad one', 'inbox: dropped a message: a bad async one'])
})

t.test('dropped messages are all counted, their warnings rate-limited per socket', async (t) => {
  const { inbox, url, warnings, reached } = await failingInbox(t)
  const sender = group(t)
  const dealer = connectedDealer(sender, url)
  for (let i = 0; i < 20; i++) void sender.send(dealer, text('throws'))
  void sender.send(dealer, text('last'))
  await within(reached, 'the message after 20 bad ones')
  t.equal(inbox.droppedMessages, 20)
  t.equal(warnings.length, 5, `5 of 20 warnings logged in the window: ${JSON.stringify(warnings)}`)
  await inbox.close()
  t.equal(warnings.at(-1), 'dropped 20 bad message(s) in all: inbox 20', 'close sums them up by socket')
})

t.test('with dropSummaryOnClose false, close logs no summary', async (t) => {
  const { inbox, url, warnings, reached } = await failingInbox(t, { dropSummaryOnClose: false })
  const sender = group(t)
  const dealer = connectedDealer(sender, url)
  for (const s of ['throws', 'last']) void sender.send(dealer, text(s))
  await within(reached, 'the message after a bad one')
  await inbox.close()
  t.same(warnings, ['inbox: dropped a message: a bad one'])
})

t.test('with shared drop warnings, one rate limit covers every socket of the group', async (t) => {
  const { log, warnings } = keeping()
  const inbox = group(t, { log, drainMs: 0, dropWarnings: 'shared' })
  const routers = [inbox.add('a', createRouter()), inbox.add('b', createRouter())]
  const sender = group(t)
  let seen = 0
  let reach: () => void = () => {}
  const reached = new Promise<void>((resolve) => (reach = resolve))
  for (const [i, router] of routers.entries()) {
    inbox.receive(router, () => {
      if (++seen === 20) reach()
      throw new Error('bad')
    })
    const dealer = sender.add(`to ${i}`, createDealer())
    dealer.connect(`tcp://127.0.0.1:${await bindPort(router, 'tcp://127.0.0.1')}`)
    for (let n = 0; n < 10; n++) void sender.send(dealer, text('x'))
  }
  await within(reached, '20 bad messages on two sockets')
  t.same([...inbox.droppedByName].sort(), [['a', 10], ['b', 10]])
  t.equal(warnings.length, 5, 'not 5 per socket')
})

t.test('close drains what is queued, then closes every socket once; later calls return the same promise', async (t) => {
  const { router, url } = await boundRouter(t)
  // A linger lets what ZeroMQ holds leave after close, so that the peer can show it all arrived.
  const sender = group(t, { lingerOnCloseMs: 2000 })
  let closes = 0
  class CountingDealer extends ZmqDealer {
    override close(): void {
      closes++
      super.close()
    }
  }
  const dealer = sender.add('query', new CountingDealer({ sendHighWaterMark: 0, linger: 0 }))
  dealer.connect(url)
  const sends = Array.from({ length: 200 }, (_, i) => sender.send(dealer, text(`m${i}`)))
  const closing = sender.close()
  t.equal(sender.close(), closing, 'a second close is the same close')
  await within(closing, 'close')
  const outcomes = await Promise.allSettled(sends)
  t.same(outcomes.filter((o) => o.status === 'rejected'), [], 'every queued message was handed to ZeroMQ before the socket closed')
  t.ok(dealer.closed, 'the socket is closed')
  await sender.close()
  t.equal(closes, 1, 'closed exactly once')
  t.same(await within(receiveTexts(router, 200), 'the peer receiving all 200'), Array.from({ length: 200 }, (_, i) => `m${i}`), 'in order')
})

t.test('the drain is bounded: a send that cannot leave does not hold close up, and is rejected', async (t) => {
  const sender = group(t, { drainMs: 100 })
  const dealer = sender.add('query', createDealer()) // connected to nothing: ZeroMQ takes no message
  const stuck = sender.send(dealer, text('never'))
  await within(sender.close(), 'close with a send that cannot leave')
  await t.rejects(stuck, { name: 'SocketClosedError', message: /queued on query was discarded/ })
})

t.test('sends after close reject with SocketClosedError; receive and add throw it', async (t) => {
  const sender = group(t)
  const dealer = sender.add('query', createDealer())
  const other = createDealer()
  await sender.close()
  await t.rejects(sender.send(dealer, text('late')), { name: 'SocketClosedError', message: 'cannot send on query: its socket is closed' })
  t.throws(() => sender.receive(dealer, () => {}), { name: 'SocketClosedError', message: /cannot receive on query/ })
  t.throws(() => sender.add('late', other), { name: 'SocketClosedError', message: /cannot add late/ })
  t.ok(other.closed, 'a socket added too late is closed, not leaked')
})

t.test('a send ZeroMQ refuses goes to the socket\'s handler and rejects; the queue goes on', async (t) => {
  const refused: string[] = []
  const sender = group(t)
  const router = sender.add('mandatory', createRouter({ mandatory: true }), (_error, frames) => refused.push(frames[0]?.toString() ?? ''))
  const url = `tcp://127.0.0.1:${await bindPort(router, 'tcp://127.0.0.1')}`
  const peers = group(t)
  const known = peers.add('known', createDealer({ routingId: 'known' }))
  known.connect(url)
  await known.send(text('hello'))
  await within(router.receive(), 'the known peer\'s hello') // now the ROUTER can route to it
  const toNobody = sender.send(router, [Buffer.from('nobody'), Buffer.from('x')])
  const toKnown = sender.send(router, [Buffer.from('known'), Buffer.from('after')])
  await t.rejects(toNobody, { code: 'EHOSTUNREACH' })
  t.same(refused, ['nobody'], 'the handler heard of it, with the frames')
  await within(toKnown, 'the next send')
  const [payload] = await within(known.receive(), 'the known peer receiving')
  t.equal(payload?.toString(), 'after')
})
