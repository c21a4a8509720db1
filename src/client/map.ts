import { AsyncResult, type ResultContext } from './async-result.js'
import { chunkItems, flattenChunks } from './chunks.js'
import type { ResultMetadata, Task } from './task.js'

/**
 * The result of a map: one task per chunk of inputs. Awaiting it gives the array of all results in input order
 * (or rejects with the RemoteError, or a CompositeError if several chunks failed). `for await` yields each result
 * as its chunk arrives: in input order by default, or in order of arrival with `ordered: false`; it throws at the
 * first failed chunk it reaches. `metadata` holds one entry per task (chunk). Made with `returnExceptions`, it
 * resolves (and iterates) with a failed chunk's error at each of its inputs' positions instead.
 */
export class AsyncMapResult<T> extends AsyncResult<T[], readonly ResultMetadata[]> implements AsyncIterable<T> {
  /** Whether `for await` yields in input order (true) or as results arrive (false). */
  readonly ordered: boolean

  /** Inputs per task, for putting a failed chunk's error at each of its positions (returnExceptions). */
  private readonly sizes: readonly number[] | undefined
  private readonly errorsInPlace: boolean

  /** @internal Made by views; not for users. */
  constructor(tasks: readonly Task[], context: ResultContext, options: { ordered: boolean; returnExceptions?: boolean; sizes?: readonly number[] }) {
    const msgIds = tasks.map((t) => t.msgId)
    super(tasks, (values) => flattenChunks(values, msgIds) as T[], context, { single: false, returnExceptions: options.returnExceptions ?? false })
    this.ordered = options.ordered
    this.sizes = options.sizes
    this.errorsInPlace = options.returnExceptions ?? false
  }

  /** @internal A failed chunk's error stands at each of its inputs' positions. */
  protected override valuesWithErrors(): unknown {
    return this.tasks.flatMap((task, i) => (task.error ? Array<Error>(this.sizes?.[i] ?? 1).fill(task.error) : chunkItems(task.value, task.msgId)))
  }

  /** @internal A map's task gives the items of its chunk. */
  protected override valueOf(task: Task): unknown {
    return chunkItems(task.value, task.msgId)
  }

  /** Each call starts a new pass over the results, which may begin while tasks are still running. */
  [Symbol.asyncIterator](): AsyncIterator<T> {
    return this.ordered ? this.inOrder() : this.asTheyArrive()
  }

  private async *inOrder(): AsyncGenerator<T> {
    for (const [i, task] of this.tasks.entries()) {
      await task.whenSettled()
      yield* itemsOf<T>(task, this.errorsInPlace ? (this.sizes?.[i] ?? 1) : undefined)
    }
  }

  private async *asTheyArrive(): AsyncGenerator<T> {
    const arrived: Task[] = []
    let wake: (() => void) | undefined
    for (const task of this.tasks) {
      task.onSettled((t) => {
        arrived.push(t)
        wake?.()
      })
    }
    for (let yielded = 0; yielded < this.tasks.length; yielded++) {
      while (arrived.length === 0) await new Promise<void>((resolve) => (wake = resolve))
      wake = undefined
      const task = arrived.shift() as Task
      yield* itemsOf<T>(task, this.errorsInPlace ? (this.sizes?.[this.tasks.indexOf(task)] ?? 1) : undefined)
    }
  }
}

/** A finished chunk's items; a failed one throws, or with `errorsFor` gives its error that many times. */
function itemsOf<T>(task: Task, errorsFor?: number): T[] {
  if (task.error && errorsFor !== undefined) return Array<T>(errorsFor).fill(task.error as T)
  if (task.error) throw task.error
  return chunkItems(task.value, task.msgId) as T[]
}

/**
 * What `imap` returns: an async generator of the results, with `cancel()`. Breaking out of a `for await` stops
 * reading the inputs but lets submitted tasks finish; `cancel()` also aborts them.
 */
export interface ImapIterator<T> extends AsyncGenerator<T, void, undefined> {
  /**
   * Stops the map: no more inputs are read or submitted, the tasks submitted and not finished are aborted (queued
   * ones skipped, running ones interrupted), and the iteration ends (a `next()` waiting for results resolves as done;
   * one waiting on a slow input source, when that source next yields) without
   * yielding or throwing for them. Resolves once the engines have acknowledged the abort. Idempotent.
   */
  cancel(): Promise<void>
}

/**
 * imap's engine: submits chunks from a lazy source while at most `maxOutstanding` tasks are unfinished or not yet
 * consumed, and yields results in input order or as they arrive. Stopping the iteration (break, or a failed chunk)
 * stops reading the input; tasks already submitted run to completion. `cancel()` stops reading and aborts them.
 */
export function lazyMap<T>(
  chunks: AsyncIterable<unknown[]>,
  submit: (items: unknown[], start: number) => Task,
  options: { ordered: boolean; maxOutstanding: number },
  abort: (msgIds: string[]) => Promise<void>,
): ImapIterator<T> {
  const { ordered, maxOutstanding } = options
  const inOrder: Task[] = []
  const arrived: Task[] = []
  const inFlight = new Set<Task>()
  let cancelled = false
  let start = 0
  let wake: (() => void) | undefined
  const changed = (): Promise<void> => new Promise((resolve) => (wake = resolve))
  const poke = (): void => {
    const w = wake
    wake = undefined
    w?.()
  }
  const takeReady = (): Task[] => {
    if (!ordered) return arrived.splice(0)
    let n = 0
    while (inOrder[n]?.settled) n++
    return inOrder.splice(0, n)
  }

  async function* run(): AsyncGenerator<T, void, undefined> {
    for await (const items of chunks) {
      if (cancelled) return
      const task = submit(items, start)
      start += items.length
      inFlight.add(task)
      if (ordered) inOrder.push(task)
      task.onSettled((t) => {
        inFlight.delete(t)
        if (!ordered) arrived.push(t)
        poke()
      })
      for (;;) {
        for (const done of takeReady()) {
          if (cancelled) return
          yield* itemsOf<T>(done)
        }
        if (cancelled) return
        // Tasks not yet handed to the consumer count, finished or not: a slow consumer (or, in order, one slow task)
        // must not let the input be read further ahead.
        const held = ordered ? inOrder.length : inFlight.size + arrived.length
        if (held < maxOutstanding) break
        await changed()
      }
    }
    while (!cancelled && (inFlight.size > 0 || inOrder.length > 0 || arrived.length > 0)) {
      const ready = takeReady()
      for (const done of ready) {
        if (cancelled) return
        yield* itemsOf<T>(done)
      }
      if (ready.length === 0) await changed()
    }
  }

  return Object.assign(run(), {
    async cancel(): Promise<void> {
      if (cancelled) return
      cancelled = true
      poke()
      const pending = [...inFlight].filter((t) => !t.settled).map((t) => t.msgId)
      if (pending.length > 0) await abort(pending)
    },
  })
}
