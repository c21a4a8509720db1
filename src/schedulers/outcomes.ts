import type { Membership } from '../common/dependency.js'

/** How a task ended, as dependencies need it: success or failure, and where it ran (if on an engine). */
export interface Outcome {
  ok: boolean
  engineUuid: string | undefined
}

/** Where outcomes the scheduler no longer remembers can be looked up (the hub's task store). */
export type OutcomeLookup = (msgId: string) => Outcome | undefined

/** How many finished tasks the scheduler remembers itself; older ones are asked of the lookup. */
const REMEMBERED_OUTCOMES = 16_384

/**
 * The scheduler's memory of tasks, for dependencies: which tasks it holds now, and how recent ones ended.
 * ipyparallel's scheduler keeps every id it has seen forever; this keeps the tasks in flight plus the last
 * `limit` outcomes and asks `lookup` (the task store) about older ones, so memory does not grow with the
 * number of tasks ever run. A dependency on a task neither here nor in the store is unknown.
 */
export class TaskOutcomes {
  private readonly active = new Set<string>()
  private readonly recent = new Map<string, Outcome>()

  /** Tasks that completed successfully (anywhere). */
  readonly completed: Membership = { has: (id) => this.outcome(id)?.ok === true }
  /** Tasks that failed (anywhere). */
  readonly failed: Membership = { has: (id) => this.outcome(id)?.ok === false }

  constructor(private readonly lookup: OutcomeLookup = () => undefined, private readonly limit = REMEMBERED_OUTCOMES) {}

  /** A task was given to the scheduler. */
  accepted(msgId: string): void {
    this.active.add(msgId)
  }

  /** Whether a msg id names a task the scheduler holds or one that has finished. */
  known(msgId: string): boolean {
    return this.active.has(msgId) || this.outcome(msgId) !== undefined
  }

  finishedTask(msgId: string, ok: boolean, engineUuid: string | undefined): void {
    this.active.delete(msgId)
    this.recent.delete(msgId)
    this.recent.set(msgId, { ok, engineUuid })
    if (this.recent.size > this.limit) {
      const oldest = this.recent.keys().next().value
      if (oldest !== undefined) this.recent.delete(oldest)
    }
  }

  outcome(msgId: string): Outcome | undefined {
    return this.recent.get(msgId) ?? (this.active.has(msgId) ? undefined : this.lookup(msgId))
  }

  /** Tasks that completed on one engine, and those that failed there: what `follow` asks. */
  on(engineUuid: string): { completed: Membership; failed: Membership } {
    const here = (id: string): Outcome | undefined => {
      const o = this.outcome(id)
      return o?.engineUuid === engineUuid ? o : undefined
    }
    return { completed: { has: (id) => here(id)?.ok === true }, failed: { has: (id) => here(id)?.ok === false } }
  }

  /** How many outcomes are held in memory (for tests of the bound). */
  get remembered(): number {
    return this.recent.size
  }
}
