import { Command, Option } from 'commander'
import { createLogger } from '../common/log.js'
import { Controller } from '../controller/controller.js'
import { SchemeRegistry, type Scheme } from '../schedulers/schemes.js'
import { knownTaskSchemes } from '../controller/task-channels.js'
import { loadSchemePlugin } from './plugins.js'
import { addProfileOptions, clusterIdOf, intOption, logLevelOf, onTerminate, packageVersion, profileDirOf, splitForeignOptions, type ProfileFlags } from './common.js'

interface ControllerFlags extends ProfileFlags {
  ip: string
  location?: string
  port?: number
  ports: number[]
  ping: number
  scheme: string
  hwm: number
  plugin: string[]
  db?: string
  dictdb?: boolean
  sqlitedb?: boolean
  nodb?: boolean
  reuse?: boolean
  restore?: boolean
  curve?: boolean
  digestHistorySize: number
}

/** Flags ipyparallel's controller takes that are accepted and have no effect here (yet). */
const tolerated = ['--mongodb', '--usethreads', '--log-to-file', '--debug', '--transport', '--secure', '--no-secure']

function controllerCommand(): Command {
  const command = new Command('controller')
    .description('Run a jsparallel controller (hub, task scheduler and relays) until interrupted.')
    .version(packageVersion(), '-V, --version', 'print the jsparallel version and exit')
    .option('--ip <address>', 'address to bind', '127.0.0.1')
    .option('--location <host>', 'host name written into the connection files')
    .option('--port <port>', 'registration port (default: a free one)', intOption('--port', 1))
    .option('--ports <list>', 'ports to bind, in order, e.g. 10101-10116 or 10101,10105-10110 (free ones after that)', portList, [] as number[])
    .option('--ping <ms>', 'heartbeat period in milliseconds', intOption('--ping', 10), 3000)
    .addOption(new Option('--scheme <name>', `task scheduler scheme: ${knownTaskSchemes(new SchemeRegistry()).join(', ')}`).default('leastload'))
    .option('--hwm <n>', 'most tasks one engine holds at once (0 = unlimited)', intOption('--hwm', 0), 1)
    .option('--db <store>', 'task records: memory (ipyparallel DictDB limits), sqlite (<profile>/tasks.db), sqlite:<path>, or none')
    .option('--dictdb', 'same as --db=memory (ipyparallel flag)')
    .option('--sqlitedb', 'same as --db=sqlite (ipyparallel flag)')
    .option('--nodb', 'same as --db=none (ipyparallel flag)')
    .option('--reuse', 'bind the ports and use the key of the connection files a previous controller left')
    .option('--restore', 'take over from a controller that died: implies --reuse; its engines and (with sqlite) task records come back')
    .option('--curve', 'encrypt and authenticate every channel with CurveZMQ: only peers given the connection files (which carry the public curve_serverkey) can connect; JS clients and engines only, stock ipyparallel 7.1 ones cannot')
    .option('--digest-history-size <n>', 'signatures remembered to refuse a replayed message (ipyparallel\'s Session.digest_history_size)', intOption('--digest-history-size', 16), 65_536)
    .option('--plugin <module>', 'a module whose default export is { name: scheme } to add schemes (repeatable)', (v: string, all: string[]) => [...all, v], [] as string[])
  return addProfileOptions(command)
}

/** ipyparallel's port list: comma-separated ports and inclusive ranges; repeating the option adds to the list. */
function portList(value: string, earlier: number[]): number[] {
  const ports = value.split(',').flatMap((part) => {
    const [start, end] = part.split('-').map((x) => Number(x.trim()))
    const valid = (n: number | undefined): n is number => n !== undefined && Number.isInteger(n) && n >= 1 && n <= 65535
    if (!valid(start) || (end !== undefined && (!valid(end) || end < start)) || part.split('-').length > 2) {
      throw new Error(`--ports: '${part}' is not a port (1-65535) or a range like 10101-10120`)
    }
    return end === undefined ? [start] : Array.from({ length: end - start + 1 }, (_, i) => start + i)
  })
  return [...earlier, ...ports]
}

/** The task store the flags ask for; --db wins over ipyparallel's spellings. */
function storeOf(flags: ControllerFlags): string {
  if (flags.db !== undefined) return flags.db
  if (flags.sqlitedb) return 'sqlite'
  if (flags.nodb) return 'none'
  return 'memory'
}

export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const command = controllerCommand()
  const known = new Set(command.options.map((o) => o.long ?? '').concat(['--help', '--version']))
  // ipcontroller's spelling of the one Session trait we honour.
  const args = argv.slice(2).map((a) => a.replace(/^--Session\.digest_history_size=/, '--digest-history-size='))
  const { ours, ignored } = splitForeignOptions(args, (flag) => known.has(flag))
  command.parse(ours, { from: 'user' })
  const flags = command.opts<ControllerFlags>()
  const log = createLogger('controller', logLevelOf(flags))
  for (const arg of ignored) {
    if (!tolerated.includes(arg.split('=')[0] as string)) log.warn(`ignoring option ${arg}`)
  }
  let schemes: Record<string, Scheme> = {}
  for (const plugin of flags.plugin) schemes = { ...schemes, ...(await loadSchemePlugin(plugin, process.cwd())) }
  const controller = await Controller.start({
    profileDir: profileDirOf(flags, env),
    clusterId: clusterIdOf(flags),
    ip: flags.ip,
    location: flags.location,
    registrationPort: flags.port,
    ports: flags.ports,
    pingMs: flags.ping,
    scheme: flags.scheme,
    schemes,
    hwm: flags.hwm,
    db: storeOf(flags),
    reuse: flags.reuse === true,
    restore: flags.restore === true,
    curve: flags.curve === true,
    digestHistorySize: flags.digestHistorySize,
    log,
  })
  const stop = async (): Promise<void> => {
    log.info('stopping')
    await controller.stop()
  }
  onTerminate(stop)
  // Asked for by whoever runs it, so printed at any log level.
  process.on('SIGUSR2', () => process.stderr.write(`${new Date().toISOString()} [controller] ${controller.statusLine()}\n`))
  controller.onShutdownRequest(() => {
    stop().then(() => process.exit(0), () => process.exit(1))
  })
}
