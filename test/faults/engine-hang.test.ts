import { join } from 'node:path'
import t from 'tap'
import { Client } from '../../src/index.js'
import { heartbeatWindow, unregistration } from '../helpers/heartbeat.js'
import { startController, startEngine, tempDir, waitFor } from '../helpers/processes.js'

/**
 * The first run anywhere prints its engine's pid and takes 3 s; a later run returns at once. The marker file is
 * how runs on different engines know about each other.
 */
const firstRunIsSlow = (marker: string): Promise<string> => {
  const fs = process.getBuiltinModule('node:fs')
  if (fs.existsSync(marker)) return Promise.resolve(`retry in ${process.pid}`)
  fs.writeFileSync(marker, String(process.pid))
  console.log(`running in ${process.pid}`)
  return new Promise((resolve) => setTimeout(() => resolve(`first run in ${process.pid}`), 3000))
}

t.test('an engine hung by SIGSTOP: unregistered by the heartbeat, its task re-run elsewhere, its late result discarded', async (t) => {
  // Log level info: the controller's warning about the discarded reply is what the test waits for.
  const controller = await startController(t, ['--ping=250', '--log-level=info'])
  // Engines at log level info say their ids.
  const engines = [startEngine(t, controller.profileDir, ['--log-level=info']), startEngine(t, controller.profileDir, ['--log-level=info'])]
  const seen: string[] = []
  const keep = (m: string): void => void seen.push(m)
  const client = new Client({ profileDir: controller.profileDir, log: { debug: keep, info: keep, warn: keep, error: keep } })
  t.teardown(() => client.close())
  await client.waitForEngines(2, { timeoutMs: 60_000 })
  const marker = join(tempDir(t, 'jsparallel-marker-'), 'ran')

  const ar = client.loadBalancedView().withFlags({ retries: 1 }).apply(firstRunIsSlow, marker)
  const [, pid] = await waitFor(() => ar.metadata.stdout.match(/running in (\d+)/) ?? undefined, 'the first run to start', 60_000)
  const hung = engines.find((e) => e.pid === Number(pid))
  if (!hung) throw new Error(`the task runs in ${pid}, which is none of the test's engines`)
  const id = Number(/registered as engine (\d+)/.exec(hung.output())?.[1])
  t.teardown(() => void hung.child.kill('SIGCONT'))
  const stoppedAt = Date.now()
  hung.child.kill('SIGSTOP')

  await waitFor(() => client.ids.length === 1, 'the hung engine to be unregistered', 30_000)
  const seenMs = Date.now() - stoppedAt
  // 10 misses of 250 ms: given up at the first check after more than 10 unanswered pings (see heartbeatWindow).
  const window = heartbeatWindow(250)
  const gone = await waitFor(() => unregistration(controller.proc.output(), id), `the controller to log that engine ${id} was unregistered`)
  t.equal(gone.why, 'heartbeat stopped')
  const judgedMs = gone.atMs - stoppedAt
  t.ok(judgedMs >= window.earliestMs, `not given up before 10 periods (${judgedMs} ms; ${window.earliestMs} ms)`)
  t.ok(judgedMs <= window.latestMs, `given up ${judgedMs} ms after SIGSTOP, the client told at ${seenMs} ms (budget ${window.budgetMs} ms, ceiling ${window.latestMs} ms)`)
  const value = await ar.get(60_000)
  t.match(value, /^retry in \d+$/, 'the task was run again on the other engine')
  t.not(value, `retry in ${pid}`)

  hung.child.kill('SIGCONT')
  // The resumed engine finishes its run and sends the reply; the controller discards it and says so.
  await controller.proc.waitForOutput(new RegExp(`discarded a late reply to task ${ar.msgIds[0]}`), 30_000)
  t.equal(await ar.get(), value, 'the result is still the retry\'s')
  t.same(seen.filter((m) => /dropped apply_reply/.test(m)), [], 'the client never saw a second reply')
  const [record] = await client.dbQuery({ msg_id: ar.msgIds[0] }, ['completed', 'stdout'])
  t.ok(record?.completed, 'the record holds the completion')
  t.equal(hung.child.exitCode, null, 'the resumed engine did not crash')
  t.equal(engines.find((e) => e !== hung)?.child.exitCode, null)
})
