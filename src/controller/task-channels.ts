import { ConfigError } from '../common/errors.js'
import type { SchemeRegistry } from '../schedulers/schemes.js'
import type { Curve } from '../transport/sockets.js'
import { PURE, PureTaskChannel } from './pure-channel.js'
import { ScheduledTaskChannel, type SchedulingSettings } from './scheduled-channel.js'
import type { TaskChannel } from './task-channel.js'

/** Makes a controller's task channel once its settings are known. */
export type TaskChannelFactory = (settings: Omit<SchedulingSettings, 'scheme'>, curve: Curve | undefined) => TaskChannel

/** Every name `--scheme` accepts with these schemes: each scheme of the registry, and `pure`. */
export function knownTaskSchemes(registry: SchemeRegistry): string[] {
  return [...registry.names(), PURE]
}

/** The task channel a scheme name stands for; an unknown name fails with the list of known ones. */
export function taskChannelOf(name: string, registry: SchemeRegistry): TaskChannelFactory {
  if (name === PURE) return (_settings, curve) => new PureTaskChannel(curve)
  const scheme = registry.get(name)
  if (!scheme) throw new ConfigError(`unknown scheme '${name}'; known schemes: ${knownTaskSchemes(registry).join(', ')}`)
  return (settings, curve) => new ScheduledTaskChannel({ ...settings, scheme }, curve)
}
