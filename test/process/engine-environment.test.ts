// How an engine started with no connection flags finds its controller from the environment, as ipyparallel 8
// launchers tell it: $IPP_PROFILE_DIR, $IPP_CLUSTER_ID, $IPP_CONNECTION_INFO (src/cli/engine.ts). Each test starts a
// real controller and a real engine and waits for the engine to register. $IPYTHONDIR points at an empty directory
// and the variables a test does not set are empty, so an engine that ignored its variable would find no
// connection file, give up after its --timeout, and exit.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { Client } from '../../src/index.js'
import { silentLogger } from '../../src/common/log.js'
import { binPath, startProcess, tempDir, waitFor, type Proc, type Teardown } from '../helpers/processes.js'

const NO_ENV = { IPP_PROFILE_DIR: '', IPP_CLUSTER_ID: '', IPP_CONNECTION_INFO: '' }

/** A controller in a fresh profile, with `clusterId` in its connection file names when given. */
async function controllerIn(t: Teardown, clusterId = ''): Promise<{ profileDir: string; engineFile: string }> {
  const profileDir = join(tempDir(t), 'profile_env')
  const suffix = clusterId ? `-${clusterId}` : ''
  const engineFile = join(profileDir, 'security', `ipcontroller${suffix}-engine.json`)
  const proc = startProcess(t, process.execPath, [binPath('controller'), '--profile-dir', profileDir, '--cluster-id', clusterId, '--ping=250', '--log-level=warn'])
  await waitFor(() => existsSync(engineFile) || proc.child.exitCode !== null, 'the controller connection files')
  if (proc.child.exitCode !== null) throw new Error(`controller exited: ${proc.output()}`)
  return { profileDir, engineFile }
}

/** An engine with `args` and `env` on top of an empty $IPYTHONDIR and no IPP_ variables. */
function engineWith(t: Teardown, args: string[], env: Record<string, string>): Proc {
  return startProcess(t, process.execPath, [binPath('engine'), '--timeout=5', '--log-level=info', ...args], {
    env: { IPYTHONDIR: tempDir(t), ...NO_ENV, ...env },
  })
}

/** The ids of the engines registered once all of `engines` have; fails early if one of them exits. */
async function registers(t: Teardown, engines: Proc[], profileDir: string, clusterId = ''): Promise<number[]> {
  const client = new Client({ profileDir, clusterId, log: silentLogger })
  t.teardown(() => client.close())
  await client.ready
  await waitFor(() => {
    const exited = engines.find((e) => e.child.exitCode !== null)
    if (exited) throw new Error(`an engine exited before registering:\n${exited.output()}`)
    return client.ids.length === engines.length
  }, 'the engines to register', 60_000)
  return [...client.ids].sort()
}

t.test('$IPP_PROFILE_DIR: an engine with no --profile-dir finds the connection file there', async (t) => {
  const { profileDir } = await controllerIn(t)
  const engine = engineWith(t, [], { IPP_PROFILE_DIR: profileDir })
  t.same(await registers(t, [engine], profileDir), [0], 'registered')
})

t.test('$IPP_CLUSTER_ID: an engine with no --cluster-id reads the connection file of that cluster', async (t) => {
  const { profileDir } = await controllerIn(t, 'envcluster')
  const engine = engineWith(t, ['--profile-dir', profileDir], { IPP_CLUSTER_ID: 'envcluster' })
  t.same(await registers(t, [engine], profileDir, 'envcluster'), [0], 'registered')
})

t.test('$IPP_PROFILE_DIR and $IPP_CLUSTER_ID together, no flags at all, as ipyparallel 8 launchers pass them', async (t) => {
  const { profileDir } = await controllerIn(t, 'both')
  const engine = engineWith(t, [], { IPP_PROFILE_DIR: profileDir, IPP_CLUSTER_ID: 'both' })
  t.same(await registers(t, [engine], profileDir, 'both'), [0], 'registered')
})

t.test('$IPP_CONNECTION_INFO: the engine file\'s content in the environment, no file and no profile needed', async (t) => {
  const { profileDir, engineFile } = await controllerIn(t)
  const engine = engineWith(t, [], { IPP_CONNECTION_INFO: readFileSync(engineFile, 'utf8') })
  t.same(await registers(t, [engine], profileDir), [0], 'registered')
  t.notMatch(engine.output(), /connection file .* not found/, 'it never looked for a file')
})

t.test('flags win over the environment: --profile-dir over $IPP_PROFILE_DIR, --file over $IPP_CONNECTION_INFO', async (t) => {
  const { profileDir, engineFile } = await controllerIn(t)
  const byDir = engineWith(t, ['--profile-dir', profileDir], { IPP_PROFILE_DIR: tempDir(t) })
  const byFile = engineWith(t, ['--file', engineFile], { IPP_CONNECTION_INFO: '{"not": "an engine file"}' })
  t.same(await registers(t, [byDir, byFile], profileDir), [0, 1], 'both registered')
})

t.test('$IPP_CONNECTION_INFO that is not JSON: the engine exits, naming the variable', async (t) => {
  const engine = engineWith(t, [], { IPP_CONNECTION_INFO: '{not json' })
  const { code } = await engine.exited
  t.not(code, 0, 'a failing exit code')
  t.match(engine.output(), /\$IPP_CONNECTION_INFO is not valid JSON/)
})
