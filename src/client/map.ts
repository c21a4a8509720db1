import { AsyncResult, type ResultContext } from './async-result.js'
import { chunkItems, flattenChunks } from './chunks.js'
import type { ResultMetadata, Task } from './task.js'

/**
 * The result of a map: one task per chunk of inputs. Awaiting it gives the array of all results in input order
 * (or rejects with the RemoteError, or a CompositeError if several chunks failed). `for await` yields each result
 * as its chunk arrives: in input order by default, or in order of arrival with `ordered: false`; it throws at the
 * first failed chunk it reaches. `metadata` holds one entry per task (chunk).
 */
export class AsyncMapResult<T> extends AsyncResult<T[], readonly ResultMetadata[]> implements AsyncIterable<T> {
  /** Whether `for await` yields in input order (true) or as results arrive (false). */
  readonly ordered: boolean

  /** @internal Made by views; not for users. */
  constructor(tasks: readonly Task[], context: ResultContext, options: { ordered: boolean }) {
    const msgIds = tasks.map((t) => t.msgId)
    super(tasks, (values) => flattenChunks(values, msgIds) as T[], context, { single: false })
    this.ordered = options.ordered
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
    for (const task of this.tasks) {
      await task.whenSettled()
      yield* itemsOf<T>(task)
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
      yield* itemsOf<T>(arrived.shift() as Task)
    }
  }
}

function itemsOf<T>(task: Task): T[] {
  if (task.error) throw task.error
  return chunkItems(task.value, task.msgId) as T[]
}

/**
 * imap's engine: submits chunks from a lazy source while at most `maxOutstanding` tasks are unfinished or not yet
 * consumed, and yields results in input order or as they arrive. Stopping the iteration (break, or a failed chunk) stops reading the
 * input; tasks already submitted run to completion.
 */
export async function* lazyMap<T>(
  chunks: AsyncIterable<unknown[]>,
  submit: (items: unknown[], start: number) => Task,
  options: { ordered: boolean; maxOutstanding: number },
): AsyncGenerator<T, void, undefined> {
  const { ordered, maxOutstanding } = options
  const inOrder: Task[] = []
  const arrived: Task[] = []
  let unfinished = 0
  let start = 0
  let wake: (() => void) | undefined
  const changed = (): Promise<void> => new Promise((resolve) => (wake = resolve))
  const takeReady = (): Task[] => {
    if (!ordered) return arrived.splice(0)
    let n = 0
    while (inOrder[n]?.settled) n++
    return inOrder.splice(0, n)
  }

  for await (const items of chunks) {
    const task = submit(items, start)
    start += items.length
    unfinished++
    if (ordered) inOrder.push(task)
    task.onSettled((t) => {
      unfinished--
      if (!ordered) arrived.push(t)
      const w = wake
      wake = undefined
      w?.()
    })
    for (;;) {
      for (const done of takeReady()) yield* itemsOf<T>(done)
      // Tasks not yet handed to the consumer count, finished or not: a slow consumer (or, in order, one slow task)
      // must not let the input be read further ahead.
      const held = ordered ? inOrder.length : unfinished + arrived.length
      if (held < maxOutstanding) break
      await changed()
    }
  }
  while (unfinished > 0 || inOrder.length > 0 || arrived.length > 0) {
    const ready = takeReady()
    for (const done of ready) yield* itemsOf<T>(done)
    if (ready.length === 0) await changed()
  }
}
