/**
 * The launchers a cluster can use, by name, as `--engines=<name>` and `--controller=<name>` choose them. One
 * small module each behind the interfaces of `launcher.ts`; a new launcher is one more module and one more entry
 * here. Those the project plans but has not built are named, so that asking for one says so instead of "unknown".
 */
import { ConfigError } from '../../common/errors.js'
import type { ControllerLauncher, EngineLauncher } from './launcher.js'
import { localControllerLauncher, localEngineLauncher } from './local.js'

const engineLaunchers: Readonly<Record<string, EngineLauncher>> = { local: localEngineLauncher }
const controllerLaunchers: Readonly<Record<string, ControllerLauncher>> = { local: localControllerLauncher }

/** Launchers of issue 19 that are not built yet (docs/launchers.md). */
export const plannedLaunchers: readonly string[] = ['ssh', 'mpi', 'slurm', 'sge', 'pbs', 'lsf', 'htcondor']

export const availableEngineLaunchers = (): string[] => Object.keys(engineLaunchers)
export const availableControllerLaunchers = (): string[] => Object.keys(controllerLaunchers)

function pick<T>(kind: string, table: Readonly<Record<string, T>>, name: string): T {
  const launcher = Object.hasOwn(table, name) ? table[name] : undefined
  if (launcher) return launcher
  const available = Object.keys(table).join(', ')
  if (plannedLaunchers.includes(name)) {
    throw new ConfigError(`${kind} launcher '${name}' is not available yet (planned; see docs/launchers.md); available: ${available}`)
  }
  throw new ConfigError(`unknown ${kind} launcher '${name}'; available: ${available}`)
}

export const engineLauncher = (name: string): EngineLauncher => pick('engine', engineLaunchers, name)
export const controllerLauncher = (name: string): ControllerLauncher => pick('controller', controllerLaunchers, name)
