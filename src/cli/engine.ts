import { existsSync } from 'node:fs'
import { Command } from 'commander'
import { ConfigError } from '../common/errors.js'
import { createLogger, type Logger } from '../common/log.js'
import { waitForFiles } from '../common/wait-for-files.js'
import { Engine } from '../engine/engine.js'
import {
  checkConnectionInfo, connectionFilePath, readConnectionFile, ENGINE_KEYS, type EngineConnectionInfo,
} from '../protocol/connection-file.js'
import { addProfileOptions, clusterIdOf, intOption, logLevelOf, onTerminate, packageVersion, profileDirOf, splitForeignOptions, type ProfileFlags } from './common.js'

interface EngineFlags extends ProfileFlags {
  file?: string
  stdinLifeline?: boolean
  mpi?: boolean
  id?: number
  uuid?: string
  timeout: number
}

function engineCommand(): Command {
  const command = new Command('engine')
    .description('Run a jsparallel engine: register with a controller and run JavaScript tasks until shut down.')
    .version(packageVersion(), '-V, --version', 'print the jsparallel version and exit')
    .option('--file <path>', 'engine connection file (default: security/ipcontroller[-<cluster-id>]-engine.json of the profile); - reads its JSON from the first line of stdin')
    .option('--mpi', 'run as one rank of an MPI job: ask for the engine id of its rank (OMPI_COMM_WORLD_RANK, PMI_RANK or PMIX_RANK)')
    .option('--stdin-lifeline', 'stop when stdin closes: whoever started this engine (the ssh launcher) has gone')
    .option('--id <n>', 'engine id to ask the controller for', intOption('--id', 0))
    .option('--uuid <uuid>', 'engine uuid (session id and routing id); default a fresh one')
    .option('--timeout <seconds>', 'how long to wait for the connection file to appear, and for the registration reply', secondsOption, 10)
  return addProfileOptions(command)
}

function secondsOption(value: string): number {
  const n = Number(value)
  if (!Number.isFinite(n) || n <= 0) throw new ConfigError(`--timeout must be a positive number of seconds, got '${value}'`)
  return n
}

/**
 * `engine [options]`: like ipengine. The connection info comes from `--file`, else `$IPP_CONNECTION_INFO`
 * (ipyparallel 8), else the profile's engine file, waited for up to `--timeout` seconds.
 */
export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const command = engineCommand()
  const known = new Set(command.options.map((o) => o.long ?? '').concat(['--help', '--version']))
  const { ours, ignored } = splitForeignOptions(argv.slice(2), (flag) => known.has(flag))
  command.parse(ours, { from: 'user' })
  const flags = command.opts<EngineFlags>()
  const log = createLogger('engine', logLevelOf(flags))
  for (const arg of ignored) log.warn(`ignoring option ${arg}`)
  // ipyparallel 8 launchers pass the profile and cluster id in the environment too.
  if (flags.profileDir === undefined && env.IPP_PROFILE_DIR) flags.profileDir = env.IPP_PROFILE_DIR
  if (command.getOptionValueSource('clusterId') === 'default' && env.IPP_CLUSTER_ID) flags.clusterId = env.IPP_CLUSTER_ID

  if (flags.mpi) flags.id ??= mpiRank(env)
  const timeoutMs = flags.timeout * 1000
  const connection = await loadConnection(flags, env, timeoutMs, log)
  const running: { engine?: Engine } = {}
  if (flags.stdinLifeline) {
    const gone = (): void => {
      log.info('stdin closed: the launcher has gone; stopping')
      if (running.engine) void running.engine.stop()
      else process.exit(0)
    }
    if (process.stdin.readableEnded) gone()
    process.stdin.on('data', () => {})
    process.stdin.once('end', gone)
    process.stdin.resume()
  }
  const engine = (running.engine = await Engine.start({ connection, log, id: flags.id, uuid: flags.uuid, registrationTimeoutMs: timeoutMs }))
  onTerminate(() => engine.stop())
  await engine.closed
  // Losing the controller is a failure for whoever watches this process; a requested stop is not.
  process.exit(engine.stopReason === 'heartbeat' ? 1 : 0)
}

/** This process's MPI rank, from Open MPI's, MPICH's or PMIx's variable. */
function mpiRank(env: NodeJS.ProcessEnv): number {
  const name = ['OMPI_COMM_WORLD_RANK', 'PMI_RANK', 'PMIX_RANK'].find((n) => env[n] !== undefined && env[n] !== '')
  const rank = name === undefined ? NaN : Number(env[name])
  if (name === undefined || !Number.isInteger(rank) || rank < 0) {
    throw new ConfigError(`--mpi: no MPI rank in the environment (OMPI_COMM_WORLD_RANK, PMI_RANK or PMIX_RANK)${name ? `; ${name} is '${env[name]}'` : ''}: run it under mpiexec`)
  }
  return rank
}

/**
 * The first line of stdin. Whatever came after it in the same chunk is dropped: the launchers send nothing more,
 * and `--stdin-lifeline` only waits for stdin to close.
 */
function firstLineOfStdin(timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = ''
    const done = (error: Error | undefined, line = ''): void => {
      clearTimeout(timer)
      process.stdin.off('data', onData)
      process.stdin.off('end', onEnd)
      process.stdin.pause()
      if (error) reject(error)
      else resolve(line)
    }
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('utf8')
      const newline = text.indexOf('\n')
      if (newline >= 0) done(undefined, text.slice(0, newline))
    }
    const onEnd = (): void => (text.trim() === '' ? done(new ConfigError('--file -: stdin ended before it gave the connection info')) : done(undefined, text))
    const timer = setTimeout(() => done(new ConfigError(`--file -: no connection info on stdin within ${timeoutMs / 1000} s`)), timeoutMs)
    process.stdin.on('data', onData)
    process.stdin.once('end', onEnd)
  })
}

async function loadConnection(flags: EngineFlags, env: NodeJS.ProcessEnv, timeoutMs: number, log: Logger): Promise<EngineConnectionInfo> {
  if (flags.file === '-') {
    const line = await firstLineOfStdin(timeoutMs)
    let info: unknown
    try {
      info = JSON.parse(line)
    } catch (e) {
      throw new ConfigError('--file -: the first line of stdin is not the connection file\'s JSON', { cause: e })
    }
    return checkConnectionInfo<EngineConnectionInfo>(info, ENGINE_KEYS, 'stdin')
  }
  if (flags.file === undefined && env.IPP_CONNECTION_INFO) {
    let info: unknown
    try {
      info = JSON.parse(env.IPP_CONNECTION_INFO)
    } catch (e) {
      throw new ConfigError('$IPP_CONNECTION_INFO is not valid JSON', { cause: e })
    }
    return checkConnectionInfo<EngineConnectionInfo>(info, ENGINE_KEYS, '$IPP_CONNECTION_INFO')
  }
  const file = flags.file ?? connectionFilePath(profileDirOf(flags, env), 'engine', clusterIdOf(flags))
  if (!existsSync(file)) {
    log.warn(`connection file ${file} not found; waiting up to ${timeoutMs / 1000} s for it to arrive`)
    if (!(await waitForFiles([file], { timeoutMs }))) throw new ConfigError(`connection file ${file} never arrived (waited ${timeoutMs / 1000} s); is the controller running with this profile?`)
  }
  return readConnectionFile<EngineConnectionInfo>(file, ENGINE_KEYS)
}
