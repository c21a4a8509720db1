/**
 * A dependency of a task on other tasks (ipyparallel's `Dependency`, docs/wire-protocol.md, 'Dependencies'): a set of
 * msg ids and the rule for when it is met. Shared by the client (to build the wire form) and the scheduler (to judge
 * it).
 */

/** Anything that carries msg ids: an AsyncResult, an AsyncMapResult. */
export interface HasMsgIds {
  readonly msgIds: readonly string[]
}

export interface DependencyOptions {
  /** true: every task must have finished as counted; false: any one. Default true. */
  all?: boolean
  /** Tasks that succeeded count. Default true. */
  success?: boolean
  /** Tasks that failed count. Default false. */
  failure?: boolean
}

/** What `met` and `unreachable` ask of the finished tasks: a `Set` of msg ids, or anything that answers `has`. */
export interface Membership {
  has(msgId: string): boolean
}

/** The wire form: a plain list (all, success only) or ipyparallel's `as_dict()`. */
export type WireDependency = string[] | { dependencies: string[]; all: boolean; success: boolean; failure: boolean }

export class Dependency {
  readonly dependencies: string[]
  readonly all: boolean
  readonly success: boolean
  readonly failure: boolean

  constructor(ids: Iterable<string | HasMsgIds>, options: DependencyOptions = {}) {
    const list: string[] = []
    for (const id of ids) {
      if (typeof id === 'string') list.push(id)
      else if (id && Array.isArray(id.msgIds)) list.push(...(id.msgIds as readonly unknown[]).map(String))
      else throw new TypeError('a dependency is made of msg ids or results (objects with msgIds)')
    }
    this.dependencies = [...new Set(list)]
    this.all = options.all ?? true
    this.success = options.success ?? true
    this.failure = options.failure ?? false
    if (!this.success && !this.failure) throw new TypeError('a dependency must count success, failure, or both')
  }

  /** Reads the wire form; throws a TypeError naming what is wrong. */
  static fromWire(value: unknown): Dependency {
    // Most tasks have no dependency: they share one object (Dependency is never changed after construction).
    if (value === null || value === undefined || (Array.isArray(value) && value.length === 0)) return NONE
    if (Array.isArray(value)) {
      if (!value.every((x) => typeof x === 'string')) throw new TypeError('a dependency list must hold msg id strings')
      return new Dependency(value)
    }
    if (typeof value === 'object') {
      const { dependencies, all, success, failure } = value as Record<string, unknown>
      if (!Array.isArray(dependencies) || !dependencies.every((x) => typeof x === 'string')) throw new TypeError('dependencies must be a list of msg id strings')
      for (const [name, flag] of Object.entries({ all, success, failure })) {
        if (flag !== undefined && typeof flag !== 'boolean') throw new TypeError(`dependency '${name}' must be a boolean`)
      }
      return new Dependency(dependencies, { all: all as boolean | undefined, success: success as boolean | undefined, failure: failure as boolean | undefined })
    }
    throw new TypeError('a dependency must be a list of msg ids or {dependencies, all, success, failure}')
  }

  get empty(): boolean {
    return this.dependencies.length === 0
  }

  toWire(): WireDependency {
    return this.all && this.success && !this.failure ? [...this.dependencies] : { dependencies: [...this.dependencies], all: this.all, success: this.success, failure: this.failure }
  }

  /** Met, given the tasks that completed and failed (globally for `after`, on one engine for `follow`). */
  met(completed: Membership, failed: Membership): boolean {
    if (this.empty) return true
    const counts = (id: string): boolean => (this.success && completed.has(id)) || (this.failure && failed.has(id))
    return this.all ? this.dependencies.every(counts) : this.dependencies.some(counts)
  }

  /** Can never be met: a task it needs finished the wrong way (all), or every one did (any). */
  unreachable(completed: Membership, failed: Membership): boolean {
    if (this.empty) return false
    const bad = (id: string): boolean => (!this.success && completed.has(id)) || (!this.failure && failed.has(id))
    return this.all ? this.dependencies.some(bad) : this.dependencies.every(bad)
  }
}

/** The empty dependency (always met), shared. */
const NONE = Object.freeze(new Dependency([]))
