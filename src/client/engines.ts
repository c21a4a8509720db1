import { TimeoutError } from '../common/errors.js'

interface Waiter {
  count: number
  resolve: () => void
  reject: (error: Error) => void
  timer: NodeJS.Timeout | undefined
}

/**
 * The engines this client knows: id ↔ uuid, from the connection_reply and then the hub's notifications.
 * Departed engines stay known by uuid, so a late reply still names its engine id.
 */
export class EngineTable {
  private readonly uuidById = new Map<number, string>()
  private readonly idByUuid = new Map<string, number>()
  private readonly waiters = new Set<Waiter>()
  private sortedIds: number[] = []

  /** Registered engine ids, ascending. */
  get ids(): number[] {
    return [...this.sortedIds]
  }

  get size(): number {
    return this.uuidById.size
  }

  add(id: number, uuid: string): void {
    this.uuidById.set(id, uuid)
    this.idByUuid.set(uuid, id)
    this.sortedIds = [...this.uuidById.keys()].sort((a, b) => a - b)
    for (const waiter of this.waiters) {
      if (this.size >= waiter.count) this.finish(waiter).resolve()
    }
  }

  /** Removes a registered engine; returns its uuid, or undefined if it was not registered. */
  remove(id: number): string | undefined {
    const uuid = this.uuidById.get(id)
    if (uuid === undefined) return undefined
    this.uuidById.delete(id)
    this.sortedIds = [...this.uuidById.keys()].sort((a, b) => a - b)
    return uuid
  }

  /** Uuid of a registered engine. */
  uuidOf(id: number): string | undefined {
    return this.uuidById.get(id)
  }

  /** Id of an engine by uuid, registered now or earlier. */
  idOf(uuid: string): number | undefined {
    return this.idByUuid.get(uuid)
  }

  has(id: number): boolean {
    return this.uuidById.has(id)
  }

  /** Resolves when at least `count` engines are registered; TimeoutError after `timeoutMs` (undefined = never). */
  waitFor(count: number, timeoutMs: number | undefined): Promise<void> {
    if (this.size >= count) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { count, resolve, reject, timer: undefined }
      if (timeoutMs !== undefined) {
        waiter.timer = setTimeout(() => {
          this.finish(waiter).reject(new TimeoutError(`${this.size} of ${count} engines registered after ${timeoutMs} ms`))
        }, timeoutMs)
      }
      this.waiters.add(waiter)
    })
  }

  /** Rejects every waiter (the client is closing). */
  failWaiters(error: Error): void {
    for (const waiter of this.waiters) this.finish(waiter).reject(error)
  }

  private finish(waiter: Waiter): Waiter {
    clearTimeout(waiter.timer)
    this.waiters.delete(waiter)
    return waiter
  }
}
