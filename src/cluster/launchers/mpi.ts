/**
 * The `mpi` launcher: one `mpiexec` runs the engines of one `start` call, one application context per engine
 * (`mpiexec --oversubscribe -n 1 node engine.js --mpi --uuid U0 ... : -n 1 node engine.js --mpi --uuid U1 ...`),
 * so each keeps the uuid the cluster knows it by while `engine --mpi` asks the controller for the id of its MPI
 * rank. The engines of a job live and die together (Open MPI ends the job when one rank exits non-zero), so they
 * are stopped together: SIGTERM to `mpiexec`, which passes it on to the ranks.
 *
 * On this machine only for now: remote hosts through mpiexec's own launch (ssh or the batch system) are planned.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream, mkdirSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type { EngineLauncher, EngineSpec, LaunchedProcess } from './launcher.js'
import { localEngineScript } from './local.js'

/** What an Open MPI run as root prints, and what to do about it. */
const ROOT_REFUSAL = /attempt to run as root/
const ROOT_ADVICE = 'mpiexec refuses to run as root without Open MPI\'s opt-in: set OMPI_ALLOW_RUN_AS_ROOT=1 and OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 (--env or the environment)'

/** The mpiexec argv for these engines: one application context each. */
export function mpiexecArgs(engines: readonly EngineSpec[], node: string, engineScript: string): string[] {
  const contexts = engines.map((e) => ['-n', '1', node, engineScript, '--mpi', '--profile-dir', e.profileDir, '--cluster-id', e.clusterId, '--uuid', e.uuid, ...e.args])
  return ['--oversubscribe', ...contexts.flatMap((c, i) => (i === 0 ? c : [':', ...c]))]
}

/** The children of a process (Linux's /proc/PID/task/TID/children), or none where that cannot be read. */
function childrenOf(pid: number | undefined): number[] {
  if (pid === undefined) return []
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((tid) => readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/).filter((p) => p !== '').map(Number))
  } catch {
    return []
  }
}

/** Running, not a zombie. */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

/** Resolves once none of `pids` runs, SIGKILLing those left after `graceMs`. */
async function ranksGone(pids: number[], graceMs: number): Promise<void> {
  const deadline = Date.now() + graceMs
  while (pids.some(running) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  for (const pid of pids.filter(running)) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // gone meanwhile
    }
  }
}

/** One `mpiexec` and the engines it runs. */
class MpiJob {
  failure: string | undefined
  ended: { code: number | null; signal: NodeJS.Signals | null } | undefined
  readonly listeners: ((code: number | null, signal: NodeJS.Signals | null) => void)[] = []
  private stopping: Promise<void> | undefined
  private readonly stderrTail: string[] = []
  private refusedRoot = false

  constructor(readonly child: ChildProcess, logFile: string) {
    mkdirSync(dirname(logFile), { recursive: true })
    const log = createWriteStream(logFile, { flags: 'a' })
    child.stdout?.on('data', (chunk: Buffer) => log.write(chunk))
    child.stderr?.on('data', (chunk: Buffer) => {
      log.write(chunk)
      const text = chunk.toString('utf8')
      if (ROOT_REFUSAL.test(text)) this.refusedRoot = true
      this.stderrTail.push(...text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !/^-+$/.test(l)))
      this.stderrTail.splice(0, Math.max(0, this.stderrTail.length - 5))
    })
    child.once('error', (e) => {
      this.failure = `cannot run mpiexec: ${e.message}`
      this.finish(127, null)
      log.end()
    })
    child.once('close', (code, signal) => {
      if (this.ended) return
      const said = this.stderrTail.at(-1)
      this.failure = this.refusedRoot ? ROOT_ADVICE : `mpiexec exited (${signal ? `signal ${signal}` : `code ${code}`})${said ? `: ${said}` : ''}`
      this.finish(code, signal)
      log.end()
    })
  }

  stop(graceMs: number): Promise<void> {
    if (this.ended) return Promise.resolve()
    // mpiexec passes SIGTERM on to its ranks; stop resolves once they are gone too, not only mpiexec.
    const ranks = childrenOf(this.child.pid)
    this.stopping ??= new Promise((resolve) => {
      const began = Date.now()
      const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs)
      this.listeners.push(() => {
        clearTimeout(timer)
        void ranksGone(ranks, Math.max(0, graceMs - (Date.now() - began))).then(resolve)
      })
      this.child.kill('SIGTERM')
    })
    return this.stopping
  }

  private finish(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.ended) return
    this.ended = { code, signal }
    for (const listener of this.listeners.splice(0)) listener(code, signal)
  }
}

/** One engine of a job: its life is the job's. */
class MpiEngine implements LaunchedProcess {
  stopRequested = false
  constructor(private readonly job: MpiJob, private readonly siblings: MpiEngine[]) {}

  get pid(): number | undefined {
    return undefined
  }

  get failure(): string | undefined {
    return this.job.failure
  }

  get exited(): boolean {
    return this.job.ended !== undefined
  }

  onExit(listener: (code: number | null, signal: NodeJS.Signals | null) => void): void {
    if (this.job.ended) listener(this.job.ended.code, this.job.ended.signal)
    else this.job.listeners.push(listener)
  }

  signal(signal: NodeJS.Signals): void {
    // mpiexec passes a signal on to every rank: one engine cannot be singled out.
    if (!this.exited) this.job.child.kill(signal)
  }

  /** Stops the job once every engine of it has been asked to stop in the same turn (as the cluster's stop does). */
  stop(graceMs: number): Promise<void> {
    this.stopRequested = true
    if (this.exited) return Promise.resolve()
    return new Promise((resolve, reject) => {
      setImmediate(() => {
        if (this.siblings.every((e) => e.stopRequested)) {
          this.job.stop(graceMs).then(resolve, reject)
          return
        }
        this.stopRequested = false
        reject(new Error('the mpi launcher stops the engines of one mpiexec together: stop the cluster, or all of them'))
      })
    })
  }
}

export const mpiEngineLauncher: EngineLauncher = {
  name: 'mpi',
  start(engines: readonly EngineSpec[]): Promise<LaunchedProcess[]> {
    const first = engines[0]
    if (first === undefined) return Promise.resolve([])
    const child = spawn('mpiexec', mpiexecArgs(engines, process.execPath, localEngineScript), {
      stdio: ['ignore', 'pipe', 'pipe'],
      // This process's environment goes on, as spawn's default would pass it, with the cluster's additions.
      env: Object.keys(first.settings.env).length === 0 ? undefined : { ...process.env, ...first.settings.env },
    })
    const job = new MpiJob(child, join(dirname(first.logFile), `mpiexec-${first.logFile.replace(/^.*\//, '')}`))
    const siblings: MpiEngine[] = []
    for (let i = 0; i < engines.length; i++) siblings.push(new MpiEngine(job, siblings))
    return Promise.resolve(siblings)
  },
}
