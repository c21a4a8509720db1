import { join } from 'node:path'
import { existsSync, readFileSync } from 'node:fs'
import t from 'tap'
import { Client } from '../../src/index.js'
import { silentLogger } from '../../src/common/log.js'
import { startEngine, startSqliteController, tempDir, waitFor } from '../helpers/processes.js'

t.test('SIGKILL the controller, restart it with --restore: engines, records and results come back', async (t) => {
  const profileDir = join(tempDir(t), 'profile_restore')
  const first = await startSqliteController(t, profileDir, [])
  const engines = [startEngine(t, profileDir), startEngine(t, profileDir)]
  const client = new Client({ profileDir, log: silentLogger })
  t.teardown(() => client.close())
  await client.waitForEngines(2, { timeoutMs: 60_000 })
  const ids = client.ids
  const lview = client.loadBalancedView()
  const done = lview.map((x: number) => {
    console.log(`squaring ${x}`)
    return x * x
  }, [...Array(20).keys()], { chunksize: 1 })
  const values = await done
  // The records of the last turn are committed at the end of that turn; wait until the engine file is there too.
  await waitFor(() => existsSync(join(profileDir, 'log', 'engines.json')), 'the engine state file')
  await first.stop('SIGKILL')

  const second = await startSqliteController(t, profileDir, ['--restore'])
  t.match(second.output(), /restored 2 engine/)
  const other = await Client.connect({ profileDir, log: silentLogger })
  t.teardown(() => other.close())
  t.same(other.ids, ids, 'the engines are registered again at once, with their ids')
  t.same((await other.getResult(done.msgIds)).flat(), values, 'every result completed before the kill (chunks of one item)')
  const [record] = await other.dbQuery({ msg_id: done.msgIds[3] }, ['stdout', 'engine_uuid'])
  t.match(record?.stdout, /squaring 3/)
  // The engines heard the new controller's heartbeat: they take new work and stay registered.
  t.equal(await other.loadBalancedView().apply((x: number) => x + 1, 41), 42)
  t.ok(engines.every((e) => e.child.exitCode === null), 'the engines never stopped')
  t.same(await other.hubHistory().then((h) => h.slice(0, 20)), done.msgIds)
})

t.test('--reuse binds the ports and keeps the key of the previous connection files', async (t) => {
  const profileDir = join(tempDir(t), 'profile_reuse')
  const clientFile = join(profileDir, 'security', 'ipcontroller-client.json')
  const first = await startSqliteController(t, profileDir, ['--reuse'])
  const before = readFileSync(clientFile, 'utf8')
  await first.stop('SIGTERM')
  t.ok(existsSync(clientFile), 'with --reuse the files stay on exit')
  await startSqliteController(t, profileDir, ['--reuse'])
  t.same(JSON.parse(readFileSync(clientFile, 'utf8')), JSON.parse(before), 'same key and ports')
  const client = await Client.connect({ profileDir, log: silentLogger })
  t.teardown(() => client.close())
  t.same(client.ids, [])
})
