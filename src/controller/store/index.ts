import { isAbsolute, join, resolve } from 'node:path'
import { ConfigError, StoreKeyError } from '../../common/errors.js'
import { MemoryTaskStore } from './memory-store.js'
import { SqliteTaskStore } from './sqlite-store.js'
import type { Query, TaskRecord, TaskStore } from './record.js'

export { MemoryTaskStore, type MemoryStoreOptions } from './memory-store.js'
export { SqliteTaskStore } from './sqlite-store.js'
export { compileQuery, QUERY_OPERATORS } from './query.js'
export { emptyRecord, RECORD_FIELDS, type Query, type TaskRecord, type TaskStore } from './record.js'

/** ipyparallel's NoDB: records nothing, so every read fails with a KeyError that says why. */
export class NoTaskStore implements TaskStore {
  readonly kind = 'none'
  readonly size = 0
  addRecord(_record: TaskRecord): void {}
  getRecord(msgId: string): TaskRecord {
    throw new StoreKeyError(`this controller keeps no task records (--db=none), so it has none for ${msgId}`)
  }
  afterCommit(send: () => void): void {
    send()
  }

  hasRecord(_msgId: string): boolean {
    return false
  }
  updateRecord(_msgId: string, _changes: Partial<TaskRecord>): void {}
  dropRecord(_msgId: string): void {}
  dropMatchingRecords(_query: Query): number {
    return 0
  }
  findRecords(_query: Query): Partial<TaskRecord>[] {
    throw new StoreKeyError('this controller keeps no task records (--db=none)')
  }
  getHistory(): string[] {
    throw new StoreKeyError('this controller keeps no task records (--db=none)')
  }
  close(): void {}
}

/**
 * The store a controller flag names: `memory` (default), `sqlite` (`<profile dir>/tasks.db`), `sqlite:<path>`
 * (relative to the current directory), or `none`.
 */
export function openTaskStore(spec: string, profileDir: string): TaskStore {
  if (spec === 'memory') return new MemoryTaskStore()
  if (spec === 'none') return new NoTaskStore()
  if (spec === 'sqlite') return new SqliteTaskStore({ path: join(profileDir, 'tasks.db') })
  if (spec.startsWith('sqlite:') && spec.length > 'sqlite:'.length) {
    const path = spec.slice('sqlite:'.length)
    return new SqliteTaskStore({ path: path === ':memory:' || isAbsolute(path) ? path : resolve(path) })
  }
  throw new ConfigError(`unknown task store '${spec}': use memory, sqlite, sqlite:<path> or none`)
}
