import { ConfigError } from '../common/errors.js'
import type { Message } from '../protocol/messages.js'
import { decodeValue } from '../protocol/payload.js'

/**
 * What DirectView's execute, push, pull, scatter and gather need beyond apply: the execute reply, the small
 * functions that run on the engines to set and read their globals, and how sequences are cut and joined.
 */

/** One engine's answer to `execute(code)`. */
export interface ExecuteReply {
  /** The engine's count of the (not silent) executes it has run, this one included (ipykernel's `execution_count`). */
  readonly executionCount: number
  /**
   * The value of the code's last statement when that is an expression (`await` allowed); undefined when the code
   * ended with a declaration or another statement, or when the value cannot be sent back (a function, say): `text`
   * then still shows it.
   */
  readonly value: unknown
  /** The value as `util.inspect` shows it on the engine (the `text/plain` of its execute_result); undefined if there is none. */
  readonly text: string | undefined
}

/**
 * An execute_reply as an ExecuteReply: the count and text from its content, the value from its buffers. The task
 * records keep no buffers of an execute_reply (ipyparallel's clients read none there), so a result fetched from
 * the hub has the text but no value.
 */
export function executeReplyOf(msg: Pick<Message, 'content' | 'buffers'>): ExecuteReply {
  const { execution_count: count, data } = msg.content as { execution_count?: unknown; data?: unknown }
  const plain = typeof data === 'object' && data !== null ? (data as Record<string, unknown>)['text/plain'] : undefined
  return {
    executionCount: typeof count === 'number' ? count : 0,
    // ipengine (Python) sends no value: its execute_result is on IOPub only.
    value: msg.buffers.length > 0 ? decodeValue(msg.buffers) : undefined,
    text: typeof plain === 'string' ? plain : undefined,
  }
}

const IDENTIFIER = /^[\p{ID_Start}$_][\p{ID_Continue}$\u200c\u200d]*$/u

/** Checks the names of `push`: identifiers, each becoming a global of the engines. */
export function checkPushNames(values: unknown, where: string): Record<string, unknown> {
  if (typeof values !== 'object' || values === null || Array.isArray(values)) {
    throw new ConfigError(`${where}: give an object of the globals to set, like { a: 1, data: [1, 2] }`)
  }
  for (const name of Object.keys(values)) {
    if (!IDENTIFIER.test(name)) throw new ConfigError(`${where}: '${name}' is not a JavaScript identifier, so it cannot be a global's name`)
  }
  return values as Record<string, unknown>
}

/** Checks the names of `pull`: identifiers or paths of them (`config.size`). */
export function checkPullNames(names: readonly string[], where: string): void {
  if (names.length === 0) throw new ConfigError(`${where}: give at least one name`)
  for (const name of names) {
    if (typeof name !== 'string' || !name.split('.').every((part) => IDENTIFIER.test(part))) {
      throw new ConfigError(`${where}: ${JSON.stringify(name)} is not a name (an identifier, or a path of them like config.size)`)
    }
  }
}

/* eslint-disable @typescript-eslint/no-implied-eval -- the two functions below run on the engines (sent as source),
   where a Function of a checked name reaches the global scope, `const` and `let` declarations of executed code included */

/** Runs on each engine: assigns each global as `name = value` would in executed code (a `const` refuses). */
export const setGlobals = (values: Record<string, unknown>): void => {
  for (const [name, value] of Object.entries(values)) (new Function('value', `${name} = value`) as (value: unknown) => void)(value)
}

/** Runs on each engine: the value of one name, or of several as an array; an unknown name is a ReferenceError. */
export const readGlobals = (names: string[], one: boolean): unknown => {
  const values = names.map((name) => (new Function(`return (${name})`) as () => unknown)())
  return one ? values[0] : values
}

/* eslint-enable @typescript-eslint/no-implied-eval */

/**
 * The part of `items` that engine `index` of `parts` gets: contiguous blocks in order, the first `length % parts`
 * one longer (ipyparallel's `dist='b'`); parts may be empty. Typed arrays are cut into typed arrays.
 */
export function scatterPart<T>(items: ArrayLike<T> & { slice(start: number, end: number): ArrayLike<T> }, index: number, parts: number): ArrayLike<T> {
  const base = Math.floor(items.length / parts)
  const extra = items.length % parts
  const start = index * base + Math.min(index, extra)
  return items.slice(start, start + base + (index < extra ? 1 : 0))
}

/**
 * The engines' parts joined in target order: arrays (and typed arrays) are concatenated, anything else (a part
 * that `flatten` made a single value) is one element (ipyparallel's joinPartitions). Parts that are all typed
 * arrays of one kind join into one of that kind.
 */
export function joinParts(parts: readonly unknown[]): unknown[] | ArrayBufferView {
  const first = parts[0]
  if (ArrayBuffer.isView(first) && !(first instanceof DataView)) {
    const kind = first.constructor as new (length: number) => ArrayBufferView & { set(a: ArrayLike<number>, at: number): void; length: number }
    if (parts.every((p) => p instanceof kind)) {
      const joined = new kind(parts.reduce((n: number, p) => n + (p as { length: number }).length, 0))
      let at = 0
      for (const p of parts as (ArrayLike<number> & { length: number })[]) {
        joined.set(p, at)
        at += p.length
      }
      return joined
    }
  }
  const out: unknown[] = []
  for (const part of parts) {
    if (Array.isArray(part)) for (const item of part as unknown[]) out.push(item)
    else if (ArrayBuffer.isView(part) && !(part instanceof DataView)) for (const item of Array.from(part as unknown as ArrayLike<unknown>)) out.push(item)
    else out.push(part)
  }
  return out
}
