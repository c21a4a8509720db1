import { errorContent, StoreKeyError } from '../common/errors.js'
import type { Logger } from '../common/log.js'
import { formatIsoMicros, parseIsoDate } from '../protocol/dates.js'
import type { Header, JsonObject, Message } from '../protocol/messages.js'
import { emptyRecord, type Query, type TaskRecord, type TaskStore } from './store/index.js'

/** What the records need from the controller around them. */
export interface TaskRecordsHooks {
  reply(idents: Buffer[], type: string, content: object, parent: Header, buffers?: Buffer[]): void
  /**
   * Send a copy of a recorded request into the task scheduler under a new header; its reply comes back to the
   * records only (the client polls with result_request).
   */
  resubmit(header: Header, metadata: JsonObject, content: JsonObject, buffers: Buffer[]): void
  /** A fresh header for a resubmitted request (new msg_id and date, this controller's session). */
  freshHeader(msgType: string): Header
  /** The uuid of a registered engine id, or undefined. */
  engineUuid(id: number): string | undefined
  log: Logger
}

/** Fields of a record that travel as dates. */
const DATE_FIELDS = new Set(['submitted', 'started', 'completed', 'received'])
const IO_FIELDS = ['execute_input', 'execute_result', 'error', 'stdout', 'stderr'] as const
/** The request metadata a resubmitted task keeps: ipyparallel drops the rest, but a JS task must stay JS. */
const KEPT_ON_RESUBMIT = ['language']
/** ISO 8601 as Python's `extract_dates` recognises it: date, time, optional fraction and offset. */
const ISO_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:?\d{2})?$/

/** How many requests' output is kept at hand at once (each entry lives until its engine reports idle). */
const MAX_OPEN_STREAMS = 10_000

type Handler = (idents: Buffer[], msg: Message) => void

/**
 * The hub's task records (reference §4.5, §4.6, §6): every request that passes through the controller, its
 * result and its output go into the task store; the query channel's result, history, db, purge and resubmit
 * requests are answered from it. Which requests are still in flight is kept here, not in the store, so a
 * store that keeps nothing (`--nodb`) still answers "pending".
 */
export class TaskRecords {
  private readonly pending = new Set<string>()
  /**
   * Output so far of requests whose engine has not reported idle yet, so a stream message appends without
   * reading the record back. Bounded: the oldest entries go first.
   */
  private readonly streams = new Map<string, { stdout: string; stderr: string }>()

  /** The query-channel requests answered here, by message type. */
  readonly handlers: Record<'result_request' | 'history_request' | 'db_request' | 'purge_request' | 'resubmit_request', Handler> = {
    result_request: (idents, msg) => this.resultRequest(idents, msg),
    history_request: (idents, msg) => this.answer(idents, msg, 'history_reply', () => ({ status: 'ok', history: this.store.getHistory() })),
    db_request: (idents, msg) => this.dbRequest(idents, msg),
    purge_request: (idents, msg) => this.answer(idents, msg, 'purge_reply', () => this.purge(msg.content)),
    resubmit_request: (idents, msg) => this.answer(idents, msg, 'resubmit_reply', () => this.resubmit(msg.content)),
  }

  constructor(readonly store: TaskStore, private readonly hooks: TaskRecordsHooks) {}

  /** Whether a request is in flight (submitted, not answered). */
  isPending(msgId: string): boolean {
    return this.pending.has(msgId)
  }

  /** How a finished request ended, for dependencies on tasks the scheduler no longer remembers. */
  outcomeOf(msgId: string): { ok: boolean; engineUuid: string | undefined } | undefined {
    try {
      if (this.pending.has(msgId) || !this.store.hasRecord(msgId)) return undefined
      const record = this.store.getRecord(msgId)
      if (record.completed === null) return undefined
      return { ok: record.result_content?.status === 'ok', engineUuid: record.engine_uuid ?? undefined }
    } catch {
      return undefined
    }
  }

  /** A request recorded by the controller this one restored, still unfinished: it is in flight again. */
  adopt(msgId: string): void {
    this.pending.add(msgId)
  }

  /** A client's request entered the controller: on the task channel, or on mux to `engineUuid`. */
  submitted(msg: Message, queue: 'task' | 'mux', engineUuid?: string): void {
    const header = msg.header
    this.pending.add(header.msg_id)
    const record = {
      ...emptyRecord(header.msg_id),
      header: header as unknown as JsonObject, metadata: msg.metadata, content: msg.content, buffers: msg.buffers,
      submitted: dateOf(header.date), client_uuid: header.session, engine_uuid: engineUuid ?? null, queue,
    }
    this.write(header.msg_id, () => this.store.addRecord(record))
  }

  /** The scheduler gave a task to an engine. */
  assigned(msgId: string, engineUuid: string): void {
    this.write(msgId, () => this.store.updateRecord(msgId, { engine_uuid: engineUuid }))
  }

  /** A reply to a recorded request passed through (an engine's, or one the controller made). */
  finished(reply: Message, engineUuid: string | undefined): void {
    const msgId = (reply.parent_header as Partial<Header>).msg_id
    if (msgId === undefined) return
    this.pending.delete(msgId)
    const md = reply.metadata as { started?: unknown; engine?: unknown }
    const engine = typeof md.engine === 'string' && md.engine !== '' ? md.engine : engineUuid
    const changes: Partial<TaskRecord> = {
      result_header: reply.header, result_metadata: reply.metadata, result_content: reply.content,
      result_buffers: reply.buffers, started: dateOf(md.started), completed: dateOf(reply.header.date) ?? new Date(), received: new Date(),
      ...(engine !== undefined ? { engine_uuid: engine } : {}),
    }
    this.write(msgId, () => this.store.updateRecord(msgId, changes))
  }

  /** An IOPub message from an engine: output of the request named by its parent header. */
  output(msg: Message): void {
    const msgId = (msg.parent_header as Partial<Header>).msg_id
    if (msgId === undefined) return
    const content = msg.content
    let changes: Partial<TaskRecord>
    switch (msg.header.msg_type) {
      case 'stream': {
        if (typeof content.text !== 'string') return
        const name = content.name === 'stderr' ? 'stderr' : 'stdout'
        const so = this.streamsOf(msgId)
        if (!so) return
        so[name] += content.text
        changes = { [name]: so[name] }
        break
      }
      case 'status':
        if (content.execution_state === 'idle') this.streams.delete(msgId)
        return
      case 'error':
        changes = { error: content }
        break
      case 'execute_input':
        changes = { execute_input: content.code ?? null }
        break
      case 'execute_result':
        changes = { execute_result: content }
        break
      default:
        return
    }
    // Output of a request this controller never saw (another controller's, say) is not worth a record.
    if (!this.store.hasRecord(msgId)) return
    this.write(msgId, () => this.store.updateRecord(msgId, changes))
  }

  /** The output accumulated for a request, read from its record the first time; undefined if there is none. */
  private streamsOf(msgId: string): { stdout: string; stderr: string } | undefined {
    let so = this.streams.get(msgId)
    if (so) return so
    if (!this.store.hasRecord(msgId)) return undefined
    const record = this.store.getRecord(msgId)
    so = { stdout: record.stdout, stderr: record.stderr }
    this.streams.set(msgId, so)
    if (this.streams.size > MAX_OPEN_STREAMS) {
      const oldest = this.streams.keys().next().value
      if (oldest !== undefined) this.streams.delete(oldest)
    }
    return so
  }

  private write(msgId: string, action: () => void): void {
    try {
      action()
    } catch (e) {
      // A culled or purged record, or a store that keeps nothing: the task itself is unaffected.
      if (!(e instanceof StoreKeyError)) this.hooks.log.warn(`task store: could not record ${msgId}: ${(e as Error).message}`)
    }
  }

  /** Runs a request's work; anything it throws becomes error content in the reply, named as Python names it. */
  private answer(idents: Buffer[], msg: Message, replyType: string, work: () => object, buffers?: () => Buffer[]): void {
    let content: object
    let frames: Buffer[] = []
    try {
      content = work()
      frames = buffers?.() ?? []
    } catch (e) {
      content = errorContentOf(e)
    }
    this.hooks.reply(idents, replyType, content, msg.header, frames)
  }

  private resultRequest(idents: Buffer[], msg: Message): void {
    const { msg_ids: ids, status_only: statusOnly } = msg.content as { msg_ids?: unknown; status_only?: unknown }
    const buffers: Buffer[] = []
    this.answer(idents, msg, 'result_reply', () => {
      const msgIds = [...new Set(stringList(ids, 'msg_ids'))].sort()
      const pending: string[] = []
      const completed: string[] = []
      const content: JsonObject = { status: 'ok', pending, completed }
      for (const msgId of msgIds) {
        if (this.pending.has(msgId)) {
          pending.push(msgId)
          continue
        }
        const record = this.store.getRecord(msgId) // a missing (or culled) one ends the request with KeyError
        if (record.completed === null) {
          pending.push(msgId)
          continue
        }
        completed.push(msgId)
        if (statusOnly === true) continue
        const io: JsonObject = {}
        for (const key of IO_FIELDS) io[key] = record[key]
        content[msgId] = {
          header: record.header, metadata: record.metadata, result_header: record.result_header,
          result_metadata: record.result_metadata, result_content: record.result_content,
          received: isoOf(record.received), io,
        }
        // The client splits the buffers by decoding sequentially in sorted msg_id order.
        buffers.push(...record.result_buffers)
      }
      return content
    }, () => buffers)
  }

  private dbRequest(idents: Buffer[], msg: Message): void {
    const { query, keys } = msg.content as { query?: unknown; keys?: unknown }
    const buffers: Buffer[] = []
    this.answer(idents, msg, 'db_reply', () => {
      const wanted = keys === null || keys === undefined ? undefined : stringList(keys, 'keys')
      const records = this.store.findRecords(datesIn(query ?? {}) as Query, wanted)
      const bufferLens = wanted?.includes('buffers') ? [] as number[] : null
      const resultBufferLens = wanted?.includes('result_buffers') ? [] as number[] : null
      const out = records.map((record) => {
        const json: JsonObject = {}
        for (const [key, value] of Object.entries(record)) {
          if (key === 'buffers' || key === 'result_buffers') continue
          json[key] = DATE_FIELDS.has(key) ? isoOf(value as Date | null) : value
        }
        if (bufferLens) {
          bufferLens.push(record.buffers?.length ?? 0)
          buffers.push(...(record.buffers ?? []))
        }
        if (resultBufferLens) {
          resultBufferLens.push(record.result_buffers?.length ?? 0)
          buffers.push(...(record.result_buffers ?? []))
        }
        return json
      })
      return { status: 'ok', records: out, buffer_lens: bufferLens, result_buffer_lens: resultBufferLens }
    }, () => buffers)
  }

  private purge(content: JsonObject): object {
    const { msg_ids: ids, engine_ids: engineIds } = content as { msg_ids?: unknown; engine_ids?: unknown }
    if (ids === 'all') {
      this.store.dropMatchingRecords({ completed: { $ne: null } })
      return { status: 'ok' }
    }
    const msgIds = ids === undefined || ids === null ? [] : stringList(ids, 'msg_ids')
    const inFlight = msgIds.find((id) => this.pending.has(id))
    if (inFlight !== undefined) throw new PurgeError(`msg pending: '${inFlight}'`)
    if (msgIds.length > 0) this.store.dropMatchingRecords({ msg_id: { $in: msgIds } })
    const engines = engineIds === undefined || engineIds === null ? [] : (Array.isArray(engineIds) ? engineIds : [engineIds])
    for (const id of engines) {
      const uuid = typeof id === 'number' ? this.hooks.engineUuid(id) : undefined
      if (uuid === undefined) throw new PurgeError(`No such engine: ${String(id)}`)
      this.store.dropMatchingRecords({ engine_uuid: uuid, completed: { $ne: null } })
    }
    return { status: 'ok' }
  }

  private resubmit(content: JsonObject): object {
    const msgIds = stringList(content.msg_ids, 'msg_ids')
    const records = this.store.findRecords({ msg_id: { $in: msgIds } }, ['header', 'metadata', 'content', 'buffers'])
    const found = new Set(records.map((r) => r.msg_id))
    const missing = msgIds.filter((id) => !found.has(id))
    if (missing.length > 0) throw new StoreKeyError(`No such msg(s): ${JSON.stringify(missing)}`)
    const resubmitted: Record<string, string> = {}
    for (const record of records) {
      const original = record.header as unknown as Header | null
      if (!original || record.msg_id === undefined) throw new StoreKeyError(`No such msg(s): ${JSON.stringify([record.msg_id])}`)
      const fresh = this.hooks.freshHeader(original.msg_type)
      // Only msg_id and date change; session, username, msg_type and version stay the original's.
      const header: Header = { ...original, msg_id: fresh.msg_id, date: fresh.date }
      const metadata: JsonObject = {}
      for (const key of KEPT_ON_RESUBMIT) if (record.metadata?.[key] !== undefined) metadata[key] = record.metadata[key]
      const body = record.content ?? {}
      const buffers = record.buffers ?? []
      this.submitted({ header, parent_header: original, metadata, content: body, buffers }, 'task')
      this.hooks.resubmit(header, metadata, body, buffers)
      resubmitted[record.msg_id] = header.msg_id
    }
    for (const [old, renewed] of Object.entries(resubmitted)) this.write(old, () => this.store.updateRecord(old, { resubmitted: renewed }))
    return { status: 'ok', resubmitted }
  }
}

/** A refused purge; Python's client sees it as the IndexError ipyparallel raises. */
class PurgeError extends Error {}

function errorContentOf(e: unknown): object {
  const message = e instanceof Error ? e.message : String(e)
  if (e instanceof StoreKeyError) return errorContent('KeyError', JSON.stringify(message))
  if (e instanceof PurgeError) return errorContent('IndexError', message)
  if (e instanceof RequestError) return errorContent('TypeError', message)
  const name = e instanceof Error && e.name !== 'Error' ? e.name : 'RuntimeError'
  return errorContent(name, message)
}

/** A request field of the wrong shape. */
class RequestError extends Error {}

function stringList(value: unknown, field: string): string[] {
  const list = typeof value === 'string' ? [value] : value
  if (!Array.isArray(list) || !list.every((x) => typeof x === 'string')) {
    throw new RequestError(`${field} must be a list of message id strings, not ${JSON.stringify(value)}`)
  }
  return list
}

function dateOf(text: unknown): Date | null {
  const ms = parseIsoDate(text)
  return ms === undefined ? null : new Date(ms)
}

function isoOf(date: Date | null | undefined): string | null {
  return date ? formatIsoMicros(date.getTime()) : null
}

/** A copy of a query with every ISO-date string turned into a Date, as ipyparallel's hub does. */
function datesIn(value: unknown): unknown {
  if (typeof value === 'string') return ISO_DATE.test(value) ? new Date(parseIsoDate(value) ?? Number.NaN) : value
  if (Array.isArray(value)) return value.map(datesIn)
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, datesIn(v)]))
  }
  return value
}
