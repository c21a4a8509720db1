import { mkdirSync, readFileSync, rmSync, existsSync } from 'node:fs'
import { homedir, hostname, networkInterfaces } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { writeFileAtomicSync } from '../common/atomic-file.js'
import { ConfigError } from '../common/errors.js'

/** Common keys of both connection files (docs/wire-protocol.md, 'Connection files'). */
interface ConnectionBase {
  ssh: string
  interface: string
  registration: number
  control: number
  mux: number
  task: number
  iopub: number
  key: string
  curve_serverkey: string | null
  location: string
  pack: string
  unpack: string
  signature_scheme: string
}

export interface ClientConnectionInfo extends ConnectionBase {
  task_scheme: string
  notification: number
  broadcast: number
}

export interface EngineConnectionInfo extends ConnectionBase {
  hb_ping: number
  hb_pong: number
  broadcast: number[]
}

export interface ProfileOptions {
  /** Profile name (default `default`). */
  profile?: string
  /** An explicit profile directory; wins over profile and ipythonDir. */
  profileDir?: string
  /** Base directory holding `profile_<name>` directories. */
  ipythonDir?: string
  /** Optional cluster id, which becomes part of the connection file names. */
  clusterId?: string
}

/**
 * The profile directory: `profileDir`, else `<base>/profile_<name>` where base is `ipythonDir`, then
 * `$IPYTHONDIR` (passed in `env`), then `~/.jsparallel`.
 */
export function resolveProfileDir(options: ProfileOptions, env: { IPYTHONDIR?: string | undefined } = {}): string {
  if (options.profileDir) return resolve(options.profileDir)
  const base = options.ipythonDir ?? env.IPYTHONDIR ?? join(homedir(), '.jsparallel')
  return resolve(base, `profile_${options.profile ?? 'default'}`)
}

/** Creates `security/` and `pid/` (0700), `log/` and `startup/` as IPython's ProfileDir does. */
export function ensureProfileDir(profileDir: string): void {
  for (const [sub, mode] of [['security', 0o700], ['pid', 0o700], ['log', 0o755], ['startup', 0o755]] as const) {
    mkdirSync(join(profileDir, sub), { recursive: true, mode })
  }
}

export function connectionFilePath(profileDir: string, kind: 'client' | 'engine', clusterId?: string): string {
  const name = clusterId ? `ipcontroller-${clusterId}-${kind}.json` : `ipcontroller-${kind}.json`
  return join(profileDir, 'security', name)
}

/** Writes JSON to `path` with mode 0600, atomically. */
export function writeConnectionFile(path: string, info: ClientConnectionInfo | EngineConnectionInfo): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
  writeFileAtomicSync(path, JSON.stringify(info, null, 2), { mode: 0o600 })
}

export function removeConnectionFile(path: string): void {
  rmSync(path, { force: true })
}

/** Reads and checks a connection file; the error names the file and the missing key. */
export function readConnectionFile<T extends ClientConnectionInfo | EngineConnectionInfo>(path: string, required: readonly (keyof T)[]): T {
  if (!existsSync(path)) throw new ConfigError(`connection file ${path} does not exist; is the controller running with this profile?`)
  let info: unknown
  try {
    info = JSON.parse(readFileSync(path, 'utf8'))
  } catch (e) {
    throw new ConfigError(`connection file ${path} is not valid JSON`, { cause: e })
  }
  return checkConnectionInfo<T>(info, required, path)
}

export function checkConnectionInfo<T>(info: unknown, required: readonly (keyof T)[], where = 'connection info'): T {
  if (info === null || typeof info !== 'object') throw new ConfigError(`${where} is not a JSON object`)
  for (const key of required) {
    if (!(key in info)) throw new ConfigError(`${where} lacks the key '${String(key)}'`)
  }
  const scheme = (info as { signature_scheme?: unknown }).signature_scheme
  if (scheme !== undefined && scheme !== 'hmac-sha256') throw new ConfigError(`${where}: signature_scheme ${JSON.stringify(scheme)} is not supported (only hmac-sha256)`)
  const serverKey = (info as { curve_serverkey?: unknown }).curve_serverkey
  if (serverKey !== undefined && serverKey !== null && serverKey !== '' && !isCurveKey(serverKey)) {
    throw new ConfigError(`${where}: curve_serverkey must be a CurveZMQ public key (40 characters of Z85) or null`)
  }
  const packer = (info as { pack?: unknown }).pack
  if (packer !== undefined && packer !== 'json') throw new ConfigError(`${where}: pack ${JSON.stringify(packer)} is not supported (only json)`)
  return info as T
}

/** Z85 as ZeroMQ writes a 32-byte CurveZMQ key: 40 characters of its 85-letter alphabet. */
export function isCurveKey(value: unknown): value is string {
  return typeof value === 'string' && /^[0-9a-zA-Z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/.test(value)
}

export const CLIENT_KEYS = ['interface', 'registration', 'control', 'mux', 'task', 'iopub', 'notification', 'key'] as const
export const ENGINE_KEYS = ['interface', 'registration', 'control', 'mux', 'task', 'iopub', 'hb_ping', 'hb_pong', 'key'] as const

/**
 * `tcp://127.0.0.1` + port → `tcp://127.0.0.1:port`; ipc uses `-`. A wildcard interface (`0.0.0.0`, `*`) is not
 * connectable: as in ipyparallel, the file's `location` is used instead when it names another machine, and
 * loopback when it is empty or names this one.
 */
export function channelUrl(iface: string, port: number, location?: string | null): string {
  const wildcard = /^(\w+):\/\/(0\.0\.0\.0|\*)$/.exec(iface)
  const fixed = wildcard ? `${wildcard[1]}://${isThisMachine(location) ? '127.0.0.1' : location}` : iface
  return fixed.startsWith('ipc://') ? `${fixed}-${port}` : `${fixed}:${port}`
}

function isThisMachine(location: string | null | undefined): boolean {
  if (!location || location === hostname() || location === 'localhost') return true
  return Object.values(networkInterfaces()).some((list) => (list ?? []).some((a) => a.address === location))
}
