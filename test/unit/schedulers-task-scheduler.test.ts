import t from 'tap'
import { Dependency } from '../../src/common/dependency.js'
import { silentLogger } from '../../src/common/log.js'
import { leastload, lru } from '../../src/schedulers/schemes.js'
import { TaskScheduler, type SchedulerHost, type Task } from '../../src/schedulers/task-scheduler.js'
import type { Header } from '../../src/protocol/messages.js'
import { PackedFrames } from '../../src/protocol/frames.js'
import { FakeClock } from '../helpers/fake-clock.js'

/** A host that records what the scheduler does, on a fake clock that moves only when told. */
function fakeHost() {
  const sent: [string, string][] = []
  const forwarded: [string, string][] = []
  const failed: [string, string][] = []
  const clock = new FakeClock()
  let unreachable = new Set<string>()
  const host: SchedulerHost = {
    sendToEngine: (uuid, task, undeliverable) => {
      if (unreachable.has(uuid)) undeliverable()
      else sent.push([task.msgId, uuid])
    },
    forwardReply: (task, uuid) => forwarded.push([task.msgId, uuid]),
    failTask: (task, ename) => failed.push([task.msgId, ename]),
    taskAssigned: () => {},
    taskRequeued: () => {},
    clock,
    log: silentLogger,
  }
  return { host, sent, forwarded, failed, clock, setUnreachable: (s: string[]) => (unreachable = new Set(s)) }
}

let n = 0
function task(overrides: Partial<Task> = {}): Task {
  const msgId = `m${n++}`
  return { msgId, clientIdents: [], wire: new PackedFrames([]), header: { msg_id: msgId } as Header, language: 'javascript', targets: new Set(), retries: 0, timeoutMs: undefined, priority: 0, after: new Dependency([]), follow: new Dependency([]), ...overrides }
}
const ok = { status: 'ok', dependenciesMet: true }
const options = { scheme: leastload, hwm: 1, random: Math.random, strandedGraceMs: 1000 }

t.test('hwm 1: an engine never holds two tasks; the next goes out when one finishes', async (t) => {
  const f = fakeHost()
  const s = new TaskScheduler(f.host, options)
  s.addEngine('A', 'javascript')
  s.addEngine('B', 'javascript')
  const tasks = [task(), task(), task()]
  tasks.forEach((x) => s.submit(x))
  t.equal(f.sent.length, 2)
  t.not(f.sent[0]?.[1], f.sent[1]?.[1])
  t.equal(s.queueLength, 1)
  const [firstId, firstEngine] = f.sent[0] as [string, string]
  t.equal(s.engineReply(firstEngine, firstId, ok, []), 'forwarded')
  t.same(f.sent[2], [tasks[2]?.msgId, firstEngine])
  t.equal(s.queueLength, 0)
})

t.test('hwm 0: everything goes out at once, least loaded first', async (t) => {
  const f = fakeHost()
  const s = new TaskScheduler(f.host, { ...options, hwm: 0 })
  s.addEngine('A', 'javascript')
  s.addEngine('B', 'javascript')
  for (let i = 0; i < 6; i++) s.submit(task())
  t.same(f.sent.map(([, e]) => e).sort(), ['A', 'A', 'A', 'B', 'B', 'B'])
})

t.test('tasks go only to engines of their language', async (t) => {
  const f = fakeHost()
  const s = new TaskScheduler(f.host, options)
  s.addEngine('py', 'python')
  const js = task()
  s.submit(js)
  t.equal(f.sent.length, 0, 'waits: no JavaScript engine yet')
  s.submit(task({ language: 'python' }))
  t.same(f.sent.map(([, e]) => e), ['py'])
  s.addEngine('node', 'javascript')
  t.same(f.sent[1], [js.msgId, 'node'])
})

t.test('lru cycles through the engines', async (t) => {
  const f = fakeHost()
  const s = new TaskScheduler(f.host, { ...options, scheme: lru, hwm: 0 })
  for (const e of ['A', 'B', 'C']) s.addEngine(e, 'javascript')
  for (let i = 0; i < 6; i++) s.submit(task())
  t.same(f.sent.map(([, e]) => e), ['C', 'B', 'A', 'C', 'B', 'A'])
})

t.test('targets restrict placement; targets that are not registered fail at once', async (t) => {
  const f = fakeHost()
  const s = new TaskScheduler(f.host, options)
  s.addEngine('A', 'javascript')
  s.addEngine('B', 'javascript')
  s.submit(task({ targets: new Set(['B']) }))
  s.submit(task({ targets: new Set(['B']) }))
  t.same(f.sent.map(([, e]) => e), ['B'])
  const ghost = task({ targets: new Set(['Z']) })
  s.submit(ghost)
  t.same(f.failed, [[ghost.msgId, 'ImpossibleDependency']])
})

t.test('a dead engine\'s tasks fail with EngineError after the grace period, or are retried', async (t) => {
  const f = fakeHost()
  const s = new TaskScheduler(f.host, options)
  s.addEngine('A', 'javascript')
  const lost = task()
  s.submit(lost)
  s.removeEngine('A')
  f.clock.advance(999)
  t.same(f.failed, [], 'not before the grace period')
  f.clock.advance(1)
  t.same(f.failed, [[lost.msgId, 'EngineError']])

  const g = fakeHost()
  const r = new TaskScheduler(g.host, options)
  r.addEngine('A', 'javascript')
  r.addEngine('B', 'javascript')
  const retried = task({ retries: 1 })
  r.submit(retried)
  const first = g.sent[0]?.[1] as string
  r.removeEngine(first)
  g.clock.advance(1000)
  t.same(g.failed, [])
  t.same(g.sent[1], [retried.msgId, first === 'A' ? 'B' : 'A'], 'retried on the other engine')
})

t.test('a failed task with retries runs again elsewhere; the failure is not forwarded', async (t) => {
  const f = fakeHost()
  const s = new TaskScheduler(f.host, options)
  s.addEngine('A', 'javascript')
  s.addEngine('B', 'javascript')
  const x = task({ retries: 1 })
  s.submit(x)
  const first = f.sent[0]?.[1] as string
  t.equal(s.engineReply(first, x.msgId, { status: 'error', dependenciesMet: true }, []), 'retried')
  t.equal(f.sent.length, 2)
  t.not(f.sent[1]?.[1], first)
  t.equal(s.engineReply(f.sent[1]?.[1] as string, x.msgId, { status: 'error', dependenciesMet: true }, []), 'forwarded')
  t.same(f.forwarded.map(([id]) => id), [x.msgId])
})

t.test('timeout bounds only the wait in the scheduler', async (t) => {
  const f = fakeHost()
  const s = new TaskScheduler(f.host, options)
  const placed = task({ timeoutMs: 10 })
  const waiting = task({ timeoutMs: 10 })
  s.addEngine('A', 'javascript')
  s.submit(placed)
  s.submit(waiting)
  f.clock.advance(9)
  t.same(f.failed, [])
  f.clock.advance(1)
  t.same(f.failed, [[waiting.msgId, 'TaskTimeout']])
  f.clock.advance(1000)
  t.same(f.failed, [[waiting.msgId, 'TaskTimeout']], 'the placed task has no timer')
})

t.test('an unreachable engine gets the task back; it is placed again later', async (t) => {
  const f = fakeHost()
  const s = new TaskScheduler(f.host, options)
  f.setUnreachable(['A'])
  s.addEngine('A', 'javascript')
  const x = task()
  s.submit(x)
  t.equal(s.queueLength, 1)
  f.setUnreachable([])
  f.clock.advance(49)
  t.same(f.sent, [])
  f.clock.advance(1)
  t.same(f.sent, [[x.msgId, 'A']])
})

t.test('replies for unknown tasks are dropped', async (t) => {
  const f = fakeHost()
  const s = new TaskScheduler(f.host, options)
  s.addEngine('A', 'javascript')
  t.equal(s.engineReply('A', 'nope', ok, []), 'unknown')
  t.same(f.forwarded, [])
})

t.test('priorities reorder the backlog; FIFO within a priority', async (t) => {
  const f = fakeHost()
  const s = new TaskScheduler(f.host, options)
  s.addEngine('A', 'javascript')
  const running = task()
  s.submit(running)
  const low1 = task({ priority: -1 })
  const mid1 = task()
  const high1 = task({ priority: 5 })
  const mid2 = task()
  const high2 = task({ priority: 5 })
  for (const x of [low1, mid1, high1, mid2, high2]) s.submit(x)
  const order = [running.msgId]
  for (let i = 0; i < 5; i++) {
    s.engineReply('A', order[order.length - 1] as string, ok, [])
    order.push(f.sent[f.sent.length - 1]?.[0] as string)
  }
  t.same(order, [running, high1, high2, mid1, mid2, low1].map((x) => x.msgId))
})

t.test('the waiting queue deletes from the middle and keeps its order', async (t) => {
  const { WaitingQueue } = await import('../../src/schedulers/waiting-queue.js')
  const q = new WaitingQueue<string>()
  q.add('a', 0, 'a')
  q.add('b', 1, 'b')
  q.add('c', 0, 'c')
  q.add('a', 9, 'a again')
  t.same([...q.values()], ['b', 'a', 'c'])
  t.ok(q.delete('b'))
  t.notOk(q.delete('b'))
  t.same([...q.values()], ['a', 'c'])
  t.equal(q.size, 2)
})

t.test('after: waits until its dependencies finish; invalid and impossible ones fail at once', async (t) => {
  const f = fakeHost()
  const s = new TaskScheduler(f.host, { ...options, hwm: 0 })
  s.addEngine('A', 'javascript')
  const first = task()
  s.submit(first)
  const second = task({ after: new Dependency([first.msgId]) })
  s.submit(second)
  t.same(f.sent.map(([id]) => id), [first.msgId], 'the dependent waits')
  s.engineReply('A', first.msgId, ok, [])
  t.same(f.sent.map(([id]) => id), [first.msgId, second.msgId], 'and runs once it is met')

  const self = task()
  self.after = new Dependency([self.msgId])
  s.submit(self)
  s.submit(task({ after: new Dependency(['never-seen']) }))
  t.same(f.failed.map(([, e]) => e), ['InvalidDependency', 'InvalidDependency'])

  const failing = task()
  s.submit(failing)
  const needsSuccess = task({ after: new Dependency([failing.msgId]) })
  const onFailure = task({ after: new Dependency([failing.msgId], { success: false, failure: true }) })
  s.submit(needsSuccess)
  s.submit(onFailure)
  s.engineReply('A', failing.msgId, { status: 'error', dependenciesMet: true }, [])
  t.same(f.failed.at(-1), [needsSuccess.msgId, 'ImpossibleDependency'])
  t.equal(f.sent.at(-1)?.[0], onFailure.msgId, 'a task that waits for the failure runs')
  s.submit(task({ after: new Dependency([failing.msgId]) }))
  t.same(f.failed.at(-1)?.[1], 'ImpossibleDependency', 'already unreachable at submission')
})

t.test('follow: runs where its dependency ran; fails when that engine has gone', async (t) => {
  const f = fakeHost()
  const s = new TaskScheduler(f.host, { ...options, hwm: 0 })
  s.addEngine('A', 'javascript')
  s.addEngine('B', 'javascript')
  const first = task()
  s.submit(first)
  const where = f.sent[0]?.[1] as string
  s.engineReply(where, first.msgId, ok, [])
  for (let i = 0; i < 4; i++) s.submit(task({ follow: new Dependency([first.msgId]) }))
  t.same(new Set(f.sent.slice(1).map(([, e]) => e)), new Set([where]))
  s.removeEngine(where)
  s.submit(task({ follow: new Dependency([first.msgId]) }))
  t.same(f.failed.at(-1)?.[1], 'ImpossibleDependency')
})

t.test('a chain of 100 after tasks runs in order', async (t) => {
  const f = fakeHost()
  const s = new TaskScheduler(f.host, { ...options, hwm: 0 })
  s.addEngine('A', 'javascript')
  s.addEngine('B', 'javascript')
  const chain: Task[] = []
  for (let i = 0; i < 100; i++) {
    const x = task(i === 0 ? {} : { after: new Dependency([(chain[i - 1] as Task).msgId]) })
    chain.push(x)
    s.submit(x)
  }
  for (let i = 0; i < 100; i++) {
    const [id, engine] = f.sent[i] as [string, string]
    t.equal(id, chain[i]?.msgId)
    t.equal(f.sent.length, i + 1, 'only one link is out at a time')
    s.engineReply(engine, id, ok, [])
  }
})

t.test('a task re-queued for a retry gets a fresh timeout and cannot wait forever', async (t) => {
  const f = fakeHost()
  const s = new TaskScheduler(f.host, options)
  s.addEngine('A', 'javascript')
  const busy = task()
  s.submit(busy)
  const x = task({ retries: 1, timeoutMs: 100 })
  s.submit(x) // waits behind busy, with a timer
  f.clock.advance(60)
  s.engineReply('A', busy.msgId, ok, []) // x is placed on A; its timer is cleared
  t.equal(f.sent.at(-1)?.[0], x.msgId)
  s.engineReply('A', x.msgId, { status: 'error', dependenciesMet: true }, []) // retried; A is blacklisted: waits again
  t.equal(s.queueLength, 1)
  f.clock.advance(99)
  t.same(f.failed, [], 'a fresh 100 ms from the re-queue')
  f.clock.advance(1)
  t.same(f.failed, [[x.msgId, 'TaskTimeout']])
})

t.test('a reply does not rescan waiting tasks that cannot use the free engine (other language, blocked by after)', async (t) => {
  const f = fakeHost()
  const s = new TaskScheduler(f.host, options)
  s.addEngine('JS', 'javascript')
  const gate = task()
  s.submit(gate) // occupies JS
  const python = [...Array(5000).keys()].map(() => task({ language: 'python' }))
  python.forEach((x) => s.submit(x))
  // Blocked behind a python task that never runs (no python engine).
  for (let i = 0; i < 5000; i++) s.submit(task({ after: new Dependency([python[0]?.msgId as string]) }))
  const proto = TaskScheduler.prototype as unknown as { place: (...a: unknown[]) => boolean }
  const original = proto.place
  let calls = 0
  proto.place = function (this: unknown, ...args: unknown[]) {
    calls++
    return original.apply(this, args)
  }
  t.teardown(() => {
    proto.place = original
  })
  // Each reply frees the engine; the next JS task in line goes out and nothing else is looked at.
  const chain = [task(), task(), task()]
  chain.forEach((x) => s.submit(x))
  let running = gate
  for (const next of chain) {
    s.engineReply('JS', running.msgId, ok, [])
    running = next
  }
  t.ok(calls <= 2 * chain.length, `place() was called ${calls} times for ${chain.length} replies`)
  t.equal(s.queueLength, 10_000, 'the python and blocked tasks still wait')
})
