import { readFileSync } from 'node:fs'
import { Option, type Command } from 'commander'
import { parseLogLevel, type LogLevel } from '../common/log.js'
import { resolveProfileDir } from '../protocol/connection-file.js'

/** Options every command shares: which profile, which cluster, how much to log. */
export interface ProfileFlags {
  profile: string
  profileDir?: string
  ipythonDir?: string
  clusterId?: string | boolean
  logLevel: string
}

export function addProfileOptions(command: Command): Command {
  return command
    .option('--profile <name>', 'profile name; its directory is <base>/profile_<name>', 'default')
    .option('--profile-dir <dir>', 'profile directory (overrides --profile and --ipython-dir)')
    .option('--ipython-dir <dir>', 'base directory of profiles (default $IPYTHONDIR, else ~/.jsparallel)')
    .addOption(new Option('--cluster-id [id]', 'cluster id, part of the connection file names').default(''))
    .option('--log-level <level>', 'debug, info, warn, error, or 10-50 as in ipyparallel', 'info')
}

export function profileDirOf(flags: ProfileFlags, env: NodeJS.ProcessEnv): string {
  return resolveProfileDir({ profile: flags.profile, profileDir: flags.profileDir, ipythonDir: flags.ipythonDir }, { IPYTHONDIR: env.IPYTHONDIR })
}

/** `--cluster-id` given with no value means the empty id, as ipcluster passes it. */
export function clusterIdOf(flags: ProfileFlags): string {
  return typeof flags.clusterId === 'string' ? flags.clusterId : ''
}

export function logLevelOf(flags: ProfileFlags): LogLevel {
  return parseLogLevel(flags.logLevel)
}

/** Parses a whole number option, naming the option in the error. */
export function intOption(name: string, min: number): (value: string) => number {
  return (value) => {
    const n = Number(value)
    if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be a whole number >= ${min}, got '${value}'`)
    return n
  }
}

/**
 * ipyparallel passes `--Class.trait=value` options and `--flag` switches that mean nothing here; they are
 * accepted and reported rather than refused, so ipcluster and the test suite can start us unchanged.
 */
export function splitForeignOptions(argv: string[], known: (arg: string) => boolean): { ours: string[]; ignored: string[] } {
  const ours: string[] = []
  const ignored: string[] = []
  for (const arg of argv) {
    if (/^--[A-Z][A-Za-z0-9_]*\.[A-Za-z0-9_]+(=.*)?$/.test(arg) || (arg.startsWith('--') && !known(arg.split('=')[0] as string))) ignored.push(arg)
    else ours.push(arg)
  }
  return { ours, ignored }
}

/** Runs `stop` once on SIGINT/SIGTERM, then exits; a second signal exits at once. */
export function onTerminate(stop: () => Promise<void>, exit: (code: number) => void = (c) => process.exit(c)): void {
  let stopping = false
  const handler = (): void => {
    if (stopping) return exit(130)
    stopping = true
    stop().then(() => exit(0), () => exit(1))
  }
  process.on('SIGINT', handler)
  process.on('SIGTERM', handler)
}

/** The version in jsparallel's package.json, three levels above this file's compiled form (dist/src/cli/). */
export function packageVersion(): string {
  const { version } = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }
  return version
}
