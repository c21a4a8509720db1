import { hostname } from 'node:os'
import { ConfigError } from '../common/errors.js'
import { createLogger, type Logger } from '../common/log.js'
import { SchemeRegistry, type Scheme } from '../schedulers/schemes.js'
import { taskChannelOf, type TaskChannelFactory } from './task-channels.js'

export interface ControllerOptions {
  /** Profile directory: connection files go to its `security/`. */
  profileDir: string
  /** Becomes part of the connection file names when non-empty. Default ''. */
  clusterId?: string
  /** Address to bind. Default 127.0.0.1. */
  ip?: string
  /** Host name written to the connection files for peers on other machines. Default: this host's name. */
  location?: string
  /** Heartbeat period in ms (`--ping`). Default 3000. */
  pingMs?: number
  /** Heartbeats an engine may miss in a row before it is declared dead. Default 10. */
  maxHeartbeatMisses?: number
  /** Load-balancing scheme name: a scheme's, or `pure` (a native device, no scheduler). Default leastload. */
  scheme?: string
  /** Schemes of your own (a plugin's), by the name `scheme` may give, besides the built-in ones. */
  schemes?: Readonly<Record<string, Scheme>>
  /** Most tasks one engine holds at once; 0 = unlimited. Default 1. */
  hwm?: number
  /** HMAC key; default a fresh random one. */
  key?: string
  /** Registration port (`--port`); default a free one. */
  registrationPort?: number
  /** Ports to bind, taken in order (registration first, unless `registrationPort` names it); then free ones. */
  ports?: number[]
  /** How long a registered engine has to show a heartbeat. Default max(30 s, 5 periods). */
  registrationTimeoutMs?: number
  /** How long to wait for late replies from a dead engine before failing its tasks. Default 1000 ms. */
  strandedGraceMs?: number
  /** Engine deaths under one task before it fails with PoisonTask, whatever its retries. Default 3. */
  maxEngineDeaths?: number
  /**
   * Where task records go: `memory` (default; ipyparallel's DictDB limits and culling), `sqlite` (the profile's
   * `tasks.db`), `sqlite:<path>`, or `none` (keep nothing, like `--nodb`).
   */
  db?: string
  /** Bind the ports and use the key of the connection files a previous controller left, and keep them on exit. */
  reuse?: boolean
  /**
   * Take over from a controller that died: implies `reuse`, registers the engines of its state file at once,
   * and (with a SQLite store) serves its task records.
   */
  restore?: boolean
  /**
   * CurveZMQ: every channel encrypts, and accepts only peers that know the controller's public key (the connection
   * files' `curve_serverkey`). Default false. Stock ipyparallel 7.1 peers cannot connect to such a controller.
   */
  curve?: boolean
  /** Signatures remembered to refuse replayed messages (ipyparallel's `Session.digest_history_size`). Default 65,536. */
  digestHistorySize?: number
  log?: Logger
  random?: () => number
}

/** The options with every default filled in, checked, and the task channel chosen. */
export type FilledOptions = Required<Omit<ControllerOptions, 'registrationPort' | 'key' | 'schemes'>> & {
  registrationPort: number
  key: string | undefined
  taskChannel: TaskChannelFactory
}

/** Checks the options, naming the option and the rule, and fills in the defaults. */
export function fillOptions(options: ControllerOptions): FilledOptions {
  const pingMs = options.pingMs ?? 3000
  if (!Number.isFinite(pingMs) || pingMs < 10) throw new ConfigError(`pingMs must be a number of milliseconds >= 10, got ${pingMs}`)
  const hwm = options.hwm ?? 1
  if (!Number.isInteger(hwm) || hwm < 0) throw new ConfigError(`hwm must be a whole number >= 0 (0 = unlimited), got ${hwm}`)
  const scheme = options.scheme ?? 'leastload'
  const schemes = new SchemeRegistry(options.schemes)
  const taskChannel = taskChannelOf(scheme, schemes)
  const digestHistorySize = options.digestHistorySize ?? 65_536
  if (!Number.isInteger(digestHistorySize) || digestHistorySize < 16) throw new ConfigError(`digestHistorySize must be a whole number >= 16, got ${digestHistorySize}`)
  return {
    profileDir: options.profileDir,
    clusterId: options.clusterId ?? '',
    ip: options.ip ?? '127.0.0.1',
    location: options.location ?? hostname(),
    pingMs,
    maxHeartbeatMisses: options.maxHeartbeatMisses ?? 10,
    scheme,
    taskChannel,
    hwm,
    key: options.key,
    registrationPort: options.registrationPort ?? 0,
    ports: options.ports ?? [],
    registrationTimeoutMs: options.registrationTimeoutMs ?? Math.max(30_000, 5 * pingMs),
    strandedGraceMs: options.strandedGraceMs ?? 1000,
    maxEngineDeaths: options.maxEngineDeaths ?? 3,
    db: options.db ?? 'memory',
    reuse: options.reuse === true || options.restore === true,
    restore: options.restore === true,
    curve: options.curve === true,
    digestHistorySize,
    log: options.log ?? createLogger('controller'),
    random: options.random ?? Math.random,
  }
}
