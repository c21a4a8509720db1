/**
 * The launchers a cluster can use, by name, as `--engines=<name>` and `--controller=<name>` choose them. One
 * small module each behind the interfaces of `launcher.ts`; a new launcher is one more module and one more entry
 * here. Those the project plans but has not built are named, so that asking for one says so instead of "unknown".
 */
import { ConfigError } from '../../common/errors.js'
import type { ControllerLauncher, EngineLauncher } from './launcher.js'
import { localControllerLauncher, localEngineLauncher } from './local.js'
import { mpiEngineLauncher } from './mpi.js'
import { sshEngineLauncher } from './ssh.js'

const engineLaunchers: Readonly<Record<string, EngineLauncher>> = { local: localEngineLauncher, ssh: sshEngineLauncher, mpi: mpiEngineLauncher }
const controllerLaunchers: Readonly<Record<string, ControllerLauncher>> = { local: localControllerLauncher }

/** Engine launchers of issue 19 that are not built yet (docs/launchers.md). */
export const plannedLaunchers: readonly string[] = ['slurm', 'sge', 'pbs', 'lsf', 'htcondor']
/** The controller runs on this machine for now; starting it elsewhere is planned for these. */
const plannedControllerLaunchers: readonly string[] = ['ssh', 'mpi', ...plannedLaunchers]

export const availableEngineLaunchers = (): string[] => Object.keys(engineLaunchers)
export const availableControllerLaunchers = (): string[] => Object.keys(controllerLaunchers)

function pick<T>(kind: string, table: Readonly<Record<string, T>>, planned: readonly string[], name: string): T {
  const launcher = Object.hasOwn(table, name) ? table[name] : undefined
  if (launcher) return launcher
  const available = Object.keys(table).join(', ')
  if (planned.includes(name)) {
    throw new ConfigError(`${kind} launcher '${name}' is not available yet (planned; see docs/launchers.md); available: ${available}`)
  }
  throw new ConfigError(`unknown ${kind} launcher '${name}'; available: ${available}`)
}

export const engineLauncher = (name: string): EngineLauncher => pick('engine', engineLaunchers, plannedLaunchers, name)
export const controllerLauncher = (name: string): ControllerLauncher => pick('controller', controllerLaunchers, plannedControllerLaunchers, name)
