// Issue 7, item 7: whoever lacks the key gets nothing; the controller listens on loopback only; the key stays
// out of every log.
import { readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { Client } from '../../src/index.js'
import { createLogger, silentLogger } from '../../src/common/log.js'
import { Session } from '../../src/protocol/session.js'
import { FakeController } from '../helpers/fake-controller.js'
import { RawPeer } from '../helpers/peer.js'
import { binPath, processAlive, startController, startEngine, startProcess, tempDir, waitFor } from '../helpers/processes.js'

/** Listening TCP sockets of a process, from /proc: `address:port` for each (IPv4 and IPv6). */
function listeningSockets(pid: number): string[] {
  const inodes = new Set<string>()
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))
      if (m) inodes.add(m[1] as string)
    } catch {
      // closed while we looked
    }
  }
  const out: string[] = []
  for (const table of ['tcp', 'tcp6']) {
    for (const line of readFileSync(`/proc/net/${table}`, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/)
      if (cols.length < 10 || cols[3] !== '0A' || !inodes.has(cols[9] as string)) continue // 0A = LISTEN
      const [hexAddress, hexPort] = (cols[1] as string).split(':') as [string, string]
      out.push(`${decodeAddress(hexAddress)}:${parseInt(hexPort, 16)}`)
    }
  }
  return out
}

/** /proc/net/tcp writes addresses as host-order hex words. */
function decodeAddress(hex: string): string {
  if (hex.length === 8) return (Buffer.from(hex, 'hex').reverse().join('.'))
  const words = hex.match(/.{8}/g) ?? []
  const bytes = Buffer.concat(words.map((w) => Buffer.from(w, 'hex').reverse()))
  if (bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return [...bytes.subarray(12)].join('.')
  return [...Array(8).keys()].map((i) => bytes.readUInt16BE(i * 2).toString(16)).join(':')
}

t.test('by default the controller listens on 127.0.0.1 only (from the socket table)', async (t) => {
  const c = await startController(t)
  const info = JSON.parse(readFileSync(c.clientFile, 'utf8')) as { registration: number }
  const sockets = listeningSockets(c.proc.pid)
  t.ok(sockets.includes(`127.0.0.1:${info.registration}`), `the registration port is among them: ${sockets.join(' ')}`)
  t.ok(sockets.length >= 12, `every channel is bound (${sockets.length} listening sockets)`)
  t.same(sockets.filter((s) => !s.startsWith('127.')), [], 'none on another address')
  t.equal(statSync(c.clientFile).mode & 0o777, 0o600)
  t.equal(statSync(join(c.profileDir, 'security')).mode & 0o777, 0o700)
})

t.test('a peer with the wrong key gets no answer and changes nothing: as client, as engine, as task submitter', async (t) => {
  const c = await startController(t)
  const forged = join(tempDir(t), 'forged.json')
  // The client file names the registration port (engines register there too) and the client task port.
  const info = JSON.parse(readFileSync(c.clientFile, 'utf8')) as Record<string, unknown>
  writeFileSync(forged, JSON.stringify({ ...info, key: 'not-the-key' }))
  const intruder = new RawPeer(t, forged)
  const query = intruder.dealer('registration')
  const task = intruder.dealer('task')
  await query.send(intruder.frames('connection_request', {}))
  await query.send(intruder.frames('registration_request', { uuid: 'intruder-engine', id: 7 }))
  await query.send(intruder.frames('shutdown_request', {}))
  await task.send(intruder.frames('apply_request', {}, { metadata: { language: 'javascript' } }))
  // The controller says it dropped each one (its log, on a pipe, is how we know it has seen them).
  await c.proc.waitForOutput(/(invalid message signature[\s\S]*){4}/, 15_000)
  const client = new Client({ profileDir: c.profileDir, log: silentLogger })
  t.teardown(() => client.close())
  t.same(await client.queueStatus(), { unassigned: 0 }, 'no engine registered, no task queued')
  t.same(await client.dbQuery({}, ['msg_id']), [], 'nothing recorded')
  t.equal(query.received.length + task.received.length, 0, 'not one reply to the intruder')
  t.equal(c.proc.child.exitCode, null, 'the forged shutdown_request did nothing')
})

t.test('the key appears in no log line, even at debug level', async (t) => {
  const c = await startController(t, ['--log-level=debug'])
  const key = (JSON.parse(readFileSync(c.clientFile, 'utf8')) as { key: string }).key
  t.ok(key.length >= 32, 'there is a key')
  const engine = startEngine(t, c.profileDir, ['--log-level=debug'])
  const client = new Client({ profileDir: c.profileDir, log: silentLogger })
  t.teardown(() => client.close())
  await client.waitForEngines(1, { timeoutMs: 60_000 })
  t.equal(await client.loadBalancedView().apply((x: number) => x * 2, 21), 42)
  await client.close()
  await engine.stop('SIGTERM')
  await c.proc.stop('SIGTERM')
  t.ok(c.proc.output().length > 0 && engine.output().length > 0, 'both logged')
  t.notOk(c.proc.output().includes(key), 'not in the controller log')
  t.notOk(engine.output().includes(key), 'not in the engine log')
})

t.test('the key appears in no line the client logs at debug level, also when it drops a forged message', async (t) => {
  const hub = await FakeController.start()
  t.teardown(() => hub.close())
  const key = hub.connectionInfo.key
  const lines: string[] = []
  const client = new Client({ connectionInfo: hub.connectionInfo, log: createLogger('client', 'debug', (l) => lines.push(l)) })
  t.teardown(() => client.close())
  await client.ready
  t.equal(await client.loadBalancedView().apply((x: number) => x * 2, 21), 42)
  // A notification signed with another key (the client drops it and says why) and a well-signed one of a type it does
  // not know (ignored, at debug level). A SUB misses what is published before its subscription arrives: repeat both
  // until each has been logged.
  const forger = new Session({ key: 'not-the-key' })
  await waitFor(() => {
    hub.publishNotification(forger.serialize(forger.msg('registration_notification', { id: 9, uuid: 'forged' })))
    hub.publishNotification(hub.session.serialize(hub.session.msg('jsparallel_test_notification', {})))
    return lines.some((l) => /invalid message signature/.test(l)) && lines.some((l) => /ignored notification jsparallel_test_notification/.test(l))
  }, 'the client to log the forged and the unknown notification', 30_000)
  await client.close()
  t.notOk(lines.some((l) => l.includes(key)), `not in any of the ${lines.length} lines the client logged`)
})

t.test('the key appears in nothing `cluster start --log-level=debug` prints or writes to its log files', async (t) => {
  const profileDir = join(tempDir(t), 'profile_keys')
  const cluster = startProcess(t, process.execPath, [binPath('cluster'), 'start', '-n', '2', '--profile-dir', profileDir, '--ping=250', '--log-level=debug'])
  await cluster.waitForOutput(/cluster ready/, 60_000)
  const childPids = [...cluster.output().matchAll(/started, pid (\d+)/g)].map((m) => Number(m[1]))
  t.teardown(() => {
    for (const pid of childPids) if (processAlive(pid)) process.kill(pid, 'SIGKILL')
  })
  const key = (JSON.parse(readFileSync(join(profileDir, 'security', 'ipcontroller-client.json'), 'utf8')) as { key: string }).key
  t.ok(key.length >= 32, 'there is a key')
  const lines: string[] = []
  const client = new Client({ profileDir, log: createLogger('client', 'debug', (l) => lines.push(l)) })
  t.teardown(() => client.close())
  await client.waitForEngines(2, { timeoutMs: 60_000 })
  t.same(await client.loadBalancedView().map((x: number) => x + 1, [1, 2, 3]), [2, 3, 4])
  await t.rejects(client.loadBalancedView().apply(() => {
    throw new Error('expected')
  }), /expected/)
  // An engine that dies makes the cluster unregister it, and the client hear of it.
  process.kill(childPids[2] as number, 'SIGKILL')
  await waitFor(() => client.ids.length === 1, 'the killed engine to be unregistered', 30_000)
  await client.close()
  cluster.child.kill('SIGINT')
  t.equal((await cluster.exited).code, 0, 'the cluster stopped')
  const logDir = join(profileDir, 'log')
  const logs = readdirSync(logDir).map((name) => ({ name, text: readFileSync(join(logDir, name), 'utf8') }))
  const logFiles = logs.filter((l) => l.name.endsWith('.log'))
  t.same(logFiles.map((l) => l.name).sort(), ['controller.log', 'engine-0.log', 'engine-1.log'], 'a log file for the controller and each engine')
  t.ok(cluster.output().length > 0 && logFiles.every((l) => l.text.length > 0), 'the cluster and every child logged')
  t.notOk(cluster.output().includes(key), 'not in what cluster start printed')
  for (const { name, text } of logs) t.notOk(text.includes(key), `not in ${name}`)
  t.notOk(lines.some((l) => l.includes(key)), `not in the ${lines.length} lines the client logged`)
})

t.test('with the right key, a tampered header and a replayed message are each rejected and change nothing', async (t) => {
  const c = await startController(t)
  const peer = new RawPeer(t, c.clientFile)
  const task = peer.dealer('task')
  const client = new Client({ profileDir: c.profileDir, log: silentLogger })
  t.teardown(() => client.close())
  // A valid request, with no engine to take it: it waits in the controller's queue and is recorded.
  const valid = peer.frames('apply_request', {}, { metadata: { language: 'javascript' } })
  await task.send(valid)
  const delimiter = valid.findIndex((f) => f.toString() === '<IDS|MSG>')
  const header = JSON.parse((valid[delimiter + 2] as Buffer).toString()) as { msg_id: string }
  const queued = async (): Promise<{ unassigned: number; recorded: string[] }> => ({
    unassigned: (await client.queueStatus()).unassigned,
    recorded: (await client.dbQuery({}, ['msg_id'])).map((r) => r.msg_id),
  })
  // The raw peer's task socket and the client's query socket are separate connections: wait for the request to land.
  const landed = await waitFor(async () => {
    const now = await queued()
    return now.unassigned > 0 && now.recorded.length > 0 && now
  }, 'the valid request to be queued and recorded')
  t.same(landed, { unassigned: 1, recorded: [header.msg_id] }, 'the valid request is queued and recorded')

  const tampered = [...valid]
  tampered[delimiter + 2] = Buffer.from(JSON.stringify({ ...header, msg_id: `${header.msg_id}-tampered` }))
  await task.send(tampered)
  await c.proc.waitForOutput(/invalid message signature/, 15_000)
  await task.send(valid)
  await c.proc.waitForOutput(/replayed message/, 15_000)
  t.same(await queued(), { unassigned: 1, recorded: [header.msg_id] }, 'neither the tampered nor the replayed copy changed anything')
  t.equal(task.received.length, 0, 'and neither got an answer')
})
