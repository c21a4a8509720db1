import { ConfigError, ProtocolError } from '../common/errors.js'

/**
 * Pure helpers of map and imap: reading `map(fn, ...iterables, options?)` arguments, zipping inputs into
 * argument lists, cutting them into chunks (one task each), and flattening chunk results back.
 */

/** Options accepted as the trailing argument of `map`. */
export interface MapOptions {
  /** Inputs per task (each task is one message and one reply). Default: the view's `chunksize` (1). */
  chunksize?: number
  /** Iterate results in input order (true) or as they arrive (false). Default: the view's `ordered` (true). */
  ordered?: boolean
  /**
   * Resolve with each failed task's error in place of its results (at each input position of its chunk) instead
   * of rejecting, as ipyparallel's `return_exceptions`; `for await` then yields the errors too. Default false.
   */
  returnExceptions?: boolean
}

/** Options accepted as the trailing argument of `imap`. */
export interface ImapOptions extends Omit<MapOptions, 'returnExceptions'> {
  /** Most tasks submitted but not finished at any time. Default: the number of engines the view can use. */
  maxOutstanding?: number
}

export type AnyIterable<T> = Iterable<T> | AsyncIterable<T>

const MAP_KEYS = ['chunksize', 'ordered', 'returnExceptions'] as const
const IMAP_KEYS = ['chunksize', 'ordered', 'maxOutstanding'] as const

/** A map's trailing options: a plain object, neither an array nor iterable. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object') return false
  const proto = Object.getPrototypeOf(value) as unknown
  return (proto === Object.prototype || proto === null) && !(Symbol.iterator in value) && !(Symbol.asyncIterator in value)
}

/**
 * Splits `[...iterables, options?]`: a trailing plain object (not an array, not iterable) is the options.
 * Checks that there is at least one input and that each is iterable (async iterables only for imap).
 */
export function splitMapArguments<O extends MapOptions>(
  method: 'map' | 'imap',
  rest: readonly unknown[],
): { iterables: AnyIterable<unknown>[]; options: O } {
  const last = rest[rest.length - 1]
  const hasOptions = isPlainObject(last)
  const options = (hasOptions ? last : {}) as O
  const inputs = hasOptions ? rest.slice(0, -1) : rest
  const allowed: readonly string[] = method === 'map' ? MAP_KEYS : IMAP_KEYS
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key)) throw new ConfigError(`${method}: unknown option '${key}' (options are ${allowed.join(', ')})`)
  }
  if (options.chunksize !== undefined) checkChunksize(options.chunksize, method)
  if (options.ordered !== undefined && typeof options.ordered !== 'boolean') throw new ConfigError(`${method}: ordered must be a boolean`)
  if (options.returnExceptions !== undefined && typeof options.returnExceptions !== 'boolean') throw new ConfigError(`${method}: returnExceptions must be a boolean`)
  const max = (options as ImapOptions).maxOutstanding
  if (max !== undefined && !(Number.isInteger(max) && max >= 1)) throw new ConfigError(`${method}: maxOutstanding must be an integer ≥ 1, not ${shown(max)}`)
  if (inputs.length === 0) throw new ConfigError(`${method}: give at least one iterable of inputs`)
  inputs.forEach((input, i) => {
    const ok = (input !== null && typeof input === 'object') || typeof input === 'string'
    const sync = ok && Symbol.iterator in Object(input)
    const async = ok && Symbol.asyncIterator in Object(input)
    if (!sync && !(async && method === 'imap')) {
      const kinds = method === 'imap' ? 'an iterable or async iterable' : 'an iterable (use imap for async iterables)'
      throw new ConfigError(`${method}: input ${i} is not ${kinds}`)
    }
  })
  return { iterables: inputs as AnyIterable<unknown>[], options }
}

/** A value as it may appear in an error message. */
export function shown(value: unknown): string {
  return typeof value === 'string' ? `'${value}'` : typeof value === 'object' && value !== null ? (Array.isArray(value) ? 'an array' : 'an object') : String(value)
}

export function checkChunksize(value: unknown, where: string): number {
  if (!(typeof value === 'number' && Number.isInteger(value) && value >= 1)) {
    throw new ConfigError(`${where}: chunksize must be an integer ≥ 1, not ${shown(value)}`)
  }
  return value
}

/**
 * The inputs of a map as its chunks carry them: with one iterable, its elements themselves (each is the function's
 * only argument, and nothing is wrapped); with several, the argument lists of their zip.
 */
export function mapInputs(iterables: readonly Iterable<unknown>[]): unknown[] {
  return iterables.length === 1 ? Array.from(iterables[0] as Iterable<unknown>) : zipArguments(iterables)
}

/** Lazy `mapInputs`, for imap. */
export function mapInputsAsync(iterables: readonly AnyIterable<unknown>[]): AsyncGenerator<unknown> {
  return iterables.length === 1 ? firstOfEach(zipArgumentsAsync(iterables)) : zipArgumentsAsync(iterables)
}

async function* firstOfEach(lists: AsyncGenerator<unknown[]>): AsyncGenerator<unknown> {
  for await (const [value] of lists) yield value
}

/** Argument lists of `zip(...iterables)`: element i of each input; stops at the shortest, like zip. */
export function zipArguments(iterables: readonly Iterable<unknown>[]): unknown[][] {
  const iterators = iterables.map((it) => it[Symbol.iterator]())
  const lists: unknown[][] = []
  try {
    for (;;) {
      const args: unknown[] = []
      for (const it of iterators) {
        const step = it.next()
        if (step.done) return lists
        args.push(step.value)
      }
      lists.push(args)
    }
  } finally {
    for (const it of iterators) it.return?.()
  }
}

/** Lazy zip of iterables and async iterables, for imap. */
export async function* zipArgumentsAsync(iterables: readonly AnyIterable<unknown>[]): AsyncGenerator<unknown[]> {
  const iterators = iterables.map((it) =>
    Symbol.asyncIterator in it ? (it as AsyncIterable<unknown>)[Symbol.asyncIterator]() : (it as Iterable<unknown>)[Symbol.iterator](),
  )
  try {
    for (;;) {
      const args: unknown[] = []
      for (const it of iterators) {
        const step = await it.next()
        if (step.done) return
        args.push(step.value)
      }
      yield args
    }
  } finally {
    await Promise.all(iterators.map(async (it) => it.return?.()))
  }
}

/** Consecutive slices of `size` items (the last may be shorter). */
export function chunk<T>(items: readonly T[], size: number): T[][] {
  const chunks: T[][] = []
  for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size))
  return chunks
}

/** `parts` contiguous slices whose sizes differ by at most one (ipyparallel's 'b' distribution); empty ones dropped. */
export function partition<T>(items: readonly T[], parts: number): T[][] {
  const out: T[][] = []
  const base = Math.floor(items.length / parts)
  const extra = items.length % parts
  let at = 0
  for (let i = 0; i < parts; i++) {
    const size = base + (i < extra ? 1 : 0)
    if (size > 0) out.push(items.slice(at, at + size))
    at += size
  }
  return out
}

/** Lazy chunks of an async sequence, for imap. */
export async function* chunkAsync<T>(source: AsyncIterable<T>, size: number): AsyncGenerator<T[]> {
  let current: T[] = []
  for await (const item of source) {
    current.push(item)
    if (current.length === size) {
      yield current
      current = []
    }
  }
  if (current.length > 0) yield current
}

/** The items of one chunk's result, which must be an array (what the chunk wrapper returns). */
export function chunkItems(value: unknown, msgId: string): unknown[] {
  if (!Array.isArray(value)) throw new ProtocolError(`map task ${msgId} returned ${typeof value}, not the array of its chunk's results`)
  return value as unknown[]
}

/** Concatenates chunk results in task order. */
export function flattenChunks(values: readonly unknown[], msgIds: readonly string[]): unknown[] {
  // One preallocated array: flatMap's intermediate copies were a visible share of a large map's client time.
  const parts = values.map((v, i) => chunkItems(v, msgIds[i] ?? '?'))
  const out = new Array<unknown>(parts.reduce((n, part) => n + part.length, 0))
  let at = 0
  for (const part of parts) {
    for (let i = 0; i < part.length; i++) out[at++] = part[i]
  }
  return out
}
