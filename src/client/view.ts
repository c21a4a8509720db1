import { ConfigError } from '../common/errors.js'
import type { TaskMetadata } from '../protocol/messages.js'
import { AsyncResult, type ResultContext } from './async-result.js'
import { chunk, chunkAsync, mapInputs, mapInputsAsync, isPlainObject, splitMapArguments, type AnyIterable, type ImapOptions, type MapOptions } from './chunks.js'
import type { Connection } from './connection.js'
import { applyFlags, DEFAULT_FLAGS, type ViewFlags, type LoadBalancedFlags, type WireDependency } from './flags.js'
import { chunkDescriptor, describeFunction, encodeChunk, encodeTask } from './functions.js'
import { AsyncMapResult, lazyMap, type ImapIterator } from './map.js'
import { engineUuid, resultContext, taskLabel, type ConnectionSource, type MapArguments, type TaskFunction, type ViewSettings } from './submit.js'

/**
 * A `pure` controller moves tasks through a native device that knows nothing of dependencies, targets,
 * retries or timeouts; asking for them is refused (as ipyparallel's client does), and priority is ignored.
 */
function checkPureFlags(f: ViewFlags, connection: Connection): void {
  const asked = [
    dependencyIds(f.after).length > 0 ? 'after' : '',
    dependencyIds(f.follow).length > 0 ? 'follow' : '',
    f.retries > 0 ? 'retries' : '',
    f.timeoutMs > 0 ? 'timeoutMs' : '',
    f.targets !== null ? 'targets' : '',
  ].filter(Boolean)
  if (asked.length > 0) {
    throw new ConfigError(`this controller uses the 'pure' task scheme, which does not support ${asked.join(', ')}; start it with another --scheme (e.g. leastload) to use them`)
  }
  if (f.priority !== 0) connection.warnOnce('pure-priority', "priority is ignored: the controller uses the 'pure' task scheme, which places tasks round robin")
}

const dependencyIds = (d: WireDependency): string[] => (Array.isArray(d) ? d : d.dependencies)

/** `view.parallel(fn)`: call it to apply `fn` once, or use `.map`/`.imap` to run it on each input. */
export interface ParallelFunction<A extends unknown[], R> {
  (...args: A): AsyncResult<Awaited<R>>
  map(...iterablesAndOptions: MapArguments): AsyncMapResult<Awaited<R>>
  imap(...iterablesAndOptions: (AnyIterable<unknown> | ImapOptions)[]): ImapIterator<Awaited<R>>
}

/**
 * Runs tasks on whichever engine the controller's scheduler picks (ipyparallel's LoadBalancedView). Tasks carry
 * `language: "javascript"`, so they go only to JavaScript engines. Made by `client.loadBalancedView()`.
 */
export class LoadBalancedView {
  private flagValues: ViewFlags

  /** @internal Made by the Client. */
  constructor(
    private readonly connection: ConnectionSource,
    private readonly settings: ViewSettings,
    flags: LoadBalancedFlags = {},
  ) {
    this.flagValues = applyFlags(DEFAULT_FLAGS, flags, 'loadBalancedView')
  }

  /** The current flags, defaults filled in (dependencies in wire form). */
  get flags(): Readonly<ViewFlags> {
    return { ...this.flagValues }
  }

  /** Engine ids this view may use, or null for any engine. */
  get targets(): number[] | null {
    return this.flagValues.targets === null ? null : [...this.flagValues.targets]
  }

  /** Changes this view's flags (checked; unknown flags are refused). Returns this view. */
  setFlags(flags: LoadBalancedFlags): this {
    this.flagValues = applyFlags(this.flagValues, flags, 'setFlags')
    return this
  }

  /** A new view with these flags changed; this view is unchanged. */
  withFlags(flags: LoadBalancedFlags): LoadBalancedView {
    const view = new LoadBalancedView(this.connection, this.settings)
    view.flagValues = applyFlags(this.flagValues, flags, 'withFlags')
    return view
  }

  /**
   * Runs `fn(...args)` on one engine. Throws synchronously (a ConfigError, before anything is sent) if the function
   * or an argument cannot travel, or if the client is not connected.
   */
  apply<A extends unknown[], R>(fn: TaskFunction<A, R>, ...args: A): AsyncResult<Awaited<R>> {
    const descriptor = describeFunction(fn)
    const buffers = encodeTask(descriptor, args)
    const connection = this.connection()
    const task = connection.sendApply('task', this.wireMetadata(connection), buffers)
    return new AsyncResult<Awaited<R>>([task], (values) => values[0] as Awaited<R>, this.context(taskLabel(descriptor)), { single: true })
  }

  /**
   * Runs `fn` on each element of the inputs (zipped, like `Array.prototype.map` over `zip`, stopping at the
   * shortest), `chunksize` elements per task. A trailing plain object is the options: `{ chunksize, ordered }`
   * (defaults: this view's flags). All inputs are read and encoded before anything is sent, so a refused input
   * throws here.
   */
  map<A, R>(fn: TaskFunction<[A], R>, xs: Iterable<A>, options?: MapOptions): AsyncMapResult<Awaited<R>>
  map<A, B, R>(fn: TaskFunction<[A, B], R>, xs: Iterable<A>, ys: Iterable<B>, options?: MapOptions): AsyncMapResult<Awaited<R>>
  map<A, B, C, R>(fn: TaskFunction<[A, B, C], R>, xs: Iterable<A>, ys: Iterable<B>, zs: Iterable<C>, options?: MapOptions): AsyncMapResult<Awaited<R>>
  map<R>(fn: TaskFunction<never[], R>, ...iterablesAndOptions: MapArguments): AsyncMapResult<Awaited<R>>
  map(fn: unknown, ...iterablesAndOptions: unknown[]): AsyncMapResult<unknown> {
    const descriptor = describeFunction(fn)
    const { iterables, options } = splitMapArguments<MapOptions>('map', iterablesAndOptions)
    const chunksize = options.chunksize ?? this.flagValues.chunksize
    const wrapper = chunkDescriptor(descriptor, iterables.length)
    const chunks = chunk(mapInputs(iterables as Iterable<unknown>[]), chunksize)
    const buffers = chunks.map((items, i) => encodeChunk(wrapper, items, i * chunksize, iterables.length))
    const connection = this.connection()
    const metadata = this.wireMetadata(connection)
    const tasks = buffers.map((b) => connection.sendApply('task', metadata, b))
    return new AsyncMapResult(tasks, this.context(taskLabel(descriptor)), {
      ordered: options.ordered ?? this.flagValues.ordered,
      returnExceptions: options.returnExceptions ?? false,
      sizes: chunks.map((c) => c.length),
    })
  }

  /**
   * Like `map`, but reads the inputs lazily (they may be infinite, or async iterables) and keeps at most
   * `maxOutstanding` tasks unfinished or not yet consumed (default: the number of engines this view can use). Options, as a trailing
   * plain object: `{ chunksize, ordered, maxOutstanding }`. Yields results in input order (default) or as they
   * arrive; throws at the first failed task. An input that cannot travel throws when the iteration reaches it.
   * `cancel()` on what it returns stops submitting and aborts the tasks in flight.
   */
  imap<A, R>(fn: TaskFunction<[A], R>, xs: AnyIterable<A>, options?: ImapOptions): ImapIterator<Awaited<R>>
  imap<A, B, R>(fn: TaskFunction<[A, B], R>, xs: AnyIterable<A>, ys: AnyIterable<B>, options?: ImapOptions): ImapIterator<Awaited<R>>
  imap<R>(fn: TaskFunction<never[], R>, ...iterablesAndOptions: (AnyIterable<unknown> | ImapOptions)[]): ImapIterator<Awaited<R>>
  imap(fn: unknown, ...iterablesAndOptions: unknown[]): ImapIterator<unknown> {
    const descriptor = describeFunction(fn)
    const { iterables, options } = splitMapArguments<ImapOptions>('imap', iterablesAndOptions)
    const wrapper = chunkDescriptor(descriptor, iterables.length)
    const first = this.connection()
    const metadata = this.wireMetadata(first)
    const chunksize = options.chunksize ?? this.flagValues.chunksize
    const engines = this.flagValues.targets?.length ?? first.engines.size
    const maxOutstanding = options.maxOutstanding ?? Math.max(1, engines)
    const submit = (items: unknown[], start: number) => this.connection().sendApply('task', metadata, encodeChunk(wrapper, items, start, iterables.length))
    const context = this.context(taskLabel(descriptor))
    return lazyMap(chunkAsync(mapInputsAsync(iterables), chunksize), submit, { ordered: options.ordered ?? this.flagValues.ordered, maxOutstanding }, (ids) => context.abort(ids))
  }

  /**
   * Wraps `fn` for this view: `pf(...args)` is `apply`, `pf.map(...)` is `map`, `pf.imap(...)` is `imap`.
   * `options` are defaults for its map and imap.
   */
  parallel<A extends unknown[], R>(fn: TaskFunction<A, R>, options: MapOptions = {}): ParallelFunction<A, R> {
    describeFunction(fn) // refuse now rather than at the first call
    const { returnExceptions, ...flags } = options
    const view = this.withFlags(flags)
    const pf = (...args: A) => view.apply(fn, ...args)
    const loose = fn as unknown as TaskFunction<never[], R>
    // returnExceptions is a map option, not a view flag: given here, it is each map's default.
    const withDefault = (rest: MapArguments): MapArguments => {
      if (returnExceptions === undefined) return rest
      const last = rest.at(-1)
      return isPlainObject(last) ? [...rest.slice(0, -1), { returnExceptions, ...last }] : [...rest, { returnExceptions }]
    }
    return Object.assign(pf, {
      map: (...rest: MapArguments) => view.map(loose, ...withDefault(rest)),
      imap: (...rest: (AnyIterable<unknown> | ImapOptions)[]) => view.imap(loose, ...rest),
    })
  }

  /** ipyparallel's task metadata plus ours (`language`, `priority`); times in seconds on the wire. */
  private wireMetadata(connection: Connection): TaskMetadata {
    const f = this.flagValues
    if (connection.taskScheme === 'pure') checkPureFlags(f, connection)
    return {
      after: f.after,
      follow: f.follow,
      timeout: f.timeoutMs / 1000,
      targets: (f.targets ?? []).map((id) => engineUuid(connection, id, 'targets')),
      retries: f.retries,
      language: 'javascript',
      priority: f.priority,
    }
  }

  private context(label: string): ResultContext {
    // A load-balanced task may be on any engine of the view (or still in the scheduler): ask them all.
    const targets = this.flagValues.targets
    return resultContext(this.connection, this.settings, label, (c) => (targets ?? c.engines.ids).flatMap((id) => c.engines.uuidOf(id) ?? []))
  }
}
