import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The part of tap's Test these helpers use (teardown registration). */
export interface Teardown {
  teardown(fn: () => void | Promise<void>): void
}

export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url))
export const binPath = (name: string): string => join(repoRoot, 'bin', `${name}.js`)
/** Debian's python3 has ipyparallel; the one first on PATH may not. */
export const systemPython = '/usr/bin/python3'

/** A temporary directory removed when the test ends. */
export function tempDir(t: Teardown, prefix = 'jsparallel-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

export interface Proc {
  child: ChildProcess
  pid: number
  /** Everything written to stdout and stderr so far. */
  output(): string
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** Resolves when the output matches, rejects with the output when the ceiling passes or the process exits. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>
}

/**
 * Starts a process and stops it (SIGTERM, then SIGKILL) when the test ends, pass or fail.
 */
export function startProcess(t: Teardown, command: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Proc {
  const child = spawn(command, args, { env: { ...process.env, ...options.env }, cwd: options.cwd ?? repoRoot, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  const listeners = new Set<() => void>()
  const onData = (d: Buffer): void => {
    out += d.toString()
    for (const l of listeners) l()
  }
  child.stdout?.on('data', onData)
  child.stderr?.on('data', onData)
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => {
      resolve({ code, signal })
      for (const l of listeners) l()
    })
  })
  const alive = (): boolean => child.exitCode === null && child.signalCode === null
  const proc: Proc = {
    child,
    pid: child.pid ?? -1,
    output: () => out,
    exited,
    waitForOutput: (pattern, timeoutMs = 30_000) => new Promise((resolve, reject) => {
      const check = (): void => {
        const m = out.match(pattern)
        if (m) done(() => resolve(m))
        else if (!alive()) done(() => reject(new Error(`process ${command} exited before printing ${pattern}; output:\n${out}`)))
      }
      const timer = setTimeout(() => done(() => reject(new Error(`no ${pattern} within ${timeoutMs} ms; output:\n${out}`))), timeoutMs)
      const done = (finish: () => void): void => {
        clearTimeout(timer)
        listeners.delete(check)
        finish()
      }
      listeners.add(check)
      check()
    }),
    stop: async (signal = 'SIGTERM', graceMs = 5000) => {
      if (!alive()) return
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
      child.kill(signal)
      await exited
      clearTimeout(timer)
    },
  }
  t.teardown(() => proc.stop())
  living.add(child)
  void exited.then(() => living.delete(child))
  return proc
}

/** Children still running: if the test process ends before their teardown runs (a tap timeout), they go too. */
const living = new Set<ChildProcess>()
process.on('exit', () => {
  for (const child of living) child.kill('SIGKILL')
})

/** Polls `check` (which may be async) every 20 ms until it is truthy; fails with `what` after the ceiling. */
export async function waitFor<T>(check: () => T | undefined | false | Promise<T | undefined | false>, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** Resident set size of a process in KiB, from /proc. */
export function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (!m) throw new Error(`no VmRSS for ${pid}`)
  return Number(m[1])
}

/**
 * Our controller with a SQLite store and `--ping=250`, in `profileDir`, resolved once it says it is ready: for
 * tests that kill it and start it again there (`--restore`, `--reuse`).
 */
export async function startSqliteController(t: Teardown, profileDir: string, args: string[] = [], logLevel = 'info'): Promise<Proc> {
  const proc = startProcess(t, process.execPath, [binPath('controller'), '--profile-dir', profileDir, '--ping=250', `--log-level=${logLevel}`, '--db=sqlite', ...args])
  await proc.waitForOutput(/controller ready/)
  return proc
}

/** True while a process with this PID exists. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

export interface RunningController {
  proc: Proc
  profileDir: string
  clientFile: string
  engineFile: string
}

/** A controller of ours on free loopback ports in a fresh profile directory. */
export async function startController(t: Teardown, args: string[] = []): Promise<RunningController> {
  const profileDir = join(tempDir(t), 'profile_test')
  const proc = startProcess(t, process.execPath, [binPath('controller'), '--profile-dir', profileDir, '--ping=250', '--log-level=warn', ...args])
  const clientFile = join(profileDir, 'security', 'ipcontroller-client.json')
  const engineFile = join(profileDir, 'security', 'ipcontroller-engine.json')
  await waitFor(() => (existsSync(clientFile) && existsSync(engineFile)) || proc.child.exitCode !== null, 'the controller connection files')
  if (proc.child.exitCode !== null) throw new Error(`controller exited: ${proc.output()}`)
  return { proc, profileDir, clientFile, engineFile }
}

/** One engine of ours for the controller in `profileDir`. */
export function startEngine(t: Teardown, profileDir: string, args: string[] = []): Proc {
  return startProcess(t, process.execPath, [binPath('engine'), '--profile-dir', profileDir, '--log-level=warn', ...args])
}

/** A stock ipyparallel engine (Debian's python3-ipyparallel). */
export function startPythonEngine(t: Teardown, profileDir: string): Proc {
  return startProcess(t, systemPython, ['-m', 'ipyparallel.engine', '--profile-dir', profileDir, '--log-level=30'])
}
