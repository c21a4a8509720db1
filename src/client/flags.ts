import { ConfigError } from '../common/errors.js'
import { checkChunksize, shown } from './chunks.js'

/**
 * Flags of a load-balanced view: what the user may pass, checked once and filled into a type without optional
 * fields; dependencies are turned into their wire form (ipyparallel's list of msg ids, or the dict form) here.
 */

import type { HasMsgIds, WireDependency } from '../common/dependency.js'
export type { HasMsgIds, WireDependency }

/**
 * A dependency: a msg id, a result, a list of them, or an object with `all` (default true: every task must have
 * finished; false: any one), `success` (default true: counts tasks that succeeded) and `failure` (default false:
 * counts tasks that failed), with the ids as its iterable items or in `dependencies`.
 */
export type DependencyInput =
  | string
  | HasMsgIds
  | Iterable<string | HasMsgIds>
  | { dependencies: Iterable<string | HasMsgIds>; all?: boolean; success?: boolean; failure?: boolean }


/** Flags of a LoadBalancedView (all optional; `withFlags`/`setFlags` take the same). */
export interface LoadBalancedFlags {
  /** Engine ids the tasks may run on. Default: any engine (null). */
  targets?: number | readonly number[] | null
  /** Time dependency: run only after these tasks finished. Default: none. */
  after?: DependencyInput | null
  /** Location dependency: run only where these tasks ran. Default: none. */
  follow?: DependencyInput | null
  /**
   * How long a task may wait in the scheduler (for its dependencies or a free engine), in ms; then it fails
   * with TaskTimeout. A task that has started is never interrupted. Default 0: no limit.
   */
  timeoutMs?: number
  /** How many times a failed task is resubmitted (to another engine). Default 0. */
  retries?: number
  /** Inputs per task in `map`/`imap`. Default 1. */
  chunksize?: number
  /** Whether map results iterate in input order. Default true. */
  ordered?: boolean
  /**
   * Among tasks waiting for an engine, higher priorities are placed first; equal priorities in submission
   * order. An integer; default 0. Ignored (with a warning) on a `pure` cluster.
   */
  priority?: number
}

/** Filled flags, as the view keeps them. */
export interface ViewFlags {
  targets: number[] | null
  after: WireDependency
  follow: WireDependency
  timeoutMs: number
  retries: number
  chunksize: number
  ordered: boolean
  priority: number
}

export const DEFAULT_FLAGS: ViewFlags = { targets: null, after: [], follow: [], timeoutMs: 0, retries: 0, chunksize: 1, ordered: true, priority: 0 }

const FLAG_NAMES = Object.keys(DEFAULT_FLAGS)

/** `base` with `changes` applied, every change checked; errors name the flag and the rule. */
export function applyFlags(base: ViewFlags, changes: LoadBalancedFlags, where: string): ViewFlags {
  if (changes === null || typeof changes !== 'object') throw new ConfigError(`${where}: flags must be an object`)
  const next = { ...base }
  for (const [key, value] of Object.entries(changes) as [keyof LoadBalancedFlags, unknown][]) {
    if (!FLAG_NAMES.includes(key)) throw new ConfigError(`${where}: unknown flag '${key}' (flags are ${FLAG_NAMES.join(', ')})`)
    if (value === undefined) continue
    switch (key) {
      case 'targets':
        next.targets = checkTargets(value, where)
        break
      case 'after':
      case 'follow':
        next[key] = value === null ? [] : toWireDependency(value as DependencyInput, `${where}: ${key}`)
        break
      case 'timeoutMs':
        if (!(typeof value === 'number' && value >= 0 && Number.isFinite(value))) throw new ConfigError(`${where}: timeoutMs must be a number of ms ≥ 0 (0 = no limit), not ${shown(value)}`)
        next.timeoutMs = value
        break
      case 'retries':
        if (!(typeof value === 'number' && Number.isInteger(value) && value >= 0)) throw new ConfigError(`${where}: retries must be an integer ≥ 0, not ${shown(value)}`)
        next.retries = value
        break
      case 'chunksize':
        next.chunksize = checkChunksize(value, where)
        break
      case 'ordered':
        if (typeof value !== 'boolean') throw new ConfigError(`${where}: ordered must be a boolean`)
        next.ordered = value
        break
      case 'priority':
        if (!(typeof value === 'number' && Number.isSafeInteger(value))) throw new ConfigError(`${where}: priority must be an integer (higher runs first), not ${shown(value)}`)
        next.priority = value
        break
    }
  }
  return next
}

/** Engine ids as a sorted list without duplicates; null means any engine. */
export function checkTargets(value: unknown, where: string): number[] | null {
  if (value === null) return null
  const list = typeof value === 'number' ? [value] : Array.isArray(value) ? (value as unknown[]) : undefined
  if (!list || list.some((id) => !(typeof id === 'number' && Number.isInteger(id) && id >= 0))) {
    throw new ConfigError(`${where}: targets must be an engine id (an integer ≥ 0), a list of them, or null for any engine`)
  }
  if (list.length === 0) throw new ConfigError(`${where}: targets must not be empty (use null for any engine)`)
  return [...new Set(list as number[])].sort((a, b) => a - b)
}

/**
 * The engines of a direct or broadcast view, in the order given (results come back in it, as ipyparallel's
 * `rc[[3, 0, 2]]`), each once.
 */
export function checkViewTargets(value: unknown, where: string): number[] {
  const sorted = checkTargets(value, where) ?? []
  const list = typeof value === 'number' ? [value] : (value as number[])
  return sorted.length === 0 ? [] : [...new Set(list)]
}

function idsOf(items: Iterable<unknown>, where: string): string[] {
  const ids: string[] = []
  for (const item of items) {
    if (typeof item === 'string') ids.push(item)
    else if (hasMsgIds(item)) ids.push(...item.msgIds)
    else throw new ConfigError(`${where}: a dependency must be a msg id, a result, or a list of them`)
  }
  return ids
}

function hasMsgIds(value: unknown): value is HasMsgIds {
  return typeof value === 'object' && value !== null && Array.isArray((value as { msgIds?: unknown }).msgIds)
}

export function toWireDependency(input: DependencyInput, where: string): WireDependency {
  if (typeof input === 'string') return [input]
  if (hasMsgIds(input)) return [...input.msgIds]
  if (typeof input !== 'object' || input === null) throw new ConfigError(`${where}: a dependency must be a msg id, a result, or a list of them`)
  const source = 'dependencies' in input ? input.dependencies : input
  if (!(Symbol.iterator in Object(source))) throw new ConfigError(`${where}: a dependency must be a msg id, a result, or a list of them`)
  const ids = idsOf(source as Iterable<unknown>, where)
  const { all = true, success = true, failure = false } = input as { all?: unknown; success?: unknown; failure?: unknown }
  if (typeof all !== 'boolean' || typeof success !== 'boolean' || typeof failure !== 'boolean') {
    throw new ConfigError(`${where}: all, success and failure must be booleans`)
  }
  if (!success && !failure) throw new ConfigError(`${where}: a dependency must count success, failure, or both`)
  return all && success && !failure ? ids : { dependencies: ids, all, success, failure }
}
