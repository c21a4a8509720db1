import { QueryError } from '../../common/errors.js'
import { parseIsoDate } from '../../protocol/dates.js'
import type { Query, TaskRecord } from './record.js'

/** Whether a record matches: the compiled form of a query, reused for every record. */
export type Matcher = (record: TaskRecord) => boolean

type Test = (value: unknown) => boolean

const OPERATORS: Record<string, (operand: unknown, where: string) => Test> = {
  $eq: (b) => (a) => same(a, b),
  $ne: (b) => (a) => !same(a, b),
  $lt: (b) => (a) => compare(a, b, (x, y) => x < y),
  $lte: (b) => (a) => compare(a, b, (x, y) => x <= y),
  // ipyparallel's DictDB has these two the wrong way round; here $gt means "greater than".
  $gt: (b) => (a) => compare(a, b, (x, y) => x > y),
  $gte: (b) => (a) => compare(a, b, (x, y) => x >= y),
  $in: (b, where) => {
    const list = arrayOperand(b, where)
    return (a) => list.some((x) => same(a, x))
  },
  $nin: (b, where) => {
    const list = arrayOperand(b, where)
    return (a) => !list.some((x) => same(a, x))
  },
  $all: (b, where) => {
    const list = arrayOperand(b, where)
    return (a) => {
      if (typeof a === 'string') return list.every((x) => typeof x === 'string' && a.includes(x))
      return Array.isArray(a) && list.every((x) => a.some((y) => same(y, x)))
    }
  },
  $mod: (b, where) => {
    if (!Array.isArray(b) || b.length !== 2 || !b.every((x) => typeof x === 'number') || b[0] === 0) {
      throw new QueryError(`${where}: $mod takes [divisor, remainder], two numbers with a divisor other than 0, not ${JSON.stringify(b)}`)
    }
    const [divisor, remainder] = b as [number, number]
    return (a) => typeof a === 'number' && a % divisor === remainder
  },
  $exists: (b, where) => {
    if (typeof b !== 'boolean') throw new QueryError(`${where}: $exists takes true or false, not ${JSON.stringify(b)}`)
    return (a) => (a !== null && a !== undefined) === b
  },
}

/** The operators a query may use. */
export const QUERY_OPERATORS: readonly string[] = Object.keys(OPERATORS)

/**
 * Compiles a Mongo-style query (docs/wire-protocol.md, 'Record queries'). A plain value means equality; an object of
 * `$` operators means all of them; several fields must all match. Fields a record does not have are null. Throws
 * QueryError naming the field and operator when the query cannot be evaluated.
 */
export function compileQuery(query: Query): Matcher {
  if (typeof query !== 'object' || query === null || Array.isArray(query)) {
    throw new QueryError(`a query is an object of field conditions, not ${JSON.stringify(query)}`)
  }
  const tests: [string, Test][] = []
  for (const [field, condition] of Object.entries(query)) {
    if (isOperatorObject(condition)) {
      for (const [op, operand] of Object.entries(condition)) {
        const make = Object.hasOwn(OPERATORS, op) ? OPERATORS[op] : undefined
        if (!make) throw new QueryError(`${field}: unknown operator ${op} (known: ${QUERY_OPERATORS.join(' ')})`)
        tests.push([field, make(operand, field)])
      }
    } else {
      tests.push([field, (a) => same(a, condition)])
    }
  }
  return (record) => tests.every(([field, test]) => test(valueOf(record, field)))
}

/** `{ $gt: 1 }` is a set of operators; `{ a: 1 }` (or `{}`) is a value to compare with. */
export function isOperatorObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Date || Buffer.isBuffer(value)) return false
  const keys = Object.keys(value)
  return keys.length > 0 && keys.every((k) => k.startsWith('$'))
}

function valueOf(record: TaskRecord, field: string): unknown {
  return Object.hasOwn(record, field) ? (record as unknown as Record<string, unknown>)[field] ?? null : null
}

function arrayOperand(b: unknown, where: string): unknown[] {
  if (!Array.isArray(b)) throw new QueryError(`${where}: this operator takes a list, not ${JSON.stringify(b)}`)
  return b
}

/** A date, number or string, comparable with `<`; a date string counts as a date when compared with a Date. */
function comparable(x: unknown, other: unknown): number | string | undefined {
  if (x instanceof Date) return x.getTime()
  if (typeof x === 'string' && other instanceof Date) return parseIsoDate(x)
  if (typeof x === 'number' || typeof x === 'string') return x
  return undefined
}

function compare(a: unknown, b: unknown, holds: (x: number | string, y: number | string) => boolean): boolean {
  const x = comparable(a, b)
  const y = comparable(b, a)
  if (x === undefined || y === undefined || typeof x !== typeof y) return false
  return holds(x, y)
}

/** Equality as a query means it: null matches null and absent, dates by time, lists and objects by content. */
function same(a: unknown, b: unknown): boolean {
  if (a === undefined) a = null
  if (b === undefined) b = null
  if (a instanceof Date || b instanceof Date) {
    const x = comparable(a, b)
    const y = comparable(b, a)
    return x !== undefined && x === y
  }
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return a === b
  if (Buffer.isBuffer(a) || Buffer.isBuffer(b)) return Buffer.isBuffer(a) && Buffer.isBuffer(b) && a.equals(b)
  if (Array.isArray(a) !== Array.isArray(b)) return false
  const ka = Object.keys(a)
  const kb = Object.keys(b)
  return ka.length === kb.length && ka.every((k) => same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
}
