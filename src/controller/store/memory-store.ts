import { StoreKeyError } from '../../common/errors.js'
import { compileQuery, isOperatorObject } from './query.js'
import { project, type Query, type TaskRecord, type TaskStore } from './record.js'

export interface MemoryStoreOptions {
  /** Most finished records kept; past it the oldest `cullFraction` of them go. Default 1024 (ipyparallel's). */
  recordLimit?: number
  /** Most bytes of request and result frames kept; past it the oldest finished records go. Default 1 GiB. */
  sizeLimitBytes?: number
  /** Share of the limit dropped at once. Default 0.1. */
  cullFraction?: number
}

/** How many culled ids are remembered, so that asking for one says "culled" rather than "no such record". */
const REMEMBERED_CULLED_IDS = 65_536

const bytesOf = (buffers: readonly Buffer[]): number => buffers.reduce((sum, b) => sum + b.length, 0)

/**
 * Records in memory, with ipyparallel DictDB's limits: when more than `recordLimit` records have finished, or
 * their frames pass `sizeLimitBytes`, the oldest finished ones are dropped (a tenth of the limit at a time).
 * Unlike DictDB it never drops a task that is still pending: the hub needs that record when the reply comes.
 */
export class MemoryTaskStore implements TaskStore {
  readonly kind = 'memory'
  private readonly records = new Map<string, TaskRecord>()
  private readonly culled = new Set<string>()
  /** Insertion sequence of each record, so lookups by id still answer in insertion order. */
  private readonly order = new WeakMap<TaskRecord, number>()
  private inserted = 0
  private finishedCount = 0
  private bytes = 0
  private readonly recordLimit: number
  private readonly sizeLimitBytes: number
  private readonly cullFraction: number

  constructor(options: MemoryStoreOptions = {}) {
    this.recordLimit = options.recordLimit ?? 1024
    this.sizeLimitBytes = options.sizeLimitBytes ?? 2 ** 30
    this.cullFraction = options.cullFraction ?? 0.1
  }

  get size(): number {
    return this.records.size
  }

  addRecord(record: TaskRecord): void {
    if (this.records.has(record.msg_id)) throw new StoreKeyError(`a record for ${record.msg_id} exists already`)
    const copy = { ...record }
    this.records.set(copy.msg_id, copy)
    this.order.set(copy, this.inserted++)
    this.culled.delete(copy.msg_id)
    this.account(copy, 1)
    this.cull()
  }

  getRecord(msgId: string): TaskRecord {
    const record = this.records.get(msgId)
    if (!record) throw this.missing(msgId)
    return { ...record }
  }

  afterCommit(send: () => void): void {
    send()
  }

  hasRecord(msgId: string): boolean {
    return this.records.has(msgId)
  }

  updateRecord(msgId: string, changes: Partial<TaskRecord>): void {
    const record = this.records.get(msgId)
    if (!record) throw this.missing(msgId)
    this.account(record, -1)
    Object.assign(record, changes, { msg_id: msgId })
    this.account(record, 1)
    this.cull()
  }

  dropRecord(msgId: string): void {
    const record = this.records.get(msgId)
    if (!record) return
    this.account(record, -1)
    this.records.delete(msgId)
  }

  dropMatchingRecords(query: Query): number {
    const matching = this.matching(query)
    for (const record of matching) this.dropRecord(record.msg_id)
    return matching.length
  }

  findRecords(query: Query, keys?: readonly string[]): Partial<TaskRecord>[] {
    return this.matching(query).map((r) => project(r, keys))
  }

  getHistory(): string[] {
    const dated = [...this.records.values()].filter((r) => r.submitted !== null)
    // Array.prototype.sort is stable: ties keep insertion order.
    dated.sort((a, b) => (a.submitted as Date).getTime() - (b.submitted as Date).getTime())
    return dated.map((r) => r.msg_id)
  }

  close(): void {}

  private matching(query: Query): TaskRecord[] {
    const matches = compileQuery(query)
    // A query by msg_id looks the ids up instead of scanning every record.
    const byId = query.msg_id
    const ids = typeof byId === 'string' ? [byId] : isOperatorObject(byId) && Object.keys(byId).length === 1 && Array.isArray(byId.$in) ? byId.$in : undefined
    if (ids) {
      const seen = new Set<unknown>()
      const found: TaskRecord[] = []
      for (const id of ids) {
        const record = typeof id === 'string' && !seen.has(id) ? this.records.get(id) : undefined
        seen.add(id)
        if (record && matches(record)) found.push(record)
      }
      return found.sort((a, b) => (this.order.get(a) ?? 0) - (this.order.get(b) ?? 0))
    }
    return [...this.records.values()].filter(matches)
  }

  private account(record: TaskRecord, sign: 1 | -1): void {
    this.bytes += sign * (bytesOf(record.buffers) + bytesOf(record.result_buffers))
    if (record.completed !== null) this.finishedCount += sign
  }

  private cull(): void {
    if (this.finishedCount <= this.recordLimit && this.bytes <= this.sizeLimitBytes) return
    let toDrop = Math.max(1, Math.ceil(this.cullFraction * Math.min(this.recordLimit, this.finishedCount)))
    for (const record of this.records.values()) {
      if (toDrop === 0 && this.bytes <= this.sizeLimitBytes) break
      if (record.completed === null) continue
      this.dropRecord(record.msg_id)
      this.culled.add(record.msg_id)
      if (toDrop > 0) toDrop--
    }
    while (this.culled.size > REMEMBERED_CULLED_IDS) {
      const oldest = this.culled.values().next().value
      if (oldest === undefined) break
      this.culled.delete(oldest)
    }
  }

  private missing(msgId: string): StoreKeyError {
    return new StoreKeyError(this.culled.has(msgId)
      ? `the record of ${msgId} was culled: the in-memory store keeps the ${this.recordLimit} most recent finished tasks (use --db=sqlite to keep all)`
      : `No such message: ${msgId}`)
  }
}
