/**
 * What a launcher is: something that starts the controller or engine processes of a cluster somewhere (this
 * machine, hosts over ssh, an MPI job, a batch job) and lets the cluster watch and stop them. The cluster never
 * asks where its processes run; it holds `LaunchedProcess`es. A launcher is chosen by name (`--engines=local`),
 * like a scheduler scheme (`index.ts` keeps the list). docs/launchers.md says which exist.
 */
import type { Logger } from '../../common/log.js'

/** One process a launcher started: where it is and how to end it. */
export interface LaunchedProcess {
  /**
   * The operating system's process id where the launcher knows it: a local child's, or an engine's on its remote
   * `host` (the `ssh` launcher learns it once the remote shell has started); undefined otherwise.
   */
  readonly pid: number | undefined
  /** The host it runs on, for messages; undefined for a child of this process on this machine. */
  readonly host?: string
  /**
   * Why it could not start or ended early, where the launcher can tell better than an exit code (ssh refused,
   * host unknown, the remote `node` missing): for the cluster's error messages.
   */
  readonly failure?: string
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

/**
 * How engines are started beyond their arguments, filled in by the `Cluster` facade (no optional fields). `env`
 * applies to every launcher; the rest to those that start engines on other hosts (`ssh`).
 */
export interface EngineLauncherSettings {
  /** More environment variables for each engine (`--env K=V`). */
  env: Readonly<Record<string, string>>
  /** The ssh command and its options, as separate words (`['ssh', '-i', 'key']`). */
  ssh: readonly string[]
  /** The `node` that runs engines on the remote hosts (a name on their PATH or a path there). */
  node: string
  /** The directory engines run in on the remote hosts; '' means the login directory. */
  path: string
  /** The engine script on the remote hosts (relative to `path` unless absolute). */
  engineScript: string
}

/** How to start one engine: its uuid (so the cluster can tell which registration is which), host and arguments. */
export interface EngineSpec extends LaunchContext {
  uuid: string
  /** Where it runs: a host name or address ('localhost' for this machine). */
  host: string
  args: readonly string[]
  /** Where its stdout and stderr go, on this machine (the ssh launcher copies the remote output here). */
  logFile: string
  settings: EngineLauncherSettings
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
