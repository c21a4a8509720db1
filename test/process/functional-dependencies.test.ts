import t from 'tap'
import { Client, ConfigError, TaskTimeout, UnmetDependency, depend, dependent, requires } from '../../src/index.js'
import { bindingName } from '../../src/client/dependent.js'
import { silentLogger } from '../../src/common/log.js'
import { binPath, startController, startProcess, type Teardown } from '../helpers/processes.js'

const controllerDir = new WeakMap<Client, string>()

/** Two engines of ours, one of them started with JSP_ROLE=special in its environment. */
async function twoEngines(t: Teardown) {
  const controller = await startController(t)
  const start = (env: NodeJS.ProcessEnv) => startProcess(t, process.execPath, [binPath('engine'), '--profile-dir', controller.profileDir, '--log-level=warn'], { env })
  const special = start({ JSP_ROLE: 'special' })
  start({ JSP_ROLE: 'plain' })
  const client = new Client({ profileDir: controller.profileDir, log: silentLogger })
  t.teardown(() => client.close())
  await client.waitForEngines(2, { timeoutMs: 60_000 })
  controllerDir.set(client, controller.profileDir)
  return { client, lview: client.loadBalancedView(), specialPid: special.pid }
}

// Names `requires` binds inside the tasks, declared for TypeScript (they exist only on the engine).
declare const path: typeof import('node:path')
declare const u: typeof import('node:util')
declare const os: typeof import('node:os')

const roleIs = (role: string): boolean => process.env.JSP_ROLE === role

t.test('depend: tasks run only where the check holds', async (t) => {
  const { lview, specialPid } = await twoEngines(t)
  const where = depend(roleIs, 'special')(() => process.pid)
  const pids = await Promise.all([...Array(8).keys()].map(() => lview.apply(where)))
  t.same(new Set(pids), new Set([specialPid]), 'every run on the special engine')
  const mapped = await lview.map(depend(roleIs, 'special')((x: number) => [x, process.pid]), [1, 2, 3, 4], { chunksize: 1 })
  t.same(mapped.map(([, pid]) => pid), [specialPid, specialPid, specialPid, specialPid], 'map chunks obey the check too')
  t.equal(await lview.apply(depend(roleIs, 'plain')(() => 'ran')), 'ran', 'the other engine for the other role')
  const asyncCheck = async (role: string): Promise<boolean> => {
    await new Promise((r) => setTimeout(r, 5))
    return process.env.JSP_ROLE === role
  }
  t.equal(await lview.apply(dependent(() => process.pid, asyncCheck, 'special')), specialPid, 'an async check, dependent() form')
})

t.test('depend: a task no engine accepts waits for one that does (as ipyparallel); timeoutMs bounds the wait', async (t) => {
  const { client, lview } = await twoEngines(t)
  const late = lview.apply(depend(roleIs, 'late')(() => process.env.JSP_ROLE))
  const throwing = (): boolean => {
    throw new Error('check exploded')
  }
  await t.rejects(lview.withFlags({ timeoutMs: 1500 }).apply(depend(throwing)(() => 1)), TaskTimeout, 'a throwing check is unmet everywhere')
  t.equal(late.ready(), false, 'still waiting')
  const profileDir = controllerDir.get(client)
  startProcess(t, process.execPath, [binPath('engine'), '--profile-dir', profileDir as string, '--log-level=warn'], { env: { JSP_ROLE: 'late' } })
  t.equal(await late.get(60_000), 'late', 'it runs once an engine where the check holds joins')
})

t.test('requires: a module is imported and bound by name; a missing one is unmet everywhere', async (t) => {
  const { lview } = await twoEngines(t)
  const joined = requires('node:path')((a: string, b: string) => (globalThis as { path?: unknown }).path === undefined && path.join(a, b))
  t.equal(await lview.apply(joined, 'a', 'b'), 'a/b', 'node:path bound as `path` (not a global)')
  const named = requires({ u: 'node:util' })((x: unknown) => u.inspect(x))
  t.equal(await lview.apply(named, { a: 1 }), '{ a: 1 }')
  const missing = requires('surely-not-installed-xyz')(() => 1)
  await t.rejects(lview.withFlags({ timeoutMs: 1500 }).apply(missing), { name: 'TaskTimeout', message: /refused .*2 engine/ }, 'unmet on every engine')
  const both = requires('node:os')(depend(roleIs, 'special')(() => os.platform()))
  t.equal(await lview.apply(both), process.platform, 'requires and depend compose')
})

t.test('a task that throws UnmetDependency itself moves to another engine', async (t) => {
  const { lview, specialPid } = await twoEngines(t)
  const refuseUnlessSpecial = (): number => {
    if (process.env.JSP_ROLE !== 'special') throw new UnmetDependency('not the special engine')
    return process.pid
  }
  const pids = await Promise.all([...Array(6).keys()].map(() => lview.apply(refuseUnlessSpecial)))
  t.same(new Set(pids), new Set([specialPid]))
})

t.test('refusals are synchronous and name the problem', async (t) => {
  t.throws(() => depend(42 as unknown as () => boolean), ConfigError)
  t.throws(() => depend((x: () => void) => Boolean(x), () => {}), /travel as JSON/)
  t.throws(() => requires(''), /non-empty string/)
  t.throws(() => requires({ 'not an id': 'x' }), /not a JavaScript identifier/)
  t.throws(() => requires(), /at least one module/)
  t.equal(bindingName('mathjs'), 'mathjs')
  t.equal(bindingName('node:path'), 'path')
  t.equal(bindingName('@scope/pkg-name'), 'pkgName')
  t.equal(bindingName('./lib/my_helpers.js'), 'myHelpers')
})
