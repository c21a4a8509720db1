/**
 * Tasks waiting for an engine: higher priority first, first come first served within a priority. Deleting
 * from the middle (a task placed, timed out or failed) is O(1); iteration visits priorities high to low.
 */
export class WaitingQueue<T> {
  /** One insertion-ordered map per priority; `levels` keeps the priorities present, highest first. */
  private readonly byPriority = new Map<number, Map<string, T>>()
  private readonly priorityOf = new Map<string, number>()
  private levels: number[] = []

  get size(): number {
    return this.priorityOf.size
  }

  has(id: string): boolean {
    return this.priorityOf.has(id)
  }

  /** Adds at the back of its priority; adding an id already present keeps its place. */
  add(id: string, priority: number, item: T): void {
    if (this.priorityOf.has(id)) return
    let level = this.byPriority.get(priority)
    if (!level) {
      level = new Map()
      this.byPriority.set(priority, level)
      this.levels = [...this.byPriority.keys()].sort((a, b) => b - a)
    }
    level.set(id, item)
    this.priorityOf.set(id, priority)
  }

  delete(id: string): boolean {
    const priority = this.priorityOf.get(id)
    if (priority === undefined) return false
    this.priorityOf.delete(id)
    const level = this.byPriority.get(priority)
    level?.delete(id)
    if (level?.size === 0) {
      this.byPriority.delete(priority)
      this.levels = this.levels.filter((p) => p !== priority)
    }
    return true
  }

  /** Items in placement order. Deleting the current item while iterating is safe. */
  *values(): Generator<T> {
    for (const priority of [...this.levels]) {
      const level = this.byPriority.get(priority)
      if (level) yield* level.values()
    }
  }
}
