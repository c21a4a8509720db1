import t from 'tap'
import { Dependency } from '../../src/common/dependency.js'
import { TaskOutcomes } from '../../src/schedulers/outcomes.js'

t.test('outcomes are bounded; older ones are looked up, tasks in flight are known', async (t) => {
  const store = new Map<string, { ok: boolean; engineUuid: string | undefined }>()
  const outcomes = new TaskOutcomes((id) => store.get(id), 100)
  for (let i = 0; i < 1000; i++) {
    outcomes.accepted(`t${i}`)
    outcomes.finishedTask(`t${i}`, i % 2 === 0, 'E')
    store.set(`t${i}`, { ok: i % 2 === 0, engineUuid: 'E' })
  }
  t.equal(outcomes.remembered, 100, 'only the most recent 100 in memory')
  t.ok(outcomes.completed.has('t0'), 'an old success comes from the lookup')
  t.ok(outcomes.failed.has('t1'))
  store.delete('t0')
  t.notOk(outcomes.known('t0'), 'forgotten everywhere: unknown')
  outcomes.accepted('running')
  t.ok(outcomes.known('running'))
  t.notOk(outcomes.completed.has('running'), 'in flight is neither completed nor failed, whatever the store says')
  t.ok(new Dependency(['t998', 't2']).met(outcomes.completed, outcomes.failed))
  t.ok(outcomes.on('E').completed.has('t998'))
  t.notOk(outcomes.on('F').completed.has('t998'), 'follow sees only the engine it ran on')
})
