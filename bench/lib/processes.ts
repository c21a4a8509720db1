/**
 * Processes the suite starts: every one is stopped when its scope closes (SIGTERM, then SIGKILL), also when a
 * measurement fails, and killed outright if the suite itself exits early. Built on the test helpers, which
 * already start processes on free loopback ports and collect their output.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  binPath, repoRoot, startProcess, systemPython, tempDir, waitFor, type Proc, type Teardown,
} from '../../test/helpers/processes.js'

export { repoRoot, systemPython, type Proc }

/** Cleanups run in reverse order of registration when the scope closes; a failing one does not stop the others. */
export class Scope implements Teardown {
  private readonly cleanups: (() => void | Promise<void>)[] = []

  teardown(fn: () => void | Promise<void>): void {
    this.cleanups.push(fn)
  }

  async close(): Promise<void> {
    for (let fn = this.cleanups.pop(); fn; fn = this.cleanups.pop()) {
      try {
        await fn()
      } catch (e) {
        console.error(`bench: cleanup failed: ${(e as Error).message}`)
      }
    }
  }
}

export async function withScope<T>(body: (scope: Scope) => Promise<T>): Promise<T> {
  const scope = new Scope()
  try {
    return await body(scope)
  } finally {
    await scope.close()
  }
}

const live = new Set<Proc>()
process.on('exit', () => {
  for (const p of live) p.child.kill('SIGKILL')
})

/** Starts a process owned by `scope`. */
export function start(scope: Scope, command: string, args: string[], options: { env?: NodeJS.ProcessEnv } = {}): Proc {
  const proc = startProcess(scope, command, args, options)
  live.add(proc)
  void proc.exited.then(() => live.delete(proc))
  return proc
}

/**
 * Stops every process still running (the suite was interrupted): SIGTERM first, because ipcontroller's scheduler
 * processes outlive a SIGKILLed ipcontroller; whatever is left after `graceMs` is killed when this process exits.
 */
export async function stopAll(graceMs = 3000): Promise<void> {
  const running = [...live]
  for (const p of running) p.child.kill('SIGTERM')
  const deadline = new Promise((resolve) => setTimeout(resolve, graceMs).unref())
  await Promise.race([Promise.all(running.map((p) => p.exited)), deadline])
}

export interface ControllerHandle {
  proc: Proc
  profileDir: string
  clientFile: string
  engineFile: string
}

/** `--cpu-prof` flags for a Node process when profiling was asked for, writing into `dir` under `name`. */
export function profileFlags(dir: string | undefined, name: string): string[] {
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${name}.${Date.now()}.cpuprofile`] : []
}

async function awaitConnectionFiles(proc: Proc, profileDir: string, what: string): Promise<ControllerHandle> {
  const clientFile = join(profileDir, 'security', 'ipcontroller-client.json')
  const engineFile = join(profileDir, 'security', 'ipcontroller-engine.json')
  await waitFor(() => (existsSync(clientFile) && existsSync(engineFile)) || proc.child.exitCode !== null, `${what}'s connection files`, 60_000)
  if (proc.child.exitCode !== null) throw new Error(`${what} exited at start:\n${proc.output()}`)
  return { proc, profileDir, clientFile, engineFile }
}

/** Our controller (`bin/controller.js`) in a fresh profile directory on free loopback ports. */
export async function startOurController(scope: Scope, args: string[] = [], nodeFlags: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<ControllerHandle> {
  const profileDir = join(tempDir(scope, 'jsparallel-bench-'), 'profile_bench')
  const proc = start(scope, process.execPath, [...nodeFlags, binPath('controller'), '--profile-dir', profileDir, '--log-level=warn', ...args], { env })
  return awaitConnectionFiles(proc, profileDir, 'our controller')
}

/** ipyparallel 7.1's `ipcontroller` (Debian's, run by /usr/bin/python3) in a fresh profile directory. */
export async function startIpcontroller(scope: Scope, args: string[] = []): Promise<ControllerHandle> {
  const profileDir = join(tempDir(scope, 'jsparallel-bench-'), 'profile_bench')
  const proc = start(scope, systemPython, ['-m', 'ipyparallel.controller', '--profile-dir', profileDir, '--log-level=40', ...args])
  return awaitConnectionFiles(proc, profileDir, 'ipcontroller')
}

export function startJsEngines(scope: Scope, profileDir: string, n: number, nodeFlags: (i: number) => string[] = () => []): Proc[] {
  return Array.from({ length: n }, (_, i) => start(scope, process.execPath, [...nodeFlags(i), binPath('engine'), '--profile-dir', profileDir, '--log-level=warn']))
}

export function startIpengines(scope: Scope, profileDir: string, n: number): Proc[] {
  return Array.from({ length: n }, () => start(scope, systemPython, ['-m', 'ipyparallel.engine', '--profile-dir', profileDir, '--log-level=40']))
}

/** Resident set size of a process in bytes (`VmRSS` of /proc/<pid>/status). */
export function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (!m) throw new Error(`no VmRSS for process ${pid}`)
  return Number(m[1]) * 1024
}

/** Peak resident set size of a process in bytes (`VmHWM`). */
export function peakRssBytes(pid: number): number {
  const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (!m) throw new Error(`no VmHWM for process ${pid}`)
  return Number(m[1]) * 1024
}

export { waitFor }
