/** The `local` launcher: controller and engines as child processes of this one, on this machine. */
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, mkdirSync, openSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { ControllerLauncher, ControllerSpec, EngineLauncher, EngineSpec, LaunchedProcess } from './launcher.js'

/** The package's bin/ directory, four levels above this file's compiled form (dist/src/cluster/launchers/). */
const binDir = fileURLToPath(new URL('../../../../bin/', import.meta.url))

/** This install's engine script: where the `ssh` launcher looks on other hosts unless told otherwise. */
export const localEngineScript = join(binDir, 'engine.js')

/** A child killed by a signal keeps `exitCode` null: only `signalCode` says it has gone. */
function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null
}

class LocalProcess implements LaunchedProcess {
  constructor(private readonly child: ChildProcess) {}

  get pid(): number | undefined {
    return this.child.pid
  }

  get exited(): boolean {
    return hasExited(this.child)
  }

  onExit(listener: (code: number | null, signal: NodeJS.Signals | null) => void): void {
    if (this.exited) listener(this.child.exitCode, this.child.signalCode)
    else this.child.once('exit', listener)
  }

  signal(signal: NodeJS.Signals): void {
    if (!this.exited) this.child.kill(signal)
  }

  stop(graceMs: number): Promise<void> {
    if (this.exited) return Promise.resolve()
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs)
      this.child.once('exit', () => {
        clearTimeout(timer)
        resolve()
      })
      this.child.kill('SIGTERM')
    })
  }
}

/** Runs `bin/<command>.js` under this Node with its output appended to `logFile`, and `env` added to its environment. */
function spawnLocal(command: 'controller' | 'engine', args: readonly string[], logFile: string, env: Readonly<Record<string, string>> = {}): LocalProcess {
  mkdirSync(dirname(logFile), { recursive: true })
  const fd = openSync(logFile, 'a')
  try {
    const environment = Object.keys(env).length === 0 ? undefined : { ...process.env, ...env }
    return new LocalProcess(spawn(process.execPath, [join(binDir, `${command}.js`), ...args], { stdio: ['ignore', fd, fd], env: environment }))
  } finally {
    closeSync(fd)
  }
}

export const localControllerLauncher: ControllerLauncher = {
  name: 'local',
  start(spec: ControllerSpec): Promise<LaunchedProcess> {
    return Promise.resolve(spawnLocal('controller', ['--profile-dir', spec.profileDir, '--cluster-id', spec.clusterId, ...spec.args], spec.logFile))
  },
}

export const localEngineLauncher: EngineLauncher = {
  name: 'local',
  start(engines: readonly EngineSpec[]): Promise<LaunchedProcess[]> {
    return Promise.resolve(engines.map((e) => spawnLocal('engine', ['--profile-dir', e.profileDir, '--cluster-id', e.clusterId, '--uuid', e.uuid, ...e.args], e.logFile, e.settings.env)))
  },
}
