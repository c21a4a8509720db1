import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { Client, Cluster, EngineError, type AsyncResult, type Logger } from '../../src/index.js'
import { silentLogger } from '../../src/common/log.js'
import { startEngine, startController, tempDir, waitFor, type Teardown } from '../helpers/processes.js'
import { seededRandom } from '../helpers/random.js'
import { heartbeatWindow, unregistration } from '../helpers/heartbeat.js'

/**
 * Issue 7, item 1: engines SIGKILLed mid-run. The full run (10,000 tasks, a kill every 500 completions) is the
 * default; JSPARALLEL_FAULT_TASKS makes it shorter or longer.
 */
const TASKS = Number(process.env.JSPARALLEL_FAULT_TASKS ?? 10_000)
const KILL_EVERY = 500
/** The controllers' --ping, and the heartbeat misses (the default) after which an engine is given up. */
const PING_MS = 250
const HEARTBEAT_MISSES = 10

/** A client logger that keeps what the client drops: a second reply to a finished task would show here. */
function droppedReplies(): { log: Logger; lines: string[] } {
  const lines: string[] = []
  const keep = (m: string): void => {
    if (/^dropped/.test(m)) lines.push(m)
  }
  return { log: { debug: keep, info: keep, warn: keep, error: keep }, lines }
}

/** Each run leaves a line `<task> <engine pid>` in `runs`, so the test can tell how often, and where, a task ran. */
const logged = (runs: string, i: number): number => {
  process.getBuiltinModule('node:fs').appendFileSync(runs, `${i} ${process.pid}\n`)
  return i * 3 + 1
}

/** The pids each task ran in, by task, from the runs file. */
function runsByTask(runs: string): Map<number, number[]> {
  const byTask = new Map<number, number[]>()
  for (const line of readFileSync(runs, 'utf8').split('\n').filter(Boolean)) {
    const [i, pid] = line.split(' ').map(Number) as [number, number]
    byTask.set(i, [...(byTask.get(i) ?? []), pid])
  }
  return byTask
}

async function startLocalCluster(t: Teardown, n: number): Promise<Cluster> {
  const profileDir = join(tempDir(t), 'profile_faults')
  const cluster = await Cluster.start({ n, profileDir, pingMs: PING_MS, controllerArgs: ['--db=sqlite'], engineArgs: ['--log-level=warn'], log: silentLogger })
  t.teardown(() => cluster.stop())
  return cluster
}

t.test(`${TASKS} tasks with retries: 1 on 4 engines, a random engine SIGKILLed and replaced every ${KILL_EVERY} completions`, async (t) => {
  const cluster = await startLocalCluster(t, 4)
  const dropped = droppedReplies()
  const client = new Client({ profileDir: cluster.profileDir, log: dropped.log })
  t.teardown(() => client.close())
  await client.waitForEngines(4, { timeoutMs: 60_000 })
  const random = seededRandom(Number(process.env.JSPARALLEL_FAULT_SEED ?? 7))
  const lview = client.loadBalancedView().withFlags({ retries: 1 })
  const runs = join(tempDir(t, 'jsparallel-runs-'), 'runs')

  const detections: number[] = []
  const watching: Promise<void>[] = []
  const killed = new Map<number, number>() // pid -> engine id
  let completed = 0
  let nextKill = KILL_EVERY
  const killOne = (): void => {
    const alive = cluster.engines.filter((e) => e.running && e.id !== undefined && client.ids.includes(e.id))
    const victim = alive[Math.floor(random() * alive.length)]
    if (!victim || victim.id === undefined || victim.pid === undefined) return
    const id = victim.id
    killed.set(victim.pid, id)
    const killedAt = performance.now()
    process.kill(victim.pid, 'SIGKILL')
    watching.push(cluster.addEngines(1).then(() => {}))
    watching.push(waitFor(() => !client.ids.includes(id), `engine ${id} to be unregistered`).then(() => {
      detections.push(performance.now() - killedAt)
    }))
  }

  const results = new Map<number, number>()
  const tasks: AsyncResult<number>[] = []
  for (let i = 0; i < TASKS; i++) {
    const ar = lview.apply(logged, runs, i)
    tasks.push(ar)
    void ar.then((value) => {
      results.set(i, value)
      if (++completed >= nextKill && nextKill < TASKS) {
        nextKill += KILL_EVERY
        killOne()
      }
    }, () => {})
  }
  const outcomes = await Promise.allSettled(tasks.map((ar) => ar.get(300_000)))
  await Promise.all(watching)

  const failed = outcomes.filter((o) => o.status === 'rejected')
  t.same(failed.map((o) => String((o).reason)).slice(0, 3), [], 'no task failed')
  t.equal(results.size, TASKS, 'every task returned a result')
  t.ok([...results].every(([i, v]) => v === i * 3 + 1), 'every result is the right one')
  t.same(dropped.lines, [], 'the client received no second reply for any task')
  const kills = Math.floor((TASKS - 1) / KILL_EVERY)
  t.equal(detections.length, kills, `${kills} engines killed and replaced`)
  const records = await client.dbQuery({ msg_id: { $in: tasks.map((ar) => ar.msgIds[0] as string) } }, ['msg_id', 'completed', 'engine_uuid'])
  t.equal(records.filter((r) => r.completed).length, TASKS, 'the hub recorded every task completed once')

  // Executions, counted where they happen. A task runs once for the result it delivered, on the engine its record
  // names; any other run was on an engine killed under it (the run whose reply died with it, which the retry
  // replaced), and at most `retries` of those.
  const pidOf = new Map(cluster.engines.map((e) => [e.uuid, e.pid]))
  const taskOf = new Map(tasks.map((ar, i) => [ar.msgIds[0], i]))
  const resultPid = new Map(records.map((r) => [taskOf.get(String(r.msg_id)), pidOf.get(String(r.engine_uuid))]))
  const byTask = runsByTask(runs)
  const unexplained: string[] = []
  for (let i = 0; i < TASKS; i++) {
    const pids = byTask.get(i) ?? []
    const delivering = pids.filter((pid) => pid === resultPid.get(i))
    const others = pids.filter((pid) => pid !== resultPid.get(i))
    if (delivering.length !== 1 || others.length > 1 || others.some((pid) => !killed.has(pid))) {
      unexplained.push(`task ${i} ran in ${pids.join(', ') || 'no engine'}; its record names pid ${resultPid.get(i)}`)
    }
  }
  const executions = [...byTask.values()].reduce((n, pids) => n + pids.length, 0)
  const rerun = [...byTask.values()].filter((pids) => pids.length > 1).length
  t.same(unexplained.slice(0, 5), [], `each task ran once for its result, plus at most once on an engine killed under it (${unexplained.length} did not)`)

  // The cluster's watch of its children, not the heartbeat, removed each engine: the controller says why, and no
  // removal took as long as the heartbeat's first possible verdict (10 missed pings after the last answer).
  const log = readFileSync(join(cluster.profileDir, 'log', 'controller.log'), 'utf8')
  const reasons = [...killed.values()].map((id) => new RegExp(`engine ${id} unregistered \\((.*)\\)`).exec(log)?.[1])
  t.same(reasons.filter((why) => why !== 'unregistration request'), [], `each of the ${killed.size} killed engines was unregistered at the cluster's request`)
  const heartbeatFloorMs = PING_MS * (HEARTBEAT_MISSES - 1)
  const slowest = Math.max(...detections)
  t.ok(slowest < heartbeatFloorMs, `each death seen before the heartbeat could have seen it (slowest ${slowest.toFixed(0)} ms, median ${median(detections).toFixed(0)} ms; heartbeat ${heartbeatFloorMs} ms at the earliest)`)
  t.comment(`faults: ${TASKS} tasks, ${killed.size} engines killed, lost ${TASKS - results.size}, failed ${failed.length}, ${executions} executions (${rerun} tasks ran twice), ` +
    `${dropped.lines.length} second replies at the client, detection median ${median(detections).toFixed(0)} ms, max ${slowest.toFixed(0)} ms`)
})

t.test('retries: 0 — the task on an engine killed under it fails with EngineError naming that engine; the rest complete', async (t) => {
  const cluster = await startLocalCluster(t, 4)
  const client = new Client({ profileDir: cluster.profileDir, log: silentLogger })
  t.teardown(() => client.close())
  await client.waitForEngines(4, { timeoutMs: 60_000 })
  // Each task says where it runs, then waits long enough for the kill to land mid-task.
  const slow = (i: number): Promise<number> => {
    console.log(`task ${i} in ${process.pid}`)
    return new Promise((resolve) => setTimeout(() => resolve(i), 400))
  }
  const tasks = Array.from({ length: 12 }, (_, i) => client.loadBalancedView().apply(slow, i))
  const first = tasks[0] as AsyncResult<number>
  const [, pid] = await waitFor(() => first.metadata.stdout.match(/in (\d+)/) ?? undefined, 'the first task to start', 60_000)
  const victim = cluster.engines.find((e) => e.pid === Number(pid))
  t.ok(victim, 'the first task runs on an engine of the cluster')
  if (victim?.pid !== undefined) process.kill(victim.pid, 'SIGKILL')
  const outcomes = await Promise.allSettled(tasks.map((ar) => ar.get(60_000)))
  const failed = outcomes.flatMap((o, i) => (o.status === 'rejected' ? [[i, o.reason] as const] : []))
  t.same(failed.map(([i]) => i), [0], 'only the task that was running there failed')
  const error = failed[0]?.[1] as EngineError
  t.type(error, EngineError)
  t.match(error.message, victim ? new RegExp(`${victim.uuid}|engine ${victim.id}`, 'i') : /never/, 'the error names the engine')
  t.same(outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : [])), [...Array(12).keys()].slice(1))
})

t.test('an engine not started by cluster: its death is seen within ping x misses', async (t) => {
  // As in ipyparallel, an engine is given up at the first check after more than 10 unanswered pings: 11 to 12
  // periods after its last answer. The controller's log says when and why; the notification then reaches the client.
  const window = heartbeatWindow(PING_MS, HEARTBEAT_MISSES)
  const controller = await startController(t, [`--ping=${PING_MS}`, '--log-level=info'])
  const engines = [startEngine(t, controller.profileDir, ['--log-level=info']), startEngine(t, controller.profileDir)]
  const client = new Client({ profileDir: controller.profileDir, log: silentLogger })
  t.teardown(() => client.close())
  await client.waitForEngines(2, { timeoutMs: 60_000 })
  const before = client.ids
  const victim = engines[0]
  const id = await waitFor(() => /registered as engine (\d+)/.exec(victim?.output() ?? '')?.[1], 'the engine to say its id')
  const killedAt = Date.now()
  victim?.child.kill('SIGKILL')
  await waitFor(() => client.ids.length === 1, 'the killed engine to be unregistered', 30_000)
  const seenMs = Date.now() - killedAt
  const gone = await waitFor(() => unregistration(controller.proc.output(), Number(id)), 'the controller to log the unregistration')
  t.equal(gone.why, 'heartbeat stopped')
  const judgedMs = gone.atMs - killedAt
  t.ok(judgedMs >= window.earliestMs, `not given up before ${HEARTBEAT_MISSES} periods (${judgedMs} ms; ${window.earliestMs} ms)`)
  t.ok(judgedMs <= window.latestMs, `given up ${judgedMs} ms after the kill, the client told at ${seenMs} ms (budget ${window.budgetMs} ms, ceiling ${window.latestMs} ms)`)
  t.equal(before.length, 2)
  t.equal(await client.loadBalancedView().apply((x: number) => x + 1, 1), 2, 'the other engine takes the work')
})

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted.length === 0 ? NaN : (sorted[Math.floor((sorted.length - 1) / 2)] as number)
}
