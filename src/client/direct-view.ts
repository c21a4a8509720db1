import { NoEnginesRegistered } from '../common/errors.js'
import { AsyncResult } from './async-result.js'
import { mapInputs, partition, splitMapArguments, type MapOptions } from './chunks.js'
import type { Connection } from './connection.js'
import { checkTargets } from './flags.js'
import { chunkDescriptor, describeFunction, encodeChunk, encodeTask } from './functions.js'
import { AsyncMapResult } from './map.js'
import type { ResultMetadata } from './task.js'
import { engineUuid, resultContext, taskLabel, type ConnectionSource, type MapArguments, type TaskFunction, type ViewSettings } from './submit.js'

/** Which engines a DirectView addresses: one engine id, several, or every engine registered at submission. */
export type DirectTargets = number | readonly number[] | 'all'

/** A direct view's value: one engine gives a value, several give an array (in target order). */
export type DirectValue<Shape extends 'one' | 'many', R> = Shape extends 'one' ? R : R[]
type DirectMetadata<Shape extends 'one' | 'many'> = Shape extends 'one' ? ResultMetadata : readonly ResultMetadata[]

/**
 * Runs tasks on chosen engines, bypassing the scheduler (ipyparallel's DirectView, on the mux channel). A view of
 * one engine (`client.directView(0)`) gives single values; a view of several or `'all'` gives arrays. If an
 * engine unregisters while running a task of this view, that task fails with EngineError.
 */
export class DirectView<Shape extends 'one' | 'many' = 'many'> {
  private readonly targetSpec: number[] | 'all' | number

  /** @internal Made by the Client. */
  constructor(
    private readonly connection: ConnectionSource,
    private readonly settings: ViewSettings,
    targets: DirectTargets,
  ) {
    this.targetSpec = targets === 'all' ? 'all' : typeof targets === 'number' ? (checkTargets(targets, 'directView')?.[0] ?? targets) : (checkTargets(targets, 'directView') ?? [])
  }

  /** The engine id, ids, or `'all'` (every engine registered when a task is submitted). */
  get targets(): number | number[] | 'all' {
    return Array.isArray(this.targetSpec) ? [...this.targetSpec] : this.targetSpec
  }

  /** Runs `fn(...args)` on each target engine. Refusals (ConfigError) and a missing engine throw synchronously. */
  apply<A extends unknown[], R>(fn: TaskFunction<A, R>, ...args: A): AsyncResult<DirectValue<Shape, Awaited<R>>, DirectMetadata<Shape>> {
    const descriptor = describeFunction(fn)
    const buffers = encodeTask(descriptor, args)
    const connection = this.connection()
    const uuids = this.resolve(connection)
    const tasks = uuids.map((uuid) => connection.sendApply('mux', { language: 'javascript' }, buffers, uuid))
    const single = typeof this.targetSpec === 'number'
    const assemble = (values: unknown[]) => (single ? values[0] : values) as DirectValue<Shape, Awaited<R>>
    return new AsyncResult(tasks, assemble, this.context(taskLabel(descriptor), uuids), { single })
  }

  /**
   * Runs `fn` on each element of the inputs (zipped), splitting them into one contiguous part per target engine
   * (ipyparallel's DirectView.map). A trailing `{ ordered }` object sets iteration order.
   */
  map<A, R>(fn: TaskFunction<[A], R>, xs: Iterable<A>, options?: Omit<MapOptions, 'chunksize'>): AsyncMapResult<Awaited<R>>
  map<A, B, R>(fn: TaskFunction<[A, B], R>, xs: Iterable<A>, ys: Iterable<B>, options?: Omit<MapOptions, 'chunksize'>): AsyncMapResult<Awaited<R>>
  map<R>(fn: TaskFunction<never[], R>, ...iterablesAndOptions: MapArguments): AsyncMapResult<Awaited<R>>
  map(fn: unknown, ...iterablesAndOptions: unknown[]): AsyncMapResult<unknown> {
    const descriptor = describeFunction(fn)
    const { iterables, options } = splitMapArguments<MapOptions>('map', iterablesAndOptions)
    const wrapper = chunkDescriptor(descriptor, iterables.length)
    const connection = this.connection()
    const uuids = this.resolve(connection)
    const parts = partition(mapInputs(iterables as Iterable<unknown>[]), uuids.length)
    let start = 0
    const buffers = parts.map((items) => {
      const encoded = encodeChunk(wrapper, items, start, iterables.length)
      start += items.length
      return encoded
    })
    const used = uuids.slice(0, buffers.length)
    const tasks = buffers.map((b, i) => connection.sendApply('mux', { language: 'javascript' }, b, used[i]))
    return new AsyncMapResult(tasks, this.context(taskLabel(descriptor), used), { ordered: options.ordered ?? true })
  }

  private resolve(connection: Connection): string[] {
    const ids = this.targetSpec === 'all' ? connection.engines.ids : typeof this.targetSpec === 'number' ? [this.targetSpec] : this.targetSpec
    if (ids.length === 0) throw new NoEnginesRegistered('no engines are registered: start engines, or await client.waitForEngines(n)')
    return ids.map((id) => engineUuid(connection, id, 'directView'))
  }

  private context(label: string, uuids: string[]) {
    return resultContext(this.connection, this.settings, label, (c) => uuids.filter((u) => c.engines.idOf(u) !== undefined && c.engines.has(c.engines.idOf(u) as number)))
  }
}
