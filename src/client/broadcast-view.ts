import { ConfigError } from '../common/errors.js'
import type { BroadcastRequest, Connection } from './connection.js'
import { DirectView, type DirectTargets } from './direct-view.js'
import type { ConnectionSource, ViewSettings } from './submit.js'
import type { Task } from './task.js'

/** Options of `client.broadcastView`. */
export interface BroadcastOptions {
  /**
   * Whether the controller gathers the engines' replies and sends them back as one message (ipyparallel's
   * `is_coalescing`). Default false: each engine's reply comes back on its own. Either way results are in target
   * order and each engine's error is its own; `execute`, `scatter` and `gather` never coalesce (as in ipyparallel).
   */
  coalescing?: boolean
}

/**
 * A DirectView whose requests go on the broadcast channel (ipyparallel's BroadcastView): `apply`, `execute`,
 * `push` and `pull` send one message, which the controller copies to each target engine, instead of one message
 * per engine. `scatter` and `gather` send one broadcast per engine, each with its own part; `clear`, `abort` and
 * `sendSignal` use the control channel as a DirectView's do. `map` is not available (nor in ipyparallel): use a
 * DirectView or a LoadBalancedView. Made by `client.broadcastView(targets, { coalescing })`.
 */
export class BroadcastView<Shape extends 'one' | 'many' = 'many'> extends DirectView<Shape> {
  /** Whether replies are coalesced by the controller. */
  readonly coalescing: boolean

  /** @internal Made by the Client. */
  constructor(connection: ConnectionSource, settings: ViewSettings, targets: DirectTargets, options: BroadcastOptions = {}) {
    super(connection, settings, targets)
    for (const key of Object.keys(options)) if (key !== 'coalescing') throw new ConfigError(`broadcastView: unknown option '${key}' (the option is coalescing)`)
    if (options.coalescing !== undefined && typeof options.coalescing !== 'boolean') throw new ConfigError('broadcastView: coalescing must be a boolean')
    this.coalescing = options.coalescing ?? false
  }

  /** Not available on a broadcast view (nor in ipyparallel): throws a ConfigError. */
  override map(..._args: unknown[]): never {
    throw new ConfigError('map is not available on a broadcast view (nor in ipyparallel): use client.directView(targets).map or a loadBalancedView')
  }

  /** @internal One broadcast to all of `uuids`; execute never coalesces, as in ipyparallel. */
  protected override dispatch(connection: Connection, uuids: readonly string[], request: BroadcastRequest): Task[] {
    return connection.sendBroadcast(request, targetPairs(connection, uuids), this.coalescing && request.kind === 'apply')
  }

  /** @internal Engines with requests of their own (scatter, gather): one broadcast each, not coalescing. */
  protected override dispatchEach(connection: Connection, uuids: readonly string[], requestFor: (index: number) => BroadcastRequest): Task[] {
    return uuids.flatMap((uuid, i) => connection.sendBroadcast(requestFor(i), targetPairs(connection, [uuid]), false))
  }
}

function targetPairs(connection: Connection, uuids: readonly string[]): [string, number][] {
  return uuids.map((uuid) => [uuid, connection.engines.idOf(uuid) ?? -1])
}
