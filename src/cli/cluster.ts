import { readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs'
import { cpus } from 'node:os'
import { join, resolve } from 'node:path'
import { Command } from 'commander'
import { createLogger } from '../common/log.js'
import { knownTaskSchemes } from '../controller/task-channels.js'
import { SchemeRegistry } from '../schedulers/schemes.js'
import { addProfileOptions, clusterIdOf, intOption, logLevelOf, onTerminate, packageVersion, profileDirOf, type ProfileFlags } from './common.js'
import { LocalCluster } from './local-cluster.js'

interface StartFlags extends ProfileFlags {
  n: number
  scheme?: string
  hwm?: number
  ping?: number
  plugin: string[]
  timeout: number
  curve?: boolean
}

function pidFile(profileDir: string, clusterId: string): string {
  return join(profileDir, 'pid', `cluster${clusterId ? `-${clusterId}` : ''}.pid`)
}

function clusterCommand(env: NodeJS.ProcessEnv): Command {
  const program = new Command('cluster')
    .description('Start or stop a local jsparallel cluster: a controller and N engines.')
    .version(packageVersion(), '-V, --version', 'print the jsparallel version and exit')
  const start = addProfileOptions(new Command('start'))
    .description('Start a controller and N engines in the foreground; Ctrl-C stops them all.')
    .option('-n, --n <count>', 'number of engines (default: number of CPUs)', intOption('-n', 1), cpus().length)
    .option('--scheme <name>', `task scheduler scheme: ${knownTaskSchemes(new SchemeRegistry()).join(', ')}`)
    .option('--hwm <n>', 'most tasks one engine holds at once (0 = unlimited)', intOption('--hwm', 0))
    .option('--ping <ms>', 'heartbeat period in milliseconds', intOption('--ping', 10))
    .option('--plugin <module>', 'a scheme plugin module for the controller (repeatable)', (v: string, all: string[]) => [...all, v], [] as string[])
    .option('--curve', 'the controller encrypts and authenticates with CurveZMQ (see controller --help)')
    .option('--timeout <seconds>', 'how long to wait for the controller and engines to start', intOption('--timeout', 1), 60)
    .action(async (flags: StartFlags) => {
      const log = createLogger('cluster', logLevelOf(flags))
      const profileDir = profileDirOf(flags, env)
      const clusterId = clusterIdOf(flags)
      const controllerArgs = [`--log-level=${flags.logLevel}`]
      if (flags.scheme) controllerArgs.push(`--scheme=${flags.scheme}`)
      if (flags.hwm !== undefined) controllerArgs.push(`--hwm=${flags.hwm}`)
      if (flags.ping !== undefined) controllerArgs.push(`--ping=${flags.ping}`)
      if (flags.curve) controllerArgs.push('--curve')
      for (const plugin of flags.plugin) controllerArgs.push(`--plugin=${resolve(plugin)}`)
      const cluster = new LocalCluster({ n: flags.n, profileDir, clusterId, controllerArgs, engineArgs: [`--log-level=${flags.logLevel}`], timeoutMs: flags.timeout * 1000, log })
      const pid = pidFile(profileDir, clusterId)
      // A signal and the controller's exit it causes both ask to stop: the second waits on the first.
      let stopping: Promise<void> | undefined
      const stop = (): Promise<void> => {
        stopping ??= (async () => {
          log.info('stopping the cluster')
          await cluster.stop()
          rmSync(pid, { force: true })
        })()
        return stopping
      }
      onTerminate(stop)
      try {
        await cluster.start()
      } catch (e) {
        await stop()
        throw e
      }
      mkdirSync(join(profileDir, 'pid'), { recursive: true })
      writeFileSync(pid, String(process.pid))
      log.info(`cluster ready: ${flags.n} engines; connect with new Client({ profileDir: '${profileDir}'${clusterId ? `, clusterId: '${clusterId}'` : ''} })`)
      cluster.controller?.once('exit', () => {
        stop().then(() => process.exit(0), () => process.exit(1))
      })
    })
  const stop = addProfileOptions(new Command('stop'))
    .description('Stop the cluster started with `cluster start` for this profile.')
    .action((flags: ProfileFlags) => {
      const file = pidFile(profileDirOf(flags, env), clusterIdOf(flags))
      let pid: number
      try {
        pid = Number(readFileSync(file, 'utf8'))
      } catch {
        throw new Error(`no cluster is running for this profile (${file} not found)`)
      }
      process.kill(pid, 'SIGINT')
      console.log(`sent SIGINT to cluster ${pid}`)
    })
  return program.addCommand(start).addCommand(stop)
}

export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<void> {
  await clusterCommand(env).parseAsync(argv)
}
