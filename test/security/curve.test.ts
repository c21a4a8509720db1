// Issue 7, item 7: with --curve every channel is encrypted and only peers that know the controller's public key
// get through the handshake; a peer without it, or with another key, never reaches the application.
import { randomUUID } from 'node:crypto'
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { createServer, connect, type Server, type Socket } from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import { Client, HandshakeRefused } from '../../src/index.js'
import { silentLogger } from '../../src/common/log.js'
import { checkConnectionInfo, isCurveKey, type ClientConnectionInfo } from '../../src/protocol/connection-file.js'
import { createDealer, newCurveKeyPair, watchHandshake, type AnySocket, type Curve } from '../../src/transport/sockets.js'
import { Inbox, RawPeer } from '../helpers/peer.js'
import { startController, startEngine, startProcess, binPath, processAlive, tempDir, waitFor, type Teardown } from '../helpers/processes.js'

const readJson = (path: string): Record<string, unknown> => JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>
const secretFile = (profileDir: string): string => join(profileDir, 'security', 'ipcontroller-curve-secret.json')

/** Resolves with the reason once the socket's security handshake is refused; rejects after the ceiling. */
function handshakeRefused(socket: AnySocket, timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop()
      reject(new Error(`no handshake failure within ${timeoutMs} ms`))
    }, timeoutMs)
    const stop = watchHandshake(socket, (reason) => {
      clearTimeout(timer)
      resolve(reason)
    })
  })
}

/** A TCP relay on loopback to `port` that records the bytes crossing it, both ways. */
async function recordingRelay(t: Teardown, port: number): Promise<{ port: number; bytes: () => Buffer }> {
  const chunks: Buffer[] = []
  const open = new Set<Socket>()
  const server: Server = createServer((down) => {
    const up = connect(port, '127.0.0.1')
    for (const [from, to] of [[down, up], [up, down]] as const) {
      open.add(from)
      from.on('data', (d: Buffer) => {
        chunks.push(d)
        to.write(d)
      })
      from.on('error', () => to.destroy())
      from.on('close', () => to.destroy())
    }
  })
  t.teardown(() => {
    for (const s of open) s.destroy()
    server.close()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('the relay has no port')
  return { port: address.port, bytes: () => Buffer.concat(chunks) }
}

t.test('a curve_serverkey that is not a Z85 key is refused naming the key, before any socket exists', async (t) => {
  for (const bad of ['short', 'x'.repeat(39) + '"', 42, { key: 1 }]) {
    t.throws(() => checkConnectionInfo<object>({ curve_serverkey: bad }, [], 'the file'), { name: 'ConfigError', message: /the file: curve_serverkey must be a CurveZMQ public key/ })
  }
  for (const fine of [null, '', newCurveKeyPair().publicKey]) t.doesNotThrow(() => checkConnectionInfo<object>({ curve_serverkey: fine }, []))
})

t.test('with --curve, JS engines and a JS client work; the files carry the public key and no secret', async (t) => {
  const c = await startController(t, ['--curve', '--log-level=debug'])
  const client = readJson(c.clientFile)
  const engine = readJson(c.engineFile)
  t.ok(isCurveKey(client.curve_serverkey), 'the client file names a CurveZMQ public key')
  t.equal(engine.curve_serverkey, client.curve_serverkey, 'the engine file names the same key')
  const pair = readJson(secretFile(c.profileDir)) as { publicKey: string; secretKey: string }
  t.equal(pair.publicKey, client.curve_serverkey, 'the kept key pair is the one the files name')
  t.equal(statSync(secretFile(c.profileDir)).mode & 0o777, 0o600, 'the secret key file is 0600')
  t.notOk(readFileSync(c.clientFile, 'utf8').includes(pair.secretKey), 'no secret key in the client file')
  t.notOk(readFileSync(c.engineFile, 'utf8').includes(pair.secretKey), 'no secret key in the engine file')

  const engines = [startEngine(t, c.profileDir, ['--log-level=debug']), startEngine(t, c.profileDir, ['--log-level=debug'])]
  const rc = new Client({ profileDir: c.profileDir, log: silentLogger })
  t.teardown(() => rc.close())
  await rc.waitForEngines(2, { timeoutMs: 30_000 })
  const xs = Array.from({ length: 40 }, (_, i) => i)
  const ar = rc.loadBalancedView().map((x: number) => x * x + 1, xs, { chunksize: 4 })
  t.same(await ar, xs.map((x) => x * x + 1), 'the map is right')
  t.same(new Set(ar.metadata.map((m) => m.engineId)).size, 2, 'both engines took part')
  await rc.close()
  for (const e of engines) await e.stop('SIGTERM')
  await c.proc.stop('SIGTERM')
  t.notOk(c.proc.output().includes(pair.secretKey), 'no secret key in the controller log')
  t.notOk(existsSync(secretFile(c.profileDir)), 'the secret key file is removed with the connection files')
})

t.test('peers without the server key get no answer, the controller lives on and serves a curve client', async (t) => {
  const c = await startController(t, ['--curve'])
  const info = readJson(c.clientFile) as unknown as ClientConnectionInfo

  // The right HMAC key and no CurveZMQ; then CurveZMQ with another server's key.
  const plain = new RawPeer(t, c.clientFile)
  const impostor = new RawPeer(t, c.clientFile)
  const impostorCurve: Curve = { role: 'client', serverKey: newCurveKeyPair().publicKey, keys: newCurveKeyPair() }
  const sockets = [plain, impostor].flatMap((peer, i) => ['registration', 'task'].map((channel) => {
    const socket = createDealer({ curve: i === 0 ? undefined : impostorCurve })
    // Watched before it connects: ZeroMQ reports no event from before, and does not retry a mechanism mismatch.
    const refused = handshakeRefused(socket)
    socket.connect(peer.url(channel))
    t.teardown(() => socket.close())
    return { inbox: new Inbox(socket, peer.session), refused, peer, channel }
  }))
  for (const { inbox, peer, channel } of sockets) {
    const messages = channel === 'registration'
      ? [peer.frames('connection_request', {}), peer.frames('registration_request', { uuid: randomUUID(), id: 7 }), peer.frames('shutdown_request', {})]
      : [peer.frames('apply_request', {}, { metadata: { language: 'javascript' } })]
    // Not awaited: ZeroMQ queues them until a handshake succeeds, which it never does, and once the connection is
    // given up a DEALER has nowhere to send, so a send can wait until the socket closes in teardown.
    void (async () => {
      for (const frames of messages) await inbox.send(frames)
    })().catch(() => {})
  }
  const reasons = await Promise.all(sockets.map((x) => x.refused))
  // Which side notices first varies: the peer sees the mechanism mismatch, or the server hanging up (EPIPE).
  for (const reason of reasons) t.match(reason, /MECHANISM_MISMATCH|EPIPE|ECONNRESET/, 'a socket failed its handshake')
  t.equal(reasons.length, 4, 'every socket of both peers failed its handshake')

  // Our own client with the same two mistakes says so instead of waiting for its timeout.
  await t.rejects(Client.connect({ connectionInfo: { ...info, curve_serverkey: null }, log: silentLogger, timeoutMs: 20_000 }), {
    name: 'HandshakeRefused', message: /refused the ZeroMQ handshake .*--curve/,
  })
  await t.rejects(Client.connect({ connectionInfo: { ...info, curve_serverkey: newCurveKeyPair().publicKey }, log: silentLogger, timeoutMs: 20_000 }), HandshakeRefused)

  const rc = await Client.connect({ profileDir: c.profileDir, log: silentLogger })
  t.teardown(() => rc.close())
  t.same(await rc.queueStatus(), { unassigned: 0 }, 'the controller answers a curve client: no engine registered, no task queued')
  t.same(await rc.dbQuery({}, ['msg_id']), [], 'nothing recorded')
  for (const { inbox } of sockets) t.equal(inbox.received.length, 0, 'not one message reached a refused peer')
  t.equal(c.proc.child.exitCode, null, 'the controller is still running (the shutdown_requests never arrived)')
})

t.test('with --curve and --scheme=pure, tasks still cross the native device', async (t) => {
  const c = await startController(t, ['--curve', '--scheme=pure'])
  startEngine(t, c.profileDir)
  const rc = await Client.connect({ profileDir: c.profileDir, log: silentLogger })
  t.teardown(() => rc.close())
  await rc.waitForEngines(1, { timeoutMs: 30_000 })
  t.same(await rc.loadBalancedView().map((x: number) => x * 3, [1, 2, 3]), [3, 6, 9])
})

t.test('an engine with the wrong server key stops with a clear error', async (t) => {
  const c = await startController(t, ['--curve'])
  const forged = join(c.profileDir, 'security', 'forged-engine.json')
  writeFileSync(forged, JSON.stringify({ ...readJson(c.engineFile), curve_serverkey: newCurveKeyPair().publicKey }))
  const engine = startProcess(t, process.execPath, [binPath('engine'), '--file', forged, '--log-level=warn', '--timeout=30'])
  const { code } = await engine.exited
  t.not(code, 0, 'the engine exits with a failure')
  t.match(engine.output(), /HandshakeRefused|refused the ZeroMQ handshake/, `it says why: ${engine.output().slice(0, 300)}`)
  t.equal(c.proc.child.exitCode, null, 'the controller is still running')
})

/** Runs one task whose argument is a marker through a relay on the client's task port; returns the relayed bytes. */
async function relayedTask(t: Teardown, args: string[], marker: string): Promise<Buffer> {
  const c = await startController(t, args)
  startEngine(t, c.profileDir)
  const info = readJson(c.clientFile) as unknown as ClientConnectionInfo
  const relay = await recordingRelay(t, info.task)
  const rc = await Client.connect({ connectionInfo: { ...info, task: relay.port }, log: silentLogger })
  t.teardown(() => rc.close())
  await rc.waitForEngines(1, { timeoutMs: 30_000 })
  const echoed = await rc.loadBalancedView().apply((s: string) => `${s}!`, marker)
  if (echoed !== `${marker}!`) throw new Error(`the task returned ${String(echoed)}`)
  await waitFor(() => relay.bytes().length > 0, 'bytes through the relay')
  return relay.bytes()
}

t.test('traffic is encrypted: a task argument crosses the wire in the clear without --curve, not with it', async (t) => {
  const marker = `MARKER-${randomUUID()}`
  const clear = await relayedTask(t, [], marker)
  t.ok(clear.includes(marker), 'control: without --curve the marker is on the wire')
  t.ok(clear.includes('apply_request'), 'control: and so is the message type')
  const curve = await relayedTask(t, ['--curve'], marker)
  t.ok(curve.length > 200, `with --curve bytes crossed too (${curve.length})`)
  t.notOk(curve.includes(marker), 'with --curve the marker is not on the wire')
  t.notOk(curve.includes('apply_request'), 'nor is the message type')
  t.notOk(curve.includes(`${marker}!`), 'nor the result')
})

t.test('--reuse --curve keeps the key pair across a restart', async (t) => {
  const first = await startController(t, ['--curve', '--reuse'])
  const key = readJson(first.clientFile).curve_serverkey
  await first.proc.stop('SIGTERM')
  t.ok(existsSync(secretFile(first.profileDir)), 'with --reuse the key pair stays for the next controller')
  const second = startProcess(t, process.execPath, [binPath('controller'), '--profile-dir', first.profileDir, '--ping=250', '--log-level=info', '--curve', '--reuse'])
  await second.waitForOutput(/controller ready .*CurveZMQ/)
  t.equal(readJson(first.clientFile).curve_serverkey, key, 'the same public key')
  const rc = await Client.connect({ profileDir: first.profileDir, log: silentLogger })
  t.teardown(() => rc.close())
  t.same(await rc.queueStatus(), { unassigned: 0 }, 'and a client connects with it')
})

t.test('cluster start --curve: the cluster, its engines and its own watch of them all speak CurveZMQ', async (t) => {
  const profileDir = join(tempDir(t), 'profile_curve')
  const proc = startProcess(t, process.execPath, [binPath('cluster'), 'start', '-n', '2', '--curve', '--ping=3000', '--profile-dir', profileDir])
  await proc.waitForOutput(/cluster ready/, 60_000)
  const childPids = [...proc.output().matchAll(/started, pid (\d+)/g)].map((m) => Number(m[1]))
  t.teardown(() => {
    for (const pid of childPids) if (processAlive(pid)) process.kill(pid, 'SIGKILL')
  })
  t.ok(isCurveKey(readJson(join(profileDir, 'security', 'ipcontroller-client.json')).curve_serverkey), 'the controller runs with --curve')
  const rc = await Client.connect({ profileDir, log: silentLogger })
  t.teardown(() => rc.close())
  await rc.waitForEngines(2, { timeoutMs: 30_000 })
  t.same(await rc.loadBalancedView().map((x: number) => x + 1, [1, 2, 3]), [2, 3, 4])
  // The cluster learns engine ids from notifications and unregisters a dead engine itself: both over CurveZMQ.
  process.kill(childPids[2] as number, 'SIGKILL')
  await waitFor(() => rc.ids.length === 1, 'the killed engine to be unregistered by the cluster (the 3 s heartbeat would take 30 s)', 15_000)
  proc.child.kill('SIGINT')
  t.equal((await proc.exited).code, 0, 'Ctrl-C stops it cleanly')
})
