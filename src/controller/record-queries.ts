import { errorContent, ProtocolError, StoreKeyError, type ErrorContent } from '../common/errors.js'
import type {
  ContentMap, HubResultRecord, MsgType, OkContent, PurgeRequestContent, ResubmitReplyContent, ResubmitRequestContent, ResultReplyContent,
} from '../protocol/catalogue.js'
import { contentOf, headerOf } from '../protocol/content-readers.js'
import { formatIsoMicros, wireDate } from '../protocol/dates.js'
import type { Header, JsonObject, Message } from '../protocol/messages.js'
import type { Query, TaskStore } from './store/index.js'
import type { TaskLedger } from './task-ledger.js'

/** What the queries need from the controller around them. */
export interface RecordQueriesHooks {
  /** Answers on the query channel: `type`'s content, or error content (any reply may carry one). */
  reply<T extends MsgType>(idents: Buffer[], type: T, content: ContentMap[T] | ErrorContent, parent: Header, buffers?: Buffer[]): void
  /**
   * Submit a copy of a recorded request as a new task under a new header; its reply goes to the records only (the
   * client polls with result_request).
   */
  resubmit(header: Header, metadata: JsonObject, content: JsonObject, buffers: Buffer[]): void
  /** A fresh header for a resubmitted request (new msg_id and date, this controller's session). */
  freshHeader(msgType: string): Header
  /** The uuid of a registered engine id, or undefined. */
  engineUuid(id: number): string | undefined
}

/** Fields of a record that travel as dates. */
const DATE_FIELDS = new Set(['submitted', 'started', 'completed', 'received'])
const IO_FIELDS = ['execute_input', 'execute_result', 'error', 'stdout', 'stderr'] as const
/** The request metadata a resubmitted task keeps: ipyparallel drops the rest, but a JS task must stay JS. */
const KEPT_ON_RESUBMIT = ['language']
/** ISO 8601 as Python's `extract_dates` recognises it: date, time, optional fraction and offset. */
const ISO_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:?\d{2})?$/

type Handler = (idents: Buffer[], msg: Message) => void

/**
 * The query channel's result, history, db, purge and resubmit requests (docs/wire-protocol.md, 'Results, history and
 * record queries', 'Purge and resubmit', 'Task records'), answered from the task store and the ledger (which requests
 * are in flight). Resubmitted copies enter through the controller like any task; purging drops records of requests
 * that have ended.
 */
export class RecordQueries {
  /** The query-channel requests answered here, by message type. */
  readonly handlers: Record<'result_request' | 'history_request' | 'db_request' | 'purge_request' | 'resubmit_request', Handler> = {
    result_request: (idents, msg) => this.resultRequest(idents, msg),
    history_request: (idents, msg) => this.answer(idents, msg, 'history_reply', () => ({ status: 'ok', history: this.store.getHistory() })),
    db_request: (idents, msg) => this.dbRequest(idents, msg),
    purge_request: (idents, msg) => this.answer(idents, msg, 'purge_reply', () => this.purge(contentOf(msg, 'purge_request'))),
    resubmit_request: (idents, msg) => this.answer(idents, msg, 'resubmit_reply', () => this.resubmit(contentOf(msg, 'resubmit_request'))),
  }

  private readonly store: TaskStore

  constructor(private readonly ledger: TaskLedger, private readonly hooks: RecordQueriesHooks) {
    this.store = ledger.store
  }

  /** Runs a request's work; anything it throws becomes error content in the reply, named as Python names it. */
  private answer<T extends MsgType>(idents: Buffer[], msg: Message, replyType: T, work: () => ContentMap[T], buffers?: () => Buffer[]): void {
    let content: ContentMap[T] | ErrorContent
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
    const buffers: Buffer[] = []
    this.answer(idents, msg, 'result_reply', () => {
      const { msg_ids: ids, status_only: statusOnly } = contentOf(msg, 'result_request')
      const msgIds = [...new Set(ids)].sort()
      const pending: string[] = []
      const completed: string[] = []
      const content: ResultReplyContent = { status: 'ok', pending, completed }
      for (const msgId of msgIds) {
        if (this.ledger.isPending(msgId)) {
          pending.push(msgId)
          continue
        }
        const record = this.store.getRecord(msgId) // a missing (or culled) one ends the request with KeyError
        if (record.completed === null) {
          pending.push(msgId)
          continue
        }
        completed.push(msgId)
        if (statusOnly) continue
        const io: JsonObject = {}
        for (const key of IO_FIELDS) io[key] = record[key]
        const found: HubResultRecord = {
          header: record.header, metadata: record.metadata, result_header: record.result_header,
          result_metadata: record.result_metadata, result_content: record.result_content,
          received: isoOf(record.received), io,
        }
        content[msgId] = found
        // The client splits the buffers by decoding sequentially in sorted msg_id order.
        buffers.push(...record.result_buffers)
      }
      return content
    }, () => buffers)
  }

  private dbRequest(idents: Buffer[], msg: Message): void {
    const buffers: Buffer[] = []
    this.answer(idents, msg, 'db_reply', () => {
      const { query, keys } = contentOf(msg, 'db_request')
      const wanted = keys ?? undefined
      const records = this.store.findRecords(datesIn(query) as Query, wanted)
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

  private purge(content: PurgeRequestContent): OkContent {
    const { msg_ids: msgIds, engine_ids: engines } = content
    if (msgIds === 'all') {
      this.store.dropMatchingRecords({ completed: { $ne: null } })
      return { status: 'ok' }
    }
    const inFlight = msgIds.find((id) => this.ledger.isPending(id))
    if (inFlight !== undefined) throw new PurgeError(`msg pending: '${inFlight}'`)
    if (msgIds.length > 0) this.store.dropMatchingRecords({ msg_id: { $in: msgIds } })
    for (const id of engines) {
      const uuid = typeof id === 'number' ? this.hooks.engineUuid(id) : undefined
      if (uuid === undefined) throw new PurgeError(`No such engine: ${String(id)}`)
      this.store.dropMatchingRecords({ engine_uuid: uuid, completed: { $ne: null } })
    }
    return { status: 'ok' }
  }

  private resubmit(content: ResubmitRequestContent): ResubmitReplyContent {
    const msgIds = content.msg_ids
    const records = this.store.findRecords({ msg_id: { $in: msgIds } }, ['header', 'metadata', 'content', 'buffers'])
    const found = new Set(records.map((r) => r.msg_id))
    const missing = msgIds.filter((id) => !found.has(id))
    if (missing.length > 0) throw new StoreKeyError(`No such msg(s): ${JSON.stringify(missing)}`)
    const resubmitted: Record<string, string> = {}
    for (const record of records) {
      const original = headerOf(record.header)
      if (!original || record.msg_id === undefined) throw new StoreKeyError(`No such msg(s): ${JSON.stringify([record.msg_id])}`)
      const fresh = this.hooks.freshHeader(original.msg_type)
      // Only msg_id and date change; session, username, msg_type and version stay the original's.
      const header: Header = { ...original, msg_id: fresh.msg_id, date: fresh.date }
      const metadata: JsonObject = {}
      for (const key of KEPT_ON_RESUBMIT) if (record.metadata?.[key] !== undefined) metadata[key] = record.metadata[key]
      const body = record.content ?? {}
      const buffers = record.buffers ?? []
      this.hooks.resubmit(header, metadata, body, buffers)
      resubmitted[record.msg_id] = header.msg_id
    }
    for (const [old, renewed] of Object.entries(resubmitted)) this.ledger.resubmitted(old, renewed)
    return { status: 'ok', resubmitted }
  }
}

/** A refused purge; Python's client sees it as the IndexError ipyparallel raises. */
class PurgeError extends Error {}

function errorContentOf(e: unknown): ErrorContent {
  const message = e instanceof Error ? e.message : String(e)
  if (e instanceof StoreKeyError) return errorContent('KeyError', JSON.stringify(message))
  if (e instanceof PurgeError) return errorContent('IndexError', message)
  // A request field of the wrong shape, as Python's hub names it.
  if (e instanceof ProtocolError) return errorContent('TypeError', message)
  const name = e instanceof Error && e.name !== 'Error' ? e.name : 'RuntimeError'
  return errorContent(name, message)
}

function isoOf(date: Date | null | undefined): string | null {
  return date ? formatIsoMicros(date.getTime()) : null
}

/** A copy of a query with every ISO-date string turned into a Date, as ipyparallel's hub does. */
function datesIn(value: unknown): unknown {
  if (typeof value === 'string') return ISO_DATE.test(value) ? (wireDate(value) ?? new Date(Number.NaN)) : value
  if (Array.isArray(value)) return value.map(datesIn)
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, datesIn(v)]))
  }
  return value
}
