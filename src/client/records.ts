import { ConfigError } from '../common/errors.js'
import { contentOf } from '../protocol/content-readers.js'
import { wireDate } from '../protocol/dates.js'
import type { JsonObject, Message } from '../protocol/messages.js'
import { AsyncResult } from './async-result.js'
import type { ResultMetadata } from './task.js'

/** One task record as `dbQuery` returns it; fields not asked for with `keys` are absent. */
export interface TaskRecordView {
  msg_id: string
  header?: JsonObject | null
  metadata?: JsonObject | null
  content?: JsonObject | null
  /** The request's raw frames: the function and its arguments. Only when asked for in `keys`. */
  buffers?: Buffer[]
  submitted?: Date | null
  client_uuid?: string | null
  engine_uuid?: string | null
  /** `task` (load-balanced) or `mux` (direct). */
  queue?: 'task' | 'mux' | null
  started?: Date | null
  completed?: Date | null
  received?: Date | null
  /** The msg_id of the task this one was resubmitted as. */
  resubmitted?: string | null
  result_header?: JsonObject | null
  result_metadata?: JsonObject | null
  result_content?: JsonObject | null
  /** The reply's raw frames: the encoded value. Only when asked for in `keys`. */
  result_buffers?: Buffer[]
  execute_input?: unknown
  execute_result?: unknown
  error?: unknown
  stdout?: string
  stderr?: string
}

const DATE_FIELDS = ['submitted', 'started', 'completed', 'received'] as const

/** Message ids from one id, a list of ids, or an AsyncResult; a ConfigError names the method otherwise. */
export function messageIds(ids: string | readonly string[] | AsyncResult<unknown, ResultMetadata | readonly ResultMetadata[]>, where: string): string[] {
  if (ids instanceof AsyncResult) return ids.msgIds
  const list = typeof ids === 'string' ? [ids] : ids
  if (!Array.isArray(list) || !list.every((x) => typeof x === 'string' && x !== '')) {
    throw new ConfigError(`${where}: expected a message id, a list of message ids or an AsyncResult, not ${JSON.stringify(ids)}`)
  }
  return [...(list as readonly string[])]
}

/** The records of a db_reply, dates parsed and buffers put back where `buffer_lens` say they belong. */
export function recordsOf(reply: Message): TaskRecordView[] {
  const { records, buffer_lens: bufferLens, result_buffer_lens: resultBufferLens } = contentOf(reply, 'db_reply')
  let offset = 0
  const take = (n: number | undefined): Buffer[] => {
    const frames = reply.buffers.slice(offset, offset + (n ?? 0))
    offset += n ?? 0
    return frames
  }
  return records.map((json, i) => {
    const record = { ...json } as unknown as TaskRecordView & Record<string, unknown>
    for (const field of DATE_FIELDS) {
      if (!(field in record)) continue
      record[field] = wireDate(record[field]) ?? null
    }
    // Each record's request frames come first, then its result frames.
    if (bufferLens) record.buffers = take(bufferLens[i])
    if (resultBufferLens) record.result_buffers = take(resultBufferLens[i])
    return record
  })
}
