/**
 * What a launcher is: something that starts the controller or engine processes of a cluster somewhere (this
 * machine, hosts over ssh, an MPI job, a batch job) and lets the cluster watch and stop them. The cluster never
 * asks where its processes run; it holds `LaunchedProcess`es. A launcher is chosen by name (`--engines=local`),
 * like a scheduler scheme (`index.ts` keeps the list). docs/launchers.md says which exist.
 */
import type { Logger } from '../../common/log.js'

/** One process a launcher started: where it is and how to end it. */
export interface LaunchedProcess {
  /** The operating system's process id where the launcher knows it (a local child); undefined otherwise. */
  readonly pid: number | undefined
  /** True once the process has exited (or, for a remote one, once the launcher knows it has). */
  readonly exited: boolean
  /** Called once when the process exits, with its exit code or the signal that ended it. */
  onExit(listener: (code: number | null, signal: NodeJS.Signals | null) => void): void
  /** Sends a signal (where the launcher can; SIGTERM asks the process to stop cleanly). */
  signal(signal: NodeJS.Signals): void
  /** SIGTERM, then SIGKILL after `graceMs` (milliseconds); resolves once it has exited. */
  stop(graceMs: number): Promise<void>
}

/** What every launched process of a cluster shares: its profile, cluster id and log directory. */
export interface LaunchContext {
  profileDir: string
  clusterId: string
  log: Logger
}

/** How to start a controller: the arguments beyond `--profile-dir` and `--cluster-id`. */
export interface ControllerSpec extends LaunchContext {
  args: readonly string[]
  /** Where its stdout and stderr go (a file path on the machine that runs it). */
  logFile: string
}

/** How to start one engine: its uuid (so the cluster can tell which registration is which) and arguments. */
export interface EngineSpec extends LaunchContext {
  uuid: string
  args: readonly string[]
  logFile: string
}

export interface ControllerLauncher {
  readonly name: string
  start(spec: ControllerSpec): Promise<LaunchedProcess>
}

export interface EngineLauncher {
  readonly name: string
  /** Starts one engine per spec, in order; resolves once each has been started (not registered). */
  start(engines: readonly EngineSpec[]): Promise<LaunchedProcess[]>
}
