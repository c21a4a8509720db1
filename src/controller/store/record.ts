import type { JsonObject } from '../../protocol/messages.js'

/**
 * One task as the hub records it (docs/wire-protocol.md, 'Record fields'): the request, where and when it ran, its
 * reply and what it printed. Field names are ipyparallel's, because clients query them by name.
 */
export interface TaskRecord {
  msg_id: string
  header: JsonObject | null
  metadata: JsonObject | null
  content: JsonObject | null
  /** The request's frames after the content: function and arguments. */
  buffers: Buffer[]
  submitted: Date | null
  client_uuid: string | null
  engine_uuid: string | null
  queue: 'mux' | 'task' | null
  started: Date | null
  completed: Date | null
  received: Date | null
  /** The msg_id this task was resubmitted as. */
  resubmitted: string | null
  result_header: JsonObject | null
  result_metadata: JsonObject | null
  result_content: JsonObject | null
  result_buffers: Buffer[]
  execute_input: unknown
  execute_result: unknown
  error: unknown
  stdout: string
  stderr: string
}

export type RecordField = keyof TaskRecord

/** Every field, in ipyparallel's order. */
export const RECORD_FIELDS: readonly RecordField[] = [
  'msg_id', 'header', 'metadata', 'content', 'buffers', 'submitted', 'client_uuid', 'engine_uuid', 'queue',
  'started', 'completed', 'received', 'resubmitted', 'result_header', 'result_metadata', 'result_content',
  'result_buffers', 'execute_input', 'execute_result', 'error', 'stdout', 'stderr',
]

export const DATE_FIELDS: ReadonlySet<string> = new Set(['submitted', 'started', 'completed', 'received'])
export const BUFFER_FIELDS: ReadonlySet<string> = new Set(['buffers', 'result_buffers'])

/** A record with nothing known but its id. */
export function emptyRecord(msgId: string): TaskRecord {
  return {
    msg_id: msgId, header: null, metadata: null, content: null, buffers: [], submitted: null, client_uuid: null,
    engine_uuid: null, queue: null, started: null, completed: null, received: null, resubmitted: null,
    result_header: null, result_metadata: null, result_content: null, result_buffers: [], execute_input: null,
    execute_result: null, error: null, stdout: '', stderr: '',
  }
}

/** A Mongo-style query: field -> value (equality) or { $operator: operand, ... }. */
export type Query = Record<string, unknown>

/**
 * Where the hub keeps task records. Synchronous: both stores answer at once (SQLite through better-sqlite3),
 * so the hub needs no callbacks. Reads see every write made before them.
 */
export interface TaskStore {
  readonly kind: 'memory' | 'sqlite' | 'none'
  /** Throws StoreKeyError if a record with that id exists. */
  addRecord(record: TaskRecord): void
  /** Throws StoreKeyError if there is none (saying so when it was culled). */
  getRecord(msgId: string): TaskRecord
  hasRecord(msgId: string): boolean
  /** Throws StoreKeyError if there is none. */
  updateRecord(msgId: string, changes: Partial<TaskRecord>): void
  /** No error if there is none. */
  dropRecord(msgId: string): void
  /** Returns how many were dropped. */
  dropMatchingRecords(query: Query): number
  /** Matching records in insertion order; with `keys`, only those fields (and msg_id, always). */
  findRecords(query: Query, keys?: readonly string[]): Partial<TaskRecord>[]
  /** Ids of the records with a submission date, oldest first. */
  getHistory(): string[]
  readonly size: number
  /**
   * Runs `send` once every write made so far is durable (at once for stores that keep nothing on disk). The
   * controller sends replies to clients through it, so a result a client has seen is never lost with the
   * controller: a restored controller finds it.
   */
  afterCommit(send: () => void): void
  close(): void
}

/** A record cut down to `keys` (msg_id always kept); unknown keys are left out. */
export function project(record: TaskRecord, keys: readonly string[] | undefined): Partial<TaskRecord> {
  if (!keys) return { ...record }
  const out: Record<string, unknown> = { msg_id: record.msg_id }
  for (const key of keys) if (Object.hasOwn(record, key)) out[key] = record[key as RecordField]
  return out
}
