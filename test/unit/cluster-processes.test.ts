// ClusterProcesses driven by fake launchers: what a stop that comes while the cluster is starting does.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { silentLogger } from '../../src/common/log.js'
import type { ControllerLauncher, EngineLauncher, LaunchedProcess } from '../../src/cluster/launchers/launcher.js'
import { ClusterProcesses } from '../../src/cluster/processes.js'

/** A process that exits when stopped, and says how often it was. */
function fakeProcess(): LaunchedProcess & { stops: number } {
  const listeners: ((code: number | null, signal: NodeJS.Signals | null) => void)[] = []
  const p = {
    pid: undefined,
    exited: false,
    stops: 0,
    onExit: (listener: (code: number | null, signal: NodeJS.Signals | null) => void) => listeners.push(listener),
    signal: () => {},
    stop: async () => {
      p.stops++
      if (!p.exited) {
        p.exited = true
        for (const l of listeners) l(null, 'SIGTERM')
      }
    },
  }
  return p
}

t.test('a stop while the controller launcher is starting it stops that controller and fails the start', async (t) => {
  const profileDir = mkdtempSync(join(tmpdir(), 'jsparallel-processes-'))
  t.teardown(() => rmSync(profileDir, { recursive: true, force: true }))
  const controller = fakeProcess()
  let launched: (p: LaunchedProcess) => void = () => {}
  const controllerLauncher: ControllerLauncher = { name: 'fake', start: () => new Promise((resolve) => (launched = resolve)) }
  let enginesStarted = 0
  const engineLauncher: EngineLauncher = { name: 'fake', start: async (specs) => { enginesStarted += specs.length; return specs.map(() => fakeProcess()) } }
  const processes = new ClusterProcesses({
    profileDir, clusterId: '', controllerLauncher, engineLauncher, placement: [],
    settings: { env: {}, ssh: ['ssh'], node: 'node', path: '', engineScript: '' },
    controllerArgs: [], engineArgs: [], timeoutMs: 60_000, stopGraceMs: 10, log: silentLogger,
  })
  const starting = processes.start(2)
  await processes.stop()
  launched(controller)
  await t.rejects(starting, { message: /stopped while it was starting/ })
  t.equal(controller.stops, 1, 'the controller the launcher gave back late was stopped')
  t.equal(enginesStarted, 0, 'no engine was started')
})
