import { CompositeError, ConfigError, RemoteError, TimeoutError } from '../common/errors.js'
import { outputSections, type OutputGrouping } from './outputs.js'
import { waitInteractive, type WaitInteractiveOptions } from './progress.js'
import type { ResultMetadata, Task } from './task.js'

/** What a result needs from the view that made it. */
export interface ResultContext {
  /** Asks the engines to skip these tasks if they have not started (control `abort_request`). */
  abort(msgIds: string[]): Promise<void>
  /** Shown by `waitInteractive`: the function's name. */
  label: string
}

type Outcome<T> = { ok: true; value: T } | { ok: false; error: Error }

/** A value with errors in place of the values of tasks that failed (`returnExceptions`). */
export type WithErrors<T> = T extends readonly (infer U)[] ? (U | Error)[] : T | Error

/** Options of `get`. */
export interface GetOptions {
  /** Reject with a TimeoutError if the result is not ready by then, ms. Default: no limit. */
  timeoutMs?: number
  /**
   * Give each failed task's error in place of its value instead of rejecting (ipyparallel's `return_exceptions`):
   * for several tasks, an array with errors where values would be; for a map, the chunk's error at each of its
   * inputs' positions. Default: the result's own setting (the `returnExceptions` option of `map`), else false.
   */
  returnExceptions?: boolean
}

/** Options of `displayOutputs`. */
export interface DisplayOutputsOptions {
  /** `'type'` (default): all stdout, then all stderr; `'engine'`: each engine's stdout and stderr in turn. */
  groupBy?: OutputGrouping
  /** Write the text to this process's stdout and stderr (each output to its own stream). Default true. */
  print?: boolean
}

/**
 * The result of one or more submitted tasks. It is awaitable (`await view.apply(f, 1)` gives the value), and can
 * be inspected while the tasks run. A failed task rejects with a `RemoteError` (its remote name, message, stack
 * and engine); several failures reject with a `CompositeError`. A result that is never awaited never causes an
 * unhandled rejection. It can be passed wherever a `Promise<T>` is expected.
 *
 * `T` is the value; `M` is `metadata`'s type: one `ResultMetadata` for a single task, an array for several.
 */
export class AsyncResult<T, M extends ResultMetadata | readonly ResultMetadata[] = ResultMetadata> implements Promise<T> {
  /** Makes results usable wherever a `Promise<T>` is expected. */
  readonly [Symbol.toStringTag]: string = 'AsyncResult'
  /** @internal */
  protected readonly tasks: readonly Task[]
  /** @internal */
  protected readonly context: ResultContext
  private readonly assemble: (values: unknown[]) => T
  private readonly single: boolean
  private readonly returnExceptions: boolean
  private remaining: number
  private outcome: Outcome<T> | undefined
  private readonly whenDone: (() => void)[] = []
  private promise: Promise<T> | undefined

  /** @internal Made by views; not for users. */
  constructor(tasks: readonly Task[], assemble: (values: unknown[]) => T, context: ResultContext, options: { single: boolean; returnExceptions?: boolean }) {
    this.tasks = tasks
    this.assemble = assemble
    this.context = context
    this.single = options.single
    this.returnExceptions = options.returnExceptions ?? false
    this.remaining = tasks.length
    if (this.remaining === 0) this.finish()
    for (const task of tasks) {
      task.onSettled(() => {
        if (--this.remaining === 0) this.finish()
      })
    }
  }

  /** The message ids of the tasks, in submission order. */
  get msgIds(): string[] {
    return this.tasks.map((t) => t.msgId)
  }

  /** Per-task metadata: timestamps, engine, captured stdout/stderr, status. Filled in as replies arrive. */
  get metadata(): M {
    return (this.single && this.tasks[0] ? this.tasks[0].metadata : this.tasks.map((t) => t.metadata)) as unknown as M
  }

  /** Whether every task has finished (successfully or not). */
  ready(): boolean {
    return this.outcome !== undefined
  }

  /** Whether every task succeeded. Throws a ConfigError if called before `ready()`. */
  successful(): boolean {
    if (!this.outcome) throw new ConfigError('successful() was called before the result was ready: check ready() or await wait() first')
    return this.outcome.ok
  }

  /** How many tasks have finished. */
  get progress(): number {
    return this.tasks.length - this.remaining
  }

  /**
   * Milliseconds from the earliest submission to the last reply once ready, or to now while running
   * (ipyparallel's `elapsed`, in ms).
   */
  get elapsedMs(): number {
    const submitted = Math.min(...this.tasks.map((t) => t.metadata.submitted.getTime()))
    if (!Number.isFinite(submitted)) return 0
    const end = this.ready() ? Math.max(...this.tasks.map((t) => t.metadata.received?.getTime() ?? Date.now())) : Date.now()
    return end - submitted
  }

  /**
   * The id of the engine that ran the task (one task), or of each task's engine in order (several); undefined
   * where not known yet (a load-balanced task before its reply). ipyparallel's `engine_id`.
   */
  get engineId(): M extends readonly ResultMetadata[] ? (number | undefined)[] : number | undefined {
    const ids = this.single ? this.tasks[0]?.metadata.engineId : this.tasks.map((t) => t.metadata.engineId)
    return ids as M extends readonly ResultMetadata[] ? (number | undefined)[] : number | undefined
  }

  /**
   * Milliseconds from the first submission to the last reply (ipyparallel's `wall_time`, in ms). Throws a
   * ConfigError before `ready()`.
   */
  get wallTimeMs(): number {
    this.checkReady('wallTimeMs')
    return this.elapsedMs
  }

  /**
   * The tasks' computing time added up: the sum of each task's completed - started, in ms, as the engines' clocks
   * tell it (ipyparallel's `serial_time`). `serialTimeMs / wallTimeMs` is the speed-up over running them one after
   * another. Throws a ConfigError before `ready()`.
   */
  get serialTimeMs(): number {
    this.checkReady('serialTimeMs')
    let total = 0
    for (const { metadata } of this.tasks) {
      if (metadata.started && metadata.completed) total += metadata.completed.getTime() - metadata.started.getTime()
    }
    return total
  }

  /**
   * The results by the id of the engine that ran each task (ipyparallel's `get_dict`), once every task has
   * finished: for a DirectView's apply, one entry per engine; a map's task gives the array of its chunk's results.
   * Rejects as `get` does, and with a ConfigError if two tasks ran on one engine.
   */
  async getDict<V = unknown>(timeoutMs?: number): Promise<Map<number, V>> {
    await this.get(timeoutMs)
    const dict = new Map<number, V>()
    for (const task of this.tasks) {
      const id = task.metadata.engineId
      if (id === undefined) throw new ConfigError(`getDict: the engine of task ${task.msgId} is not known (it left the cluster?)`)
      if (dict.has(id)) throw new ConfigError(`getDict: more than one task ran on engine ${id}, so the results cannot be keyed by engine; use metadata to tell them apart`)
      dict.set(id, this.valueOf(task) as V)
    }
    return dict
  }

  /** @internal One task's value as this result presents it; a map's task gives its chunk's items. */
  protected valueOf(task: Task): unknown {
    return task.value
  }

  private checkReady(what: string): void {
    if (!this.outcome) throw new ConfigError(`${what} was read before the result was ready: check ready() or await wait() first`)
  }

  /**
   * Resolves to true when every task has finished, or to false after `timeoutMs` (default: no limit).
   * Never rejects because a task failed.
   */
  wait(timeoutMs?: number): Promise<boolean> {
    if (this.outcome) return Promise.resolve(true)
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer)
        resolve(true)
      }
      // A wait that times out takes its callback back, so polling (waitInteractive) does not pile them up.
      const timer = timeoutMs === undefined ? undefined : setTimeout(() => {
        const at = this.whenDone.indexOf(done)
        if (at >= 0) this.whenDone.splice(at, 1)
        resolve(false)
      }, Math.max(0, timeoutMs))
      this.whenDone.push(done)
    })
  }

  /**
   * The value, once every task has finished; rejects with the remote error(s). With `timeoutMs`, rejects with a
   * TimeoutError if the result is not ready by then (the tasks keep running).
   */
  get(timeoutMs?: number): Promise<T>
  get(options: GetOptions & { returnExceptions: true }): Promise<WithErrors<T>>
  get(options: GetOptions): Promise<T | WithErrors<T>>
  async get(timeoutOrOptions?: number | GetOptions): Promise<T | WithErrors<T>> {
    const options: GetOptions = typeof timeoutOrOptions === 'object' && timeoutOrOptions !== null ? timeoutOrOptions : { timeoutMs: timeoutOrOptions }
    if (typeof timeoutOrOptions === 'object' && timeoutOrOptions !== null) {
      for (const key of Object.keys(options)) if (key !== 'timeoutMs' && key !== 'returnExceptions') throw new ConfigError(`get: unknown option '${key}' (options are timeoutMs, returnExceptions)`)
    }
    const { timeoutMs, returnExceptions } = options
    if (timeoutMs !== undefined && !(typeof timeoutMs === 'number' && timeoutMs >= 0)) throw new ConfigError(`get: timeoutMs must be a number of ms ≥ 0, not ${String(timeoutMs)}`)
    if (returnExceptions !== undefined && typeof returnExceptions !== 'boolean') throw new ConfigError('get: returnExceptions must be a boolean')
    if (timeoutMs !== undefined && !(await this.wait(timeoutMs))) {
      throw new TimeoutError(`result not ready within ${timeoutMs} ms (its ${this.tasks.length === 1 ? 'task keeps' : 'tasks keep'} running)`)
    }
    if (returnExceptions === true && !this.returnExceptions) {
      await this.wait()
      if (this.outcome && !this.outcome.ok && this.tasks.some((t) => t.error)) return this.valuesWithErrors() as WithErrors<T>
    }
    return this.settled()
  }

  /**
   * Shows what the tasks wrote to stdout and stderr (ipyparallel's `display_outputs`), once every task has
   * finished: for one task, its output as it is; for several, each engine's output under a `[stdout:<id>]` or
   * `[stderr:<id>]` line, all stdout first (`groupBy: 'type'`, the default) or engine by engine (`'engine'`).
   * Writes it to this process's stdout and stderr unless `print: false`, and resolves to the whole text.
   */
  async displayOutputs(options: DisplayOutputsOptions = {}): Promise<string> {
    for (const key of Object.keys(options)) if (key !== 'groupBy' && key !== 'print') throw new ConfigError(`displayOutputs: unknown option '${key}' (options are groupBy, print)`)
    const groupBy = options.groupBy ?? 'type'
    if (groupBy !== 'type' && groupBy !== 'engine') throw new ConfigError(`displayOutputs: groupBy must be 'type' or 'engine', not ${JSON.stringify(groupBy)}`)
    await this.wait()
    const sections = outputSections(this.tasks.map((t) => t.metadata), groupBy, this.single)
    if (options.print !== false) for (const { stream, text } of sections) process[stream].write(text)
    return sections.map((s) => s.text).join('')
  }

  /** @internal The value with each failed task's error in place of its value. */
  protected valuesWithErrors(): unknown {
    return this.assemble(this.tasks.map((t) => t.error ?? t.value))
  }

  then<R1 = T, R2 = never>(
    onfulfilled?: ((value: T) => R1 | PromiseLike<R1>) | null,
    onrejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2> {
    return this.settled().then(onfulfilled, onrejected)
  }

  catch<R = never>(onrejected?: ((reason: unknown) => R | PromiseLike<R>) | null): Promise<T | R> {
    return this.settled().catch(onrejected)
  }

  finally(onfinally?: (() => void) | null): Promise<T> {
    return this.settled().finally(onfinally)
  }

  /**
   * Stops the tasks that have not finished: a queued task is skipped without running and a running one is
   * interrupted (its executor thread is ended); either fails with TaskAborted. Resolves when the engines have
   * acknowledged; a no-op once ready.
   */
  async abort(): Promise<void> {
    const pending = this.tasks.filter((t) => !t.settled).map((t) => t.msgId)
    if (pending.length > 0) await this.context.abort(pending)
  }

  /**
   * Waits while showing progress: a bar of finished/total tasks with the elapsed time on a TTY, one summary line
   * otherwise. Resolves to whether everything finished (false if `timeoutMs` ran out); does not reject when a task
   * failed: await the result for that.
   */
  waitInteractive(options?: WaitInteractiveOptions): Promise<boolean> {
    const source = {
      total: this.tasks.length,
      label: this.context.label,
      done: () => this.progress,
      elapsedMs: () => this.elapsedMs,
      ready: () => this.ready(),
      wait: (ms?: number) => this.wait(ms),
    }
    return waitInteractive(source, options)
  }

  /** A promise of the outcome, made only when someone asks for it. */
  private settled(): Promise<T> {
    this.promise ??= new Promise<T>((resolve, reject) => {
      const deliver = (): void => {
        const outcome = this.outcome as Outcome<T>
        if (outcome.ok) resolve(outcome.value)
        else reject(outcome.error)
      }
      if (this.outcome) deliver()
      else this.whenDone.push(deliver)
    })
    return this.promise
  }

  private finish(): void {
    this.outcome = this.computeOutcome()
    for (const callback of this.whenDone.splice(0)) callback()
  }

  private computeOutcome(): Outcome<T> {
    const errors = this.tasks.flatMap((t) => (t.error ? [t.error] : []))
    if (this.returnExceptions && errors.length > 0) {
      try {
        return { ok: true, value: this.valuesWithErrors() as T }
      } catch (e) {
        return { ok: false, error: e instanceof Error ? e : new Error(String(e)) }
      }
    }
    // A local failure (the client closed, a reply that could not be decoded) says more than the remote ones.
    const local = errors.find((e) => !(e instanceof RemoteError))
    if (local) return { ok: false, error: local }
    if (errors.length === 1) return { ok: false, error: errors[0] as Error }
    if (errors.length > 1) return { ok: false, error: new CompositeError(errors as RemoteError[]) }
    try {
      return { ok: true, value: this.assemble(this.tasks.map((t) => t.value)) }
    } catch (e) {
      return { ok: false, error: e instanceof Error ? e : new Error(String(e)) }
    }
  }
}
