import { ConfigError } from '../common/errors.js'
import type { FunctionDescriptor } from '../protocol/payload.js'
import type { ResultContext } from './async-result.js'
import type { AnyIterable, MapOptions } from './chunks.js'
import type { Connection } from './connection.js'
import { functionName, type ModuleFunction, type WrappedFunction } from './functions.js'

/** What views share: the function types they accept and how they reach the wire. */

/** A task: a function (shipped by its source, or by path if it is a well-known global) or a module reference. */
export type TaskFunction<A extends unknown[], R> = ((...args: A) => R) | ModuleFunction<(...args: A) => R> | WrappedFunction<(...args: A) => R>

/** Views reach the connection through this; it throws if the client is not connected yet or closed. */
export type ConnectionSource = () => Connection

/** What views need to know beyond the connection. */
export interface ViewSettings {
  /** How long to wait for an engine's reply to a control request (abort), ms. */
  requestTimeoutMs: number
}

/** Arguments of `map`/`parallel().map`: iterables and an optional trailing options object. */
export type MapArguments = (AnyIterable<unknown> | MapOptions)[]

/** The name shown for a task (progress bars, logs). */
export function taskLabel(fn: FunctionDescriptor): string {
  return functionName(fn)
}

/** The uuid of a registered engine, or a ConfigError naming the engines there are. */
export function engineUuid(connection: Connection, id: number, where: string): string {
  const uuid = connection.engines.uuidOf(id)
  if (uuid === undefined) {
    const ids = connection.engines.ids
    throw new ConfigError(`${where}: engine ${id} is not registered (registered engines: ${ids.length > 0 ? ids.join(', ') : 'none'})`)
  }
  return uuid
}

/** A ResultContext whose abort asks the given engines (uuids, evaluated when aborting) to skip the tasks. */
export function resultContext(source: ConnectionSource, settings: ViewSettings, label: string, engines: (c: Connection) => string[]): ResultContext {
  return {
    label,
    async abort(msgIds) {
      const connection = source()
      await Promise.all(engines(connection).map((uuid) => connection.controlRequest(uuid, 'abort_request', { msg_ids: msgIds }, settings.requestTimeoutMs)))
    },
  }
}
