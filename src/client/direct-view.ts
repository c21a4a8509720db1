import { ConfigError, NoEnginesRegistered } from '../common/errors.js'
import type { FunctionDescriptor } from '../protocol/payload.js'
import { AsyncResult } from './async-result.js'
import { mapInputs, partition, splitMapArguments, type MapOptions } from './chunks.js'
import type { BroadcastRequest, Connection } from './connection.js'
import { checkViewTargets } from './flags.js'
import { chunkDescriptor, describeFunction, encodeChunk, encodeTask } from './functions.js'
import { checkPullNames, checkPushNames, executeReplyOf, joinParts, readGlobals, scatterPart, setGlobals, type ExecuteReply } from './engine-state.js'
import { AsyncMapResult } from './map.js'
import { messageIds } from './records.js'
import type { ResultMetadata, Task } from './task.js'
import { engineUuid, resultContext, taskLabel, type ConnectionSource, type MapArguments, type TaskFunction, type ViewSettings } from './submit.js'

/** Which engines a DirectView addresses: one engine id, several, or every engine registered at submission. */
export type DirectTargets = number | readonly number[] | 'all'

type Sliceable = ArrayLike<unknown> & { slice(start: number, end: number): ArrayLike<unknown> }

/** What scatter can cut: an array or typed array as it is, another iterable read into an array. */
function sliceable(items: unknown): Sliceable {
  if (Array.isArray(items)) return items as unknown[]
  if (ArrayBuffer.isView(items) && !(items instanceof DataView)) return items as unknown as Sliceable
  if (typeof items === 'object' && items !== null && Symbol.iterator in items) return Array.from(items as Iterable<unknown>)
  throw new ConfigError('scatter: items must be an array, a typed array or another iterable')
}

/** A direct view's value: one engine gives a value, several give an array (in target order). */
export type DirectValue<Shape extends 'one' | 'many', R> = Shape extends 'one' ? R : R[]
type DirectMetadata<Shape extends 'one' | 'many'> = Shape extends 'one' ? ResultMetadata : readonly ResultMetadata[]

/** Options of `DirectView.scatter`. */
export interface ScatterOptions {
  /** An engine whose part is one element gets the element itself, not an array of one. Default false. */
  flatten?: boolean
}

// The engine-side helpers of push/pull/scatter/gather, described once.
let stateFunctions: { set: FunctionDescriptor; read: FunctionDescriptor } | undefined
const engineFunctions = () => (stateFunctions ??= { set: describeFunction(setGlobals), read: describeFunction(readGlobals) })

/**
 * Runs tasks on chosen engines, bypassing the scheduler (ipyparallel's DirectView, on the mux channel), and works
 * with their state: each engine's namespace is the global scope of its executor thread, which lasts from task to
 * task until `clear()` (or an abort that interrupts a running task) resets it. A view of one engine
 * (`client.directView(0)`) gives single values; a view of several or `'all'` gives arrays, in target order. Every
 * method that runs something returns an AsyncResult at once: await it for the value. If an engine unregisters
 * while running a task of this view, that task fails with EngineError.
 */
export class DirectView<Shape extends 'one' | 'many' = 'many'> {
  /** @internal */
  protected readonly targetSpec: number[] | 'all' | number

  /** @internal Made by the Client. */
  constructor(
    protected readonly connection: ConnectionSource,
    protected readonly settings: ViewSettings,
    targets: DirectTargets,
  ) {
    this.targetSpec = targets === 'all' ? 'all' : typeof targets === 'number' ? (checkViewTargets(targets, 'directView')[0] ?? targets) : checkViewTargets(targets, 'directView')
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
    const tasks = this.dispatch(connection, uuids, { kind: 'apply', buffers })
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
    const tasks = this.dispatchEach(connection, used, (i) => ({ kind: 'apply', buffers: buffers[i] ?? [] }))
    return new AsyncMapResult(tasks, this.context(taskLabel(descriptor), used), {
      ordered: options.ordered ?? true,
      returnExceptions: options.returnExceptions ?? false,
      sizes: parts.map((p) => p.length),
    })
  }

  /**
   * Runs JavaScript source on each target engine in its global scope, like a line typed into Node's REPL: `var`,
   * `function`, `const`, `let` and `class` declarations, and assignments to undeclared names, stay for later code and
   * tasks. `await` is allowed at the top level; code that uses it runs as the body of an async function, so what it
   * declares is its own (assign a global to keep a value: `data = await load()`). Gives each engine's
   * {@link ExecuteReply}: the last expression's value and its text. Console output is captured in `metadata`
   * like a task's; an error rejects with a RemoteError of its name (SyntaxError, ReferenceError, ...).
   */
  execute(code: string): AsyncResult<DirectValue<Shape, ExecuteReply>, DirectMetadata<Shape>> {
    if (typeof code !== 'string') throw new ConfigError('execute: code must be a string of JavaScript source')
    const connection = this.connection()
    const uuids = this.resolve(connection)
    const tasks = this.dispatch(connection, uuids, { kind: 'execute', code, decode: executeReplyOf })
    return this.result(tasks, uuids, 'execute', this.perEngine)
  }

  /**
   * Sets globals on each target engine: `push({ a: 1, table })` is `a = 1; table = <a copy>` run there (a name
   * declared with `const` by executed code refuses, with a TypeError). Values travel as task arguments do
   * (structured clone); one that cannot throws a ConfigError here, before anything is sent.
   */
  push(values: Record<string, unknown>): AsyncResult<void, DirectMetadata<Shape>> {
    checkPushNames(values, 'push')
    const { tasks, uuids } = this.sendSame(engineFunctions().set, [values])
    return this.result(tasks, uuids, 'push', () => undefined)
  }

  /**
   * Reads globals of each target engine: one name gives its value, a list gives an array of values. Names are
   * identifiers or paths of them (`config.size`); one that is not defined there rejects with a ReferenceError.
   */
  pull<T = unknown>(name: string): AsyncResult<DirectValue<Shape, T>, DirectMetadata<Shape>>
  pull<T extends unknown[] = unknown[]>(names: readonly string[]): AsyncResult<DirectValue<Shape, T>, DirectMetadata<Shape>>
  pull(names: string | readonly string[]): AsyncResult<unknown, DirectMetadata<Shape>> {
    const one = typeof names === 'string'
    const list = one ? [names] : Array.isArray(names) ? [...(names as readonly string[])] : []
    if (!one && !Array.isArray(names)) throw new ConfigError('pull: give a name or an array of names')
    checkPullNames(list, 'pull')
    const { tasks, uuids } = this.sendSame(engineFunctions().read, [list, one])
    return this.result(tasks, uuids, 'pull', this.perEngine)
  }

  /**
   * Cuts `items` into one contiguous part per target engine, in target order (the first `length % engines` parts
   * one longer, as ipyparallel's `dist='b'`), and sets global `name` on each engine to its part (an empty array
   * when there are more engines than items). A typed array is cut into typed arrays. `gather(name)` joins them back.
   */
  scatter(name: string, items: readonly unknown[] | ArrayBufferView | Iterable<unknown>, options: ScatterOptions = {}): AsyncResult<void, DirectMetadata<Shape>> {
    checkPushNames({ [name]: undefined }, 'scatter')
    for (const key of Object.keys(options)) if (key !== 'flatten') throw new ConfigError(`scatter: unknown option '${key}' (the option is flatten)`)
    if (options.flatten !== undefined && typeof options.flatten !== 'boolean') throw new ConfigError('scatter: flatten must be a boolean')
    const sequence = sliceable(items)
    const { tasks, uuids } = this.sendEach(engineFunctions().set, (index, parts) => {
      const part = scatterPart(sequence, index, parts)
      return [{ [name]: options.flatten === true && part.length === 1 ? part[0] : part }]
    })
    return this.result(tasks, uuids, 'scatter', () => undefined)
  }

  /**
   * Reads global `name` of each target engine and joins the parts in target order: arrays are concatenated (typed
   * arrays of one kind into one typed array), a single value (a part `flatten` made one) is one element.
   */
  gather<R = unknown[]>(name: string): AsyncResult<R, DirectMetadata<Shape>> {
    checkPullNames([name], 'gather')
    const { tasks, uuids } = this.sendEach(engineFunctions().read, () => [[name], true])
    return this.result(tasks, uuids, 'gather', joinParts)
  }

  /**
   * Resets the namespace of each target engine (control `clear_request`): a fresh executor thread, once the task
   * running there ends; tasks queued behind it run in the fresh one. Resolves when every engine has acknowledged.
   */
  async clear(): Promise<void> {
    const connection = this.connection()
    const uuids = this.resolve(connection)
    await Promise.all(uuids.map((uuid) => connection.controlRequest(uuid, 'clear_request', {}, this.settings.requestTimeoutMs)))
  }

  /**
   * Stops tasks on the target engines: those of `jobs` (an AsyncResult or message ids; a running one is interrupted,
   * which also resets that engine's namespace), or, without `jobs`, every task queued there (running ones go on).
   * The stopped tasks fail with TaskAborted. Resolves when every engine has acknowledged.
   */
  async abort(jobs?: string | readonly string[] | AsyncResult<unknown, ResultMetadata | readonly ResultMetadata[]>): Promise<void> {
    const msgIds = jobs === undefined ? [] : messageIds(jobs, 'abort')
    const connection = this.connection()
    const uuids = this.resolve(connection)
    await Promise.all(uuids.map((uuid) => connection.controlRequest(uuid, 'abort_request', { msg_ids: msgIds }, this.settings.requestTimeoutMs)))
  }

  /**
   * Sends a signal to each target engine (control `signal_request`): `SIGINT` (2) interrupts the task running there,
   * which fails with a RemoteError named `KeyboardInterrupt` and, as any interrupt, resets the namespace;
   * `SIGTERM` (15) stops the engine. Other signals are refused by our engines (a RemoteError named `ValueError`).
   * Resolves when every engine has acknowledged.
   */
  async sendSignal(signal: 'SIGINT' | 'SIGTERM' | number): Promise<void> {
    if (!(signal === 'SIGINT' || signal === 'SIGTERM' || (typeof signal === 'number' && Number.isInteger(signal) && signal > 0))) {
      throw new ConfigError(`sendSignal: give 'SIGINT', 'SIGTERM' or a signal number, not ${JSON.stringify(signal)}`)
    }
    const connection = this.connection()
    const uuids = this.resolve(connection)
    await Promise.all(uuids.map((uuid) => connection.controlRequest(uuid, 'signal_request', { sig: signal }, this.settings.requestTimeoutMs)))
  }

  /** Sends `fn(...args)` to every target engine (one broadcast on a BroadcastView). */
  private sendSame(fn: FunctionDescriptor, args: unknown[]): { tasks: Task[]; uuids: string[] } {
    const connection = this.connection()
    const uuids = this.resolve(connection)
    const buffers = encodeTask(fn, args)
    return { tasks: this.dispatch(connection, uuids, { kind: 'apply', buffers }), uuids }
  }

  /** Sends `fn` to each target engine with its own arguments; everything is encoded before anything is sent. */
  private sendEach(fn: FunctionDescriptor, argsFor: (index: number, engines: number) => unknown[]): { tasks: Task[]; uuids: string[] } {
    const connection = this.connection()
    const uuids = this.resolve(connection)
    const buffers = uuids.map((_, i) => encodeTask(fn, argsFor(i, uuids.length)))
    return { tasks: this.dispatchEach(connection, uuids, (i) => ({ kind: 'apply', buffers: buffers[i] ?? [] })), uuids }
  }

  /**
   * @internal Sends one request to every engine of `uuids` and returns their tasks in that order. A DirectView
   * sends one copy per engine on the mux channel; a BroadcastView overrides this to send one broadcast.
   */
  protected dispatch(connection: Connection, uuids: readonly string[], request: BroadcastRequest): Task[] {
    return this.dispatchEach(connection, uuids, () => request)
  }

  /** @internal Sends engine `i` of `uuids` its own request; a BroadcastView overrides this too. */
  protected dispatchEach(connection: Connection, uuids: readonly string[], requestFor: (index: number) => BroadcastRequest): Task[] {
    return uuids.map((uuid, i) => {
      const request = requestFor(i)
      return request.kind === 'apply'
        ? connection.sendApply('mux', { language: 'javascript' }, request.buffers, uuid)
        : connection.sendExecute('mux', { language: 'javascript' }, request.code, request.decode, uuid)
    })
  }

  private result<R>(tasks: Task[], uuids: string[], label: string, assemble: (values: unknown[]) => unknown): AsyncResult<R, DirectMetadata<Shape>> {
    return new AsyncResult(tasks, assemble as (values: unknown[]) => R, this.context(label, uuids), { single: typeof this.targetSpec === 'number' })
  }

  /** One engine's value for a view of one engine, the array of them otherwise. */
  private readonly perEngine = (values: unknown[]): unknown => (typeof this.targetSpec === 'number' ? values[0] : values)

  /** @internal */
  protected resolve(connection: Connection): string[] {
    const ids = this.targetSpec === 'all' ? connection.engines.ids : typeof this.targetSpec === 'number' ? [this.targetSpec] : this.targetSpec
    if (ids.length === 0) throw new NoEnginesRegistered('no engines are registered: start engines, or await client.waitForEngines(n)')
    return ids.map((id) => engineUuid(connection, id, 'directView'))
  }

  private context(label: string, uuids: string[]) {
    return resultContext(this.connection, this.settings, label, (c) => uuids.filter((u) => c.engines.idOf(u) !== undefined && c.engines.has(c.engines.idOf(u) as number)))
  }
}
