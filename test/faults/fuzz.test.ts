/**
 * Fuzzing (issue 7, item 6): seeded bad messages of every kind to every socket the controller binds, and down
 * every channel of an engine, interleaved with valid traffic whose results are checked. Nothing may crash or
 * wedge, every message that cannot verify or parse is dropped and counted, the log stays rate limited, and the
 * controller's memory stays flat (its V8 heap after a full collection at any size, its RSS too from 50,000 messages
 * per socket). `JSPARALLEL_FUZZ_MESSAGES` sets the messages per socket (default 3000; `npm run fuzz` sends 100,000);
 * `JSPARALLEL_FUZZ_SEED` replays a run.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { Client } from '../../src/index.js'
import { silentLogger } from '../../src/common/log.js'
import { newSessionId } from '../../src/common/ids.js'
import type { ClientConnectionInfo, EngineConnectionInfo } from '../../src/protocol/connection-file.js'
import { DELIMITER } from '../../src/protocol/messages.js'
import { decodeValue, encodeApply } from '../../src/protocol/payload.js'
import { Session } from '../../src/protocol/session.js'
import { closeAll, createDealer, createPublisher, createSubscriber, type AnySocket, type Dealer, type Frames, type Publisher } from '../../src/transport/sockets.js'
import { EngineHarness, type EngineChannel } from '../helpers/engine-harness.js'
import { DROPPED_KINDS, Garbage, peek } from '../helpers/garbage.js'
import { seededRandom } from '../helpers/random.js'
import { binPath, rssKiB, startEngine, startProcess, tempDir, waitFor, type Proc, type Teardown } from '../helpers/processes.js'

const MESSAGES = positiveInt(process.env.JSPARALLEL_FUZZ_MESSAGES, 3000)
const SEED = positiveInt(process.env.JSPARALLEL_FUZZ_SEED, 20_240_607)
/** Every this many rounds (one message to each socket), each channel that can answer is made to answer: pacing. */
const SYNC_EVERY = 100
/** Every this many rounds, each fuzzing socket is replaced by one with a fresh random routing id. */
const ROTATE_EVERY = 500
/** Below this many messages per socket RSS (which follows the allocator) is reported, not judged; the heap is. */
const RSS_JUDGED_FROM = 50_000
/**
 * Memory is first measured after a quarter of the rounds, once the caches bounded by design are full, so that what
 * grows after is a leak: FILL_TASKS no-op tasks then fill the controller's task records to their limit (1,024
 * finished) and, with the signatures the flood brought before, its replay window. In a full run that window keeps its
 * default of 65,536, which the first quarter fills; in a shorter one it is made DIGESTS long, still longer than the
 * signatures that come between a captured message and its replay (a replay from outside the window is a new message,
 * and a task if sent to the task channel).
 */
const WARM_UP_ROUNDS = Math.max(200, Math.floor(MESSAGES / 4))
const DIGESTS = MESSAGES >= RSS_JUDGED_FROM ? 65_536 : 16_384
/** Each task brings the controller about 4 signatures: its request, its reply and the engine's two status messages. */
const FILL_TASKS = 4000
/**
 * The controller's heap after a full collection may grow by this fraction and these MiB from warm-up to the end. What it
 * may still add by design: ids of culled records (65,536 at most, ~100 bytes each, one per task finished after the
 * warm-up) and V8's own slack; at 3,000 messages per socket it grew 14.9 -> 16.6 MiB (bound 18.4). One small object
 * kept per dropped message (an object and a 60-character string, added on purpose to try this bound) made it
 * 16.6 -> 24.4 MiB against a bound of 20.3: a leak of that size per bad message fails at the CI size.
 */
const HEAP_GROWTH = { fraction: 0.1, mib: 2 }
const SYNC_CEILING_MS = 60_000

function positiveInt(value: string | undefined, fallback: number): number {
  const n = Number(value)
  return value !== undefined && Number.isInteger(n) && n > 0 ? n : fallback
}

const DROPPED = DROPPED_KINDS.filter((k) => k !== 'oversized')

/** Which kind of message to send next: mostly ones that must be dropped, a quarter signed nonsense, rarely a huge one. */
function nextKind(g: Garbage): (typeof DROPPED_KINDS)[number] | 'signed' {
  const r = g.random()
  if (r < 0.002) return 'oversized'
  if (r < 0.25) return 'signed'
  return g.pick(DROPPED)
}

/** Odd JSON values for fields a handler reads. */
function odd(g: Garbage): unknown {
  return g.pick<() => unknown>([
    () => null, () => 0, () => -1, () => 1e308, () => 'x', () => '', () => [], () => [null], () => [1, 'a'], () => ({}), () => ({ $gt: 1 }),
    () => ({ dependencies: 5 }), () => true, () => [[`fz-${g.hex(4)}`, 0]], () => 'a'.repeat(1000), () => [g.hex(8)], () => ({ dependencies: [g.hex(8)], all: 'no' }),
  ])()
}

/** A few frames of random bytes, or a function descriptor that is not one, as an apply_request's buffers. */
function oddBuffers(g: Garbage): Buffer[] {
  return g.pick<() => Buffer[]>([
    () => [],
    () => Array.from({ length: 1 + g.int(3) }, () => g.bytes(g.int(100))),
    () => [Buffer.from(JSON.stringify({ kind: 'source', source: g.hex(10), name: 'f' })), g.bytes(10)],
    () => [Buffer.from(JSON.stringify({ kind: g.hex(4) }))],
    () => encodeApply({ kind: 'module', module: `./no-such-${g.hex(4)}.js`, export: 'f' }, []),
  ])()
}

/** Our controller under --expose-gc, so that its status line (SIGUSR2) reports the heap after a full collection. */
async function startGcController(t: Teardown): Promise<{ proc: Proc; profileDir: string; clientFile: string; engineFile: string }> {
  const profileDir = join(tempDir(t), 'profile_fuzz')
  const proc = startProcess(t, process.execPath, ['--expose-gc', binPath('controller'), '--profile-dir', profileDir, '--ping=250', '--log-level=warn', `--digest-history-size=${DIGESTS}`])
  const clientFile = join(profileDir, 'security', 'ipcontroller-client.json')
  const engineFile = join(profileDir, 'security', 'ipcontroller-engine.json')
  await waitFor(() => (existsSync(clientFile) && existsSync(engineFile)) || proc.child.exitCode !== null, 'the controller connection files')
  if (proc.child.exitCode !== null) throw new Error(`controller exited: ${proc.output()}`)
  return { proc, profileDir, clientFile, engineFile }
}

/** The controller's V8 heap in MiB after a full collection, from the status line SIGUSR2 makes it print. */
async function heapAfterCollection(proc: Proc): Promise<number> {
  const before = proc.output().length
  proc.child.kill('SIGUSR2')
  await waitFor(() => /status: .*\n/.test(proc.output().slice(before)), 'the controller status line')
  const m = /heap used ([\d.]+) MiB after a full collection/.exec(proc.output().slice(before))
  if (!m) throw new Error(`no heap figure after a full collection in ${proc.output().slice(before)}`)
  return Number(m[1])
}

interface Sync {
  frames: Frames
  /** The msg_id (header or parent) whose arrival shows the channel caught up. */
  awaited: string
  /** Which fuzzing socket sends it (default: the target's own). */
  via?: Target
}

interface Target {
  /** The controller's name for the channel (its receive loop), as its drop summary reports it. */
  channel: string
  url: string
  pub: boolean
  socket: Dealer | Publisher
  routingId: string
  /** Frames the channel routes by, put before a signed message. */
  prefix(): Buffer[]
  /** A signed, well-formed message of an unknown type or with nonsense content. */
  signed(): Frames
  sync?(): Sync
  sent: number
  /** Of `sent`, how many cannot verify or parse: the controller must count at least these. */
  mustDrop: number
}

t.test('controller: 2 engines and a client work on while every bound socket gets bad messages', async (t) => {
  const started = Date.now()
  const controller = await startGcController(t)
  const engines = [startEngine(t, controller.profileDir), startEngine(t, controller.profileDir)]
  const client = new Client({ profileDir: controller.profileDir, log: silentLogger })
  t.teardown(() => client.close())
  await client.waitForEngines(2, { timeoutMs: 60_000 })
  const clientInfo = JSON.parse(readFileSync(controller.clientFile, 'utf8')) as ClientConnectionInfo
  const engineInfo = JSON.parse(readFileSync(controller.engineFile, 'utf8')) as EngineConnectionInfo
  const engineUuids = await engineUuidsOf(client)
  const g = new Garbage(seededRandom(SEED), new Session({ key: clientInfo.key }))
  const url = (port: number): string => `${clientInfo.interface}:${port}`

  // Replies, forwarded messages and IOPub, matched by the msg_id (header or parent) a sync waits for.
  const waiters = new Map<string, () => void>()
  const arrived = (frames: Frames): void => {
    const p = peek(frames)
    if (!p) return
    for (const id of [p.header.msg_id, p.parent.msg_id]) {
      const w = typeof id === 'string' ? waiters.get(id) : undefined
      if (w && typeof id === 'string') {
        waiters.delete(id)
        w()
      }
    }
  }
  const open: AnySocket[] = []
  t.teardown(() => closeAll(open))
  const drain = (socket: Dealer): void => {
    void (async () => {
      try {
        for await (const frames of socket) arrived(frames)
      } catch {
        // closed
      }
    })()
  }
  // Engine traffic on IOPub, verified by the controller before it is republished: what replays resend.
  const iopub = createSubscriber()
  open.push(iopub)
  iopub.connect(url(clientInfo.iopub))
  void (async () => {
    try {
      for await (const frames of iopub) {
        const p = peek(frames)
        if (p) g.capture(frames.slice(p.at))
        arrived(frames)
      }
    } catch {
      // closed
    }
  })()

  const signedMsg = (type: string, content: object, metadata: object = {}, parent: object = {}, buffers: Buffer[] = []): { frames: Frames; id: string } => {
    const header = g.header(type)
    return { frames: g.signedMessage(header, content, metadata, parent, buffers), id: header.msg_id as string }
  }
  const anEngine = (): Buffer => Buffer.from(g.int(2) === 0 && engineUuids.length > 0 ? g.pick(engineUuids) : `no-engine-${g.hex(8)}`)
  const randomReply = (): Frames => signedMsg(`${g.hex(5)}_reply`, { status: g.pick(['ok', 'error', 'aborted', odd(g)]) }, { status: odd(g), dependencies_met: odd(g) }, { msg_id: g.pick([g.hex(12), '', 'x']) }, oddBuffers(g)).frames
  const targets: Target[] = []
  const target = (channel: string, port: number, spec: Pick<Target, 'prefix' | 'signed'> & { sync?: Target['sync']; pub?: boolean }): Target => {
    const tg: Target = { channel, url: url(port), pub: spec.pub === true, socket: undefined as unknown as Dealer, routingId: '', prefix: spec.prefix, signed: spec.signed, sync: spec.sync, sent: 0, mustDrop: 0 }
    targets.push(tg)
    return tg
  }
  const none = (): Buffer[] => []
  target('registration', clientInfo.registration, {
    prefix: none,
    signed: () => g.int(2) === 0
      ? signedMsg(`fuzz_${g.hex(6)}`, { x: odd(g) }).frames
      : signedMsg(g.pick(['queue_request', 'result_request', 'db_request', 'history_request', 'connection_request', 'resubmit_request', 'become_dask_request', 'registration_request']),
        { targets: odd(g), msg_ids: odd(g), query: odd(g), keys: odd(g), uuid: g.pick([null, 5, [], {}]), id: odd(g), verbose: odd(g) }).frames,
    sync: () => {
      const m = signedMsg('connection_request', {})
      return { frames: m.frames, awaited: m.id }
    },
  })
  const muxClient = target('mux', clientInfo.mux, {
    prefix: () => [anEngine()],
    signed: () => [anEngine(), ...(g.int(2) === 0
      ? signedMsg(`fuzz_${g.hex(6)}`, { x: odd(g) }).frames
      : signedMsg(g.pick(['apply_request', 'execute_request']), { code: odd(g), silent: odd(g) }, { x: odd(g) }, {}, oddBuffers(g)).frames)],
    sync: () => {
      const m = signedMsg('fuzz_sync', {})
      return { frames: [Buffer.from(`no-engine-${g.hex(8)}`), ...m.frames], awaited: m.id }
    },
  })
  const controlClient = target('control', clientInfo.control, {
    prefix: () => [anEngine()],
    signed: () => [anEngine(), ...(g.int(2) === 0 ? signedMsg(`fuzz_${g.hex(6)}`, { x: odd(g) }).frames : signedMsg('abort_request', { msg_ids: [g.hex(12)] }).frames)],
    sync: () => {
      const m = signedMsg('fuzz_sync', {})
      return { frames: [Buffer.from(`no-engine-${g.hex(8)}`), ...m.frames], awaited: m.id }
    },
  })
  target('task', clientInfo.task, {
    prefix: none,
    // Always for JavaScript engines, and fewer retries than engines: a task for a language no engine speaks, or one that
    // failed on every engine with retries left, waits for a new engine to join (as in ipyparallel), by design.
    signed: () => g.int(3) === 0
      ? signedMsg(`fuzz_${g.hex(6)}`, {}, { language: 'javascript' }, {}, oddBuffers(g)).frames
      : signedMsg('apply_request', {}, {
        after: odd(g), follow: odd(g), targets: odd(g), retries: g.pick([0, 1, -1, 'x', null]), timeout: g.pick([0.001, -1, 'x', null, 1e308, 5]), priority: odd(g), language: 'javascript',
      }, {}, oddBuffers(g)).frames,
    sync: () => {
      const m = signedMsg('apply_request', {}, { after: 5, language: 'javascript' })
      return { frames: m.frames, awaited: m.id }
    },
  })
  target('broadcast', clientInfo.broadcast, {
    prefix: none,
    signed: () => signedMsg(g.pick(['apply_request', `fuzz_${g.hex(6)}`]), {}, {
      targets: g.pick([odd(g), [], [[`no-engine-${g.hex(8)}`, 1]], engineUuids.map((u, i) => [u, i])]), is_coalescing: g.pick([true, false, odd(g)]), original_msg_id: g.pick([odd(g), g.hex(12)]),
    }, {}, oddBuffers(g)).frames,
    sync: () => {
      const m = signedMsg('fuzz_sync', {}, { targets: [['no-engine-sync', 0]], is_coalescing: false })
      return { frames: m.frames, awaited: `${m.id}_no-engine-sync` }
    },
  })
  // Engine-facing sockets: the fuzzer poses as an engine. A reply relayed to the fuzzer's own client-side socket is its sync.
  const relayedTo = (clientSide: Target) => (): Sync => {
    const m = signedMsg('fuzz_sync_reply', {}, {}, { msg_id: g.hex(12) })
    return { frames: [Buffer.from(clientSide.routingId), ...m.frames], awaited: m.id }
  }
  target('mux (engines)', engineInfo.mux, { prefix: () => [Buffer.from(g.routingId())], signed: () => [...g.randomIdents(), ...randomReply()], sync: relayedTo(muxClient) })
  target('control (engines)', engineInfo.control, { prefix: () => [Buffer.from(g.routingId())], signed: () => [...g.randomIdents(), ...randomReply()], sync: relayedTo(controlClient) })
  target('task (engines)', engineInfo.task, { prefix: none, signed: () => [...g.randomIdents(), ...randomReply()] })
  target('broadcast (engines)', engineInfo.broadcast[0] as number, { prefix: none, signed: () => [...g.randomIdents(), ...randomReply()] })
  target('iopub', engineInfo.iopub, {
    pub: true,
    prefix: () => [Buffer.from(`engine.${g.int(3)}.${g.pick(['status', 'stream', 'fuzz'])}`)],
    signed: () => [Buffer.from(`engine.${g.int(3)}.fuzz`), ...signedMsg(`fuzz_${g.hex(6)}`, { x: odd(g) }, { x: odd(g) }, g.pick([{}, { msg_id: g.hex(12) }])).frames],
    sync: () => {
      const m = signedMsg('fuzz_sync', {})
      return { frames: [Buffer.from('engine.fuzz.sync'), ...m.frames], awaited: m.id }
    },
  })
  const heartbeat = target('heartbeat', engineInfo.hb_pong, { prefix: none, signed: () => Array.from({ length: 1 + g.int(3) }, () => g.bytes(g.int(40))) })
  // Not fuzzed: notification, IOPub (client side) and hb_ping are PUB sockets, which cannot receive anything.

  const connect = (tg: Target): void => {
    if (tg.pub) {
      const pub = createPublisher()
      pub.connect(tg.url)
      tg.socket = pub
    } else {
      tg.routingId = g.routingId()
      const dealer = createDealer({ routingId: tg.routingId })
      dealer.connect(tg.url)
      drain(dealer)
      tg.socket = dealer
    }
    open.push(tg.socket)
  }
  const retire = (tg: Target): void => {
    // What is still queued leaves before the socket goes (the controller is alive and reading).
    tg.socket.linger = 10_000
    tg.socket.close()
    open.splice(open.indexOf(tg.socket), 1)
  }
  for (const tg of targets) connect(tg)

  const syncOne = async (tg: Target, deadline: number): Promise<void> => {
    if (!tg.sync) return
    // A PUB drops what it sends before the SUB's subscription arrives: repeat until one gets through.
    for (;;) {
      const sync = tg.sync()
      const seen = new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => {
          waiters.delete(sync.awaited)
          resolve(false)
        }, tg.pub ? 500 : Math.max(0, deadline - Date.now()))
        waiters.set(sync.awaited, () => {
          clearTimeout(timer)
          resolve(true)
        })
      })
      await tg.socket.send(sync.frames)
      if (await seen) return
      if (Date.now() > deadline) throw new Error(`the ${tg.channel} channel did not answer within ${SYNC_CEILING_MS} ms`)
    }
  }
  const syncAll = async (): Promise<void> => {
    const deadline = Date.now() + SYNC_CEILING_MS
    await Promise.all(targets.map((tg) => syncOne(tg, deadline)))
  }
  await syncAll()

  // Valid traffic all along: load-balanced maps and direct applies whose results are checked.
  let fuzzing = true
  let validRounds = 0
  let validResults = 0
  const wrong: string[] = []
  const valid = (async () => {
    const view = client.loadBalancedView()
    while (fuzzing) {
      const xs = Array.from({ length: 16 }, (_, i) => validRounds * 16 + i)
      const squares: unknown = await view.map((x: number) => x * x, xs)
      if (JSON.stringify(squares) !== JSON.stringify(xs.map((x) => x * x))) wrong.push(`map round ${validRounds}: ${JSON.stringify(squares)}`)
      const both: unknown = await client.directView().apply((n: number) => n + 1, validRounds)
      if (JSON.stringify(both) !== JSON.stringify([validRounds + 1, validRounds + 1])) wrong.push(`direct round ${validRounds}: ${JSON.stringify(both)}`)
      validResults += xs.length + 2
      validRounds++
    }
  })()
  t.teardown(() => {
    fuzzing = false
  })

  let rssWarm = 0
  let heapWarm = 0
  const sentTasks = new Map<string, string>()
  const fuzzStart = Date.now()
  for (let round = 0; round < MESSAGES; round++) {
    for (const tg of targets) {
      const kind = nextKind(g)
      const frames = kind === 'signed' ? tg.signed() : g.make(kind, tg.prefix())
      if (process.env.JSPARALLEL_FUZZ_DEBUG && kind === 'signed' && tg.channel === 'task') {
        const p = peek(frames)
        if (p) sentTasks.set(String(p.header.msg_id), frames.slice(p.at + 6).map((f) => f.toString('hex').slice(0, 400)).join(' | '))
      }
      await tg.socket.send(frames)
      tg.sent++
      if (tg === heartbeat ? frames.length !== 1 : kind !== 'signed') tg.mustDrop++
    }
    if ((round + 1) % SYNC_EVERY === 0) await syncAll()
    if ((round + 1) % ROTATE_EVERY === 0) {
      for (const tg of targets) {
        if (tg.pub) continue
        retire(tg)
        connect(tg)
      }
      await syncAll()
    }
    if (round + 1 === WARM_UP_ROUNDS) {
      const filled = await client.loadBalancedView().map((x: number) => x, Array.from({ length: FILL_TASKS }, (_, i) => i), { chunksize: 1 })
      if (filled.length !== FILL_TASKS) throw new Error(`the fill tasks returned ${filled.length} results`)
      await syncAll()
      rssWarm = rssKiB(controller.proc.pid)
      heapWarm = await heapAfterCollection(controller.proc)
    }
    for (const [i, p] of [controller.proc, ...engines].entries()) {
      if (p.child.exitCode !== null || p.child.signalCode !== null) throw new Error(`${i === 0 ? 'the controller' : `engine ${i}`} died at round ${round}:\n${p.output()}`)
    }
  }
  await syncAll()
  const rssAfter = rssKiB(controller.proc.pid)
  const heapAfter = await heapAfterCollection(controller.proc)
  const fuzzMs = Date.now() - fuzzStart
  fuzzing = false
  await valid

  t.same(wrong, [], 'every valid result was right')
  t.ok(validRounds > 0, `valid traffic ran alongside: ${validRounds} rounds, ${validResults} results`)
  for (const [name, p] of [['controller', controller.proc], ['engine 0', engines[0]], ['engine 1', engines[1]]] as const) {
    t.equal(p?.child.exitCode, null, `${name} is still running`)
  }
  t.equal(await client.loadBalancedView().apply((a: number, b: number) => a * b, 6, 7), 42, 'a fresh load-balanced apply after the flood')
  t.same(await client.directView().apply(() => 'still here'), ['still here', 'still here'], 'a fresh direct apply on each engine')
  // Every task the fuzzer got accepted has ended: nothing waits unassigned or on an engine.
  let lastQueue: unknown
  const idle = await waitFor(async () => {
    const q = await client.queueStatus()
    lastQueue = q
    const busy = Object.entries(q).filter(([k, v]) => /^\d+$/.test(k) && typeof v === 'object' && v !== null && ((v as { queue: number }).queue > 0 || (v as { tasks: number }).tasks > 0))
    return q.unassigned === 0 && busy.length === 0 ? q : undefined
  }, 'no task left queued after the flood', 60_000).catch(async (e: unknown) => {
    t.comment(`queue status: ${JSON.stringify(lastQueue)}`)
    const pending = await client.dbQuery({ completed: null }, ['msg_id', 'header', 'metadata', 'engine_uuid', 'queue'])
    t.comment(`unfinished records: ${JSON.stringify(pending)}`)
    for (const r of pending) t.comment(`buffers of ${r.msg_id}: ${sentTasks.get(String(r.msg_id))}`)
    throw e
  })
  t.ok(idle, 'no accepted task is left hanging')

  const sent = targets.reduce((n, tg) => n + tg.sent, 0)
  const mustDrop = targets.reduce((n, tg) => n + tg.mustDrop, 0)
  await controller.proc.stop('SIGTERM', 15_000)
  const out = controller.proc.output()
  const summary = /dropped (\d+) bad message\(s\) in all: (.*)/.exec(out)
  t.ok(summary, 'the controller logs how many messages it dropped')
  const byChannel = new Map((summary?.[2] ?? '').split(', ').map((part) => {
    const at = part.lastIndexOf(' ')
    return [part.slice(0, at), Number(part.slice(at + 1))] as const
  }))
  for (const tg of targets) {
    t.ok((byChannel.get(tg.channel) ?? 0) >= tg.mustDrop, `${tg.channel}: ${byChannel.get(tg.channel) ?? 0} dropped >= ${tg.mustDrop} that cannot verify or parse (of ${tg.sent} sent)`)
  }
  const dropped = Number(summary?.[1] ?? 0)
  t.ok(dropped <= sent + 1000, `no more drops (${dropped}) than messages sent (${sent}) give or take the syncs`)
  const warnings = out.split('\n').filter((l) => / WARN /.test(l)).length
  if (process.env.JSPARALLEL_FUZZ_SHOW_LOG) t.comment(out)
  const windows = Math.ceil((Date.now() - started) / 10_000) + 1
  t.ok(warnings <= targets.length * 6 * windows + 20, `the log is rate limited: ${warnings} warning lines for ${sent} messages`)
  const growth = (rssAfter - rssWarm) / rssWarm
  const rss = `controller RSS ${rssWarm} KiB after warm-up, ${rssAfter} KiB after the flood (${(growth * 100).toFixed(1)}%)`
  if (MESSAGES >= RSS_JUDGED_FROM) t.ok(growth < 0.1, rss)
  else t.comment(`${rss}; judged only from ${RSS_JUDGED_FROM} messages per socket`)
  const heapBound = heapWarm * (1 + HEAP_GROWTH.fraction) + HEAP_GROWTH.mib
  t.ok(heapAfter <= heapBound, `controller heap after a full collection: ${heapWarm.toFixed(1)} MiB after warm-up, ${heapAfter.toFixed(1)} MiB after the flood (bound ${heapBound.toFixed(1)})`)
  t.comment(`fuzz: ${MESSAGES} messages per socket to ${targets.length} sockets (seed ${SEED}) in ${(fuzzMs / 1000).toFixed(1)} s; ` +
    `${sent} sent, ${mustDrop} must be dropped, ${dropped} dropped; RSS ${rssWarm} -> ${rssAfter} KiB; heap ${heapWarm.toFixed(1)} -> ${heapAfter.toFixed(1)} MiB; ${warnings} warning lines; ${validResults} valid results`)
})

/** The engines' uuids, from the metadata of one direct apply on each. */
async function engineUuidsOf(client: Client): Promise<string[]> {
  const ar = client.directView().apply(() => 0)
  await ar
  return (ar.metadata as unknown as { engineUuid: string }[]).map((m) => m.engineUuid)
}

t.test('engine: garbage down its shell, control and heartbeat channels, between real tasks', async (t) => {
  const dir = tempDir(t)
  const harness = await EngineHarness.start(t, dir)
  const uuid = newSessionId()
  const engine = startEngine(t, dir, ['--file', harness.file, '--uuid', uuid])
  await waitFor(() => harness.registered || engine.child.exitCode !== null, 'the engine to register', 30_000)
  const g = new Garbage(seededRandom(SEED + 1), harness.session)
  let apply = 0
  const signedMsg = (type: string, content: object, metadata: object = {}, buffers: Buffer[] = []): { frames: Frames; id: string } => {
    const header = g.header(type)
    return { frames: g.signedMessage(header, content, metadata, {}, buffers), id: header.msg_id as string }
  }
  /** A real task: the engine must answer it right, whatever came before. */
  const task = async (channel: EngineChannel): Promise<void> => {
    const n = apply++
    const m = signedMsg('apply_request', {}, {}, encodeApply({ kind: 'source', source: '(x) => x * 2', name: 'double' }, [n]))
    // The mandatory ROUTER refuses a peer it has not met yet: the first sends are repeated until one is taken.
    const { reply } = await harness.request(channel, uuid, m.frames, m.id)
    g.capture(m.frames)
    const frames = await reply
    const at = frames.findIndex((f) => f.equals(DELIMITER))
    const content = JSON.parse((frames[at + 5] as Buffer).toString()) as { status: string }
    if (content.status !== 'ok' || decodeValue(frames.slice(at + 6)) !== n * 2) throw new Error(`task ${n} on ${channel}: ${JSON.stringify(content)}`)
  }
  await waitFor(async () => {
    try {
      await Promise.race([task('mux'), new Promise((_, reject) => setTimeout(() => reject(new Error('slow')), 2000))])
      return true
    } catch {
      return false
    }
  }, 'the engine to take a first task', 30_000)
  for (const ch of ['task', 'broadcast'] as const) await waitFor(async () => task(ch).then(() => true, () => false), `the engine's ${ch} connection`, 30_000)

  const channels: (EngineChannel | 'ping')[] = ['mux', 'task', 'broadcast', 'control', 'ping']
  let mustDrop = 0
  let sent = 0
  const rounds = Math.max(200, Math.floor(MESSAGES / 2))
  for (let round = 0; round < rounds; round++) {
    for (const channel of channels) {
      const kind = nextKind(g)
      let frames: Frames
      if (channel === 'ping') frames = Array.from({ length: 1 + g.int(3) }, () => g.bytes(g.int(100)))
      else if (kind === 'signed') {
        frames = channel === 'control'
          ? signedMsg(g.pick([`fuzz_${g.hex(5)}`, 'abort_request', 'signal_request']), { msg_ids: [g.hex(12)], sig: g.pick([0, 3, 'x', null, 99]) }).frames
          : signedMsg(g.pick([`fuzz_${g.hex(5)}`, 'apply_request', 'execute_request']), { code: odd(g) }, { x: odd(g) }, oddBuffers(g)).frames
      } else frames = g.make(kind)
      await harness.sendRaw(channel, uuid, frames)
      sent++
      if (channel !== 'ping' && kind !== 'signed') mustDrop++
    }
    if ((round + 1) % SYNC_EVERY === 0) await Promise.all([task('mux'), task('task'), task('broadcast')])
    if (engine.child.exitCode !== null) throw new Error(`the engine died at round ${round}:\n${engine.output()}`)
  }
  await Promise.all([task('mux'), task('task'), task('broadcast')])
  t.equal(engine.child.exitCode, null, 'the engine is still running')
  t.pass(`${apply} real tasks answered right between ${sent} bad messages`)
  await engine.stop('SIGTERM', 15_000)
  const m = /dropped (\d+) bad message\(s\) in all/.exec(engine.output())
  t.ok(Number(m?.[1] ?? 0) >= mustDrop, `the engine dropped ${m?.[1]} messages, at least the ${mustDrop} that cannot verify or parse`)
  const warnings = engine.output().split('\n').filter((l) => / WARN /.test(l)).length
  t.ok(warnings < 100, `the engine's log is rate limited: ${warnings} warning lines`)
})
