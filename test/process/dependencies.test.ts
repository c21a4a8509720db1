import t from 'tap'
import { Dependency, ImpossibleDependency, InvalidDependency } from '../../src/index.js'
import { startCluster } from '../helpers/cluster.js'

t.test('after: a task runs once the tasks it names have succeeded', async (t) => {
  const { client } = await startCluster(t, 2)
  const lview = client.loadBalancedView()
  const a = lview.apply(() => new Promise<number>((r) => setTimeout(() => r(Date.now()), 300)))
  const b = lview.withFlags({ after: [a] }).apply(() => Date.now())
  const [aDone, bStart] = await Promise.all([a, b])
  t.ok((b.metadata.started as Date).getTime() >= (a.metadata.completed as Date).getTime(), 'b started after a completed')
  t.ok(bStart >= aDone)
})

t.test('follow: tasks run on the engine where the followed task ran', async (t) => {
  const { client } = await startCluster(t, 3, ['--hwm=0'])
  const lview = client.loadBalancedView()
  const a = lview.apply(() => 1)
  await a
  const followers = [...Array(6).keys()].map(() => lview.withFlags({ follow: a }).apply(() => 2))
  await Promise.all(followers)
  t.same(new Set(followers.map((f) => f.metadata.engineId)), new Set([a.metadata.engineId]))
})

t.test('Dependency any/failure; invalid and impossible dependencies fail with their names', async (t) => {
  const { client } = await startCluster(t, 1)
  const lview = client.loadBalancedView()
  const bad = lview.apply(() => {
    throw new Error('planned')
  })
  await t.rejects(bad)
  const cleanup = lview.withFlags({ after: new Dependency([bad], { success: false, failure: true }) }).apply(() => 'cleaned')
  t.equal(await cleanup, 'cleaned')
  await t.rejects(lview.withFlags({ after: [bad] }).apply(() => 1), ImpossibleDependency)
  await t.rejects(lview.withFlags({ after: ['no-such-task'] }).apply(() => 1), InvalidDependency)
})
