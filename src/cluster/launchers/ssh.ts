/**
 * The `ssh` launcher: each engine is `ssh host 'cd DIR && exec env K=V node engine.js --file - --stdin-lifeline ...'`,
 * run from this machine. No shared filesystem is assumed: the engine connection file's JSON goes down the ssh
 * session's stdin as its first line, and the engine's output comes back up into its log file here.
 *
 * Stopping is tied to the session, because killing a local `ssh` client does not end the remote command (no TTY,
 * no SIGHUP; reference §3.3): the engine runs with `--stdin-lifeline` and stops when its stdin closes, which
 * happens when this side ends the session's stdin (`stop`), when the ssh client dies, or when this process dies
 * without stopping anything (its pipe to the ssh client closes). As a last resort, `stop` kills the remote pid
 * over a second ssh connection: the remote shell prints `jsparallel-pid $$` before it execs the engine.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream, mkdirSync, readFileSync, type WriteStream } from 'node:fs'
import { dirname } from 'node:path'
import { connectionFilePath } from '../../protocol/connection-file.js'
import type { EngineLauncher, EngineLauncherSettings, EngineSpec, LaunchedProcess } from './launcher.js'

/** Options added after the user's (ssh keeps the first value it sees, so the user's win). */
const DEFAULT_SSH_OPTIONS = ['-o', 'BatchMode=yes', '-o', 'ConnectTimeout=15', '-T']
/** How long a `kill` sent over a second ssh connection may take before it is given up. */
const REMOTE_KILL_TIMEOUT_MS = 20_000
const PID_LINE = /^jsparallel-pid (\d+)$/

/** Quotes a word for a POSIX shell: single quotes, with embedded ones closed, escaped and reopened. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`
}

/** The command line the remote shell runs for one engine. */
export function remoteEngineCommand(settings: EngineLauncherSettings, args: readonly string[]): string {
  const env = Object.entries(settings.env).map(([k, v]) => shellQuote(`${k}=${v}`))
  const engine = ['exec', 'env', ...env, shellQuote(settings.node), shellQuote(settings.engineScript), '--file', '-', '--stdin-lifeline', ...args.map(shellQuote)]
  const cd = settings.path === '' ? '' : `cd ${shellQuote(settings.path)} && `
  return `echo jsparallel-pid $$; ${cd}${engine.join(' ')}`
}

/** The ssh command's argv for running `command` on `host`. */
export function sshArgv(settings: EngineLauncherSettings, host: string, command: string): { file: string; args: string[] } {
  const [file, ...options] = settings.ssh
  if (file === undefined || file === '') throw new Error('the ssh command is empty')
  if (host.startsWith('-')) throw new Error(`'${host}' is not a host name: ssh would take it for an option`)
  return { file, args: [...options, ...DEFAULT_SSH_OPTIONS, host, command] }
}

class SshProcess implements LaunchedProcess {
  failure: string | undefined
  private remotePid: number | undefined
  private ended: { code: number | null; signal: NodeJS.Signals | null } | undefined
  private readonly listeners: ((code: number | null, signal: NodeJS.Signals | null) => void)[] = []
  /** The last lines of stderr: ssh's own complaints land there, and the remote shell's. */
  private readonly stderrTail: string[] = []

  constructor(readonly host: string, private readonly child: ChildProcess, private readonly settings: EngineLauncherSettings, log: WriteStream) {
    let pending = ''
    child.stdout?.on('data', (chunk: Buffer) => {
      if (this.remotePid !== undefined) return void log.write(chunk)
      pending += chunk.toString('utf8')
      const newline = pending.indexOf('\n')
      if (newline < 0) return
      const match = PID_LINE.exec(pending.slice(0, newline))
      if (match) this.remotePid = Number(match[1])
      log.write(match ? pending.slice(newline + 1) : pending)
      // Without the line (a login banner?) the pid stays unknown; stop() then relies on the session alone.
      this.remotePid ??= -1
    })
    child.stderr?.on('data', (chunk: Buffer) => {
      log.write(chunk)
      this.stderrTail.push(...chunk.toString('utf8').split('\n').map((l) => l.trim()).filter((l) => l !== ''))
      this.stderrTail.splice(0, Math.max(0, this.stderrTail.length - 5))
    })
    // A closed session makes writes fail with EPIPE; the exit says what happened.
    child.stdin?.on('error', () => {})
    child.once('error', (e) => {
      if (this.exited) return
      this.failure = `cannot run the ssh command '${settings.ssh[0] ?? ''}' for host ${host}: ${e.message}`
      this.finish(127, null)
      log.end()
    })
    child.once('close', (code, signal) => {
      if (this.exited) return
      this.failure = this.describeExit(code, signal)
      this.finish(code, signal)
      log.end()
    })
  }

  get pid(): number | undefined {
    return this.remotePid === undefined || this.remotePid < 0 ? undefined : this.remotePid
  }

  get exited(): boolean {
    return this.ended !== undefined
  }

  onExit(listener: (code: number | null, signal: NodeJS.Signals | null) => void): void {
    if (this.ended) listener(this.ended.code, this.ended.signal)
    else this.listeners.push(listener)
  }

  signal(signal: NodeJS.Signals): void {
    if (this.exited) return
    if (this.pid !== undefined) void this.remoteKill(signal)
    // Before the remote pid is known, the session is all there is: ending it ends the engine.
    else if (signal === 'SIGTERM' || signal === 'SIGINT' || signal === 'SIGKILL') this.child.stdin?.end()
  }

  /** Ends the session's stdin (the engine stops cleanly); after `graceMs`, kills the remote pid and the ssh client. */
  stop(graceMs: number): Promise<void> {
    if (this.exited) return Promise.resolve()
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        void (this.pid === undefined ? Promise.resolve() : this.remoteKill('SIGKILL')).then(() => {
          if (!this.exited) this.child.kill('SIGKILL')
        })
      }, graceMs)
      this.onExit(() => {
        clearTimeout(timer)
        resolve()
      })
      this.child.stdin?.end()
    })
  }

  /** `kill -SIG pid` on the engine's host over a second ssh connection; resolves when that ssh ends (or gives up). */
  private remoteKill(signal: NodeJS.Signals): Promise<void> {
    const { file, args } = sshArgv(this.settings, this.host, `kill -${signal.replace(/^SIG/, '')} ${this.pid ?? ''}`)
    return new Promise((resolve) => {
      const kill = spawn(file, args, { stdio: 'ignore' })
      const timer = setTimeout(() => kill.kill('SIGKILL'), REMOTE_KILL_TIMEOUT_MS)
      const done = (): void => {
        clearTimeout(timer)
        resolve()
      }
      kill.once('error', done)
      kill.once('close', done)
    })
  }

  private describeExit(code: number | null, signal: NodeJS.Signals | null): string {
    const said = this.stderrTail.at(-1)
    // ssh exits with 255 for its own errors: refused, unknown host, no route, authentication.
    if (code === 255) return `ssh to ${this.host} failed: ${said ?? 'exit code 255'}`
    const how = signal ? `signal ${signal}` : `code ${code}`
    return `the engine on ${this.host} exited (${how})${said ? `: ${said}` : ''}`
  }

  private finish(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.ended) return
    this.ended = { code, signal }
    for (const listener of this.listeners.splice(0)) listener(code, signal)
  }
}

export const sshEngineLauncher: EngineLauncher = {
  name: 'ssh',
  start(engines: readonly EngineSpec[]): Promise<LaunchedProcess[]> {
    const infos = new Map<string, string>()
    return Promise.resolve(engines.map((spec) => {
      const file = connectionFilePath(spec.profileDir, 'engine', spec.clusterId)
      let info = infos.get(file)
      if (info === undefined) {
        // One line: the engine reads its stdin up to the first newline.
        info = JSON.stringify(JSON.parse(readFileSync(file, 'utf8')))
        infos.set(file, info)
      }
      const { file: ssh, args } = sshArgv(spec.settings, spec.host, remoteEngineCommand(spec.settings, ['--uuid', spec.uuid, ...spec.args]))
      mkdirSync(dirname(spec.logFile), { recursive: true })
      const log = createWriteStream(spec.logFile, { flags: 'a' })
      const child = spawn(ssh, args, { stdio: ['pipe', 'pipe', 'pipe'] })
      const launched = new SshProcess(spec.host, child, spec.settings, log)
      child.stdin.write(`${info}\n`)
      return launched
    }))
  },
}
