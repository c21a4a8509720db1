import { ProtocolError, TaskAborted, remoteErrorFromContent } from '../common/errors.js'
import type { HubResultRecord, ResultReplyContent } from '../protocol/catalogue.js'
import { contentOf, hubRecordOf } from '../protocol/content-readers.js'
import { wireDate } from '../protocol/dates.js'
import type { Message } from '../protocol/messages.js'
import { decodeValueAt } from '../protocol/payload.js'
import { replyOutcome, type ReplyOutcome } from '../protocol/replies.js'
import { AsyncResult } from './async-result.js'
import type { Connection } from './connection.js'
import { executeReplyOf } from './engine-state.js'
import { Task, type ResultMetadata } from './task.js'

/** First and longest pause between two result_requests, in ms (ipyparallel polls every 100 ms). */
const FIRST_POLL_MS = 20
const LONGEST_POLL_MS = 500

/**
 * The result of tasks fetched from the controller's task records rather than from their replies: tasks of
 * another client, of an earlier session, or resubmitted ones (ipyparallel's `AsyncHubResult`). It polls the hub
 * with `result_request` until every task has finished; otherwise it behaves as an `AsyncResult`.
 */
export class AsyncHubResult<T, M extends ResultMetadata | readonly ResultMetadata[] = ResultMetadata> extends AsyncResult<T, M> {
  override readonly [Symbol.toStringTag]: string = 'AsyncHubResult'
  /**
   * For a resubmission: resolves once the controller has accepted it and `msgIds` name the new tasks; rejects
   * as the result does if it refused (an unknown id, say). Already resolved for `getResult`.
   */
  renamed: Promise<void> = Promise.resolve()
}

/**
 * Starts polling the hub for `msgIds` and returns their result: one value if `single`, else an array in the
 * order given. An unknown id rejects every task with the hub's KeyError.
 */
export function fetchFromHub<T>(
  connection: Connection,
  msgIds: readonly string[],
  single: boolean,
  requestTimeoutMs: number,
  abort: (ids: string[]) => Promise<void>,
  renamed?: Promise<Record<string, string>>,
): AsyncHubResult<T, ResultMetadata | readonly ResultMetadata[]> {
  const byId = new Map<string, Task>()
  for (const msgId of msgIds) if (!byId.has(msgId)) byId.set(msgId, new Task(msgId, new Date(Number.NaN)))
  const ordered = msgIds.map((id) => byId.get(id) as Task)
  const assemble = (values: unknown[]): T => (single ? values[0] : values) as T
  const result = new AsyncHubResult<T, ResultMetadata | readonly ResultMetadata[]>(ordered, assemble, { abort, label: 'hub result' }, { single })
  void poll(connection, byId, requestTimeoutMs, renamed)
  return result
}

/**
 * Polls until every task has settled. With `renamed` (a resubmission), the tasks carry the old ids until the
 * controller has said which new ids they run under.
 */
async function poll(connection: Connection, byOldId: Map<string, Task>, requestTimeoutMs: number, renamed?: Promise<Record<string, string>>): Promise<void> {
  let tasks = byOldId
  if (renamed) {
    try {
      const mapping = await renamed
      tasks = new Map()
      for (const [old, task] of byOldId) {
        task.metadata.msgId = mapping[old] ?? old
        tasks.set(task.msgId, task)
      }
    } catch (e) {
      const error = e instanceof Error ? e : new Error(String(e))
      for (const task of byOldId.values()) task.reject(error)
      return
    }
  }
  let pauseMs = FIRST_POLL_MS
  for (;;) {
    const open = [...tasks.values()].filter((t) => !t.settled)
    if (open.length === 0) return
    let reply: Message
    let content: ResultReplyContent
    try {
      reply = await connection.request('result_request', { msg_ids: open.map((t) => t.msgId), status_only: false }, requestTimeoutMs)
      content = contentOf(reply, 'result_reply')
    } catch (e) {
      const error = e instanceof Error ? e : new Error(String(e))
      for (const task of open) task.reject(error)
      return
    }
    settleCompleted(connection, content, reply.buffers, tasks)
    await new Promise((resolve) => setTimeout(resolve, pauseMs))
    pauseMs = Math.min(LONGEST_POLL_MS, pauseMs * 2)
  }
}

/** Settles the tasks the reply lists as completed; their result frames follow one another in that order. */
function settleCompleted(connection: Connection, content: ResultReplyContent, buffers: Buffer[], tasks: Map<string, Task>): void {
  let offset = 0
  let aligned = true
  for (const msgId of content.completed) {
    const task = tasks.get(msgId)
    const record = hubRecordOf(content, msgId)
    if (!record) continue
    const outcome = replyOutcome(record.result_content ?? {})
    const md = task?.metadata
    if (md) {
      fillMetadata(md, record, outcome)
      if (md.engineUuid !== undefined) md.engineId = connection.engines.idOf(md.engineUuid)
    }
    if (outcome.status === 'ok' && record.result_header?.['msg_type'] === 'execute_reply') {
      // Its frames are not in the reply: the records keep none for an execute (see executeReplyOf).
      task?.resolve(executeReplyOf({ content: record.result_content ?? {}, buffers: [] }))
    } else if (outcome.status === 'ok') {
      if (!aligned) {
        task?.reject(new ProtocolError(`the result of task ${msgId} could not be located in the hub's reply`))
        continue
      }
      try {
        const { value, next } = decodeValueAt(buffers, offset)
        offset = next
        task?.resolve(value)
      } catch (e) {
        // A result this client cannot read (a Python engine's, say) leaves the frames after it unaligned.
        aligned = false
        task?.reject(new ProtocolError(`the result of task ${msgId} could not be decoded: ${(e as Error).message}`, { cause: e }))
      }
    } else if (outcome.status === 'aborted') {
      task?.reject(new TaskAborted({ ename: 'TaskAborted', evalue: `task ${msgId} was aborted`, traceback: [] }, { engineId: md?.engineId, ...(md?.engineUuid ? { engineUuid: md.engineUuid } : {}) }))
    } else {
      task?.reject(remoteErrorFromContent(outcome.error, { engineId: md?.engineId, ...(md?.engineUuid ? { engineUuid: md.engineUuid } : {}) }))
    }
  }
}

function fillMetadata(md: Task['metadata'], record: HubResultRecord, outcome: ReplyOutcome): void {
  md.submitted = wireDate(record.header?.date) ?? md.submitted
  md.started = wireDate(record.result_metadata?.started)
  md.completed = wireDate(record.result_header?.date)
  md.received = wireDate(record.received)
  const engine = record.result_metadata?.engine
  if (typeof engine === 'string' && engine !== '') md.engineUuid = engine
  md.stdout = typeof record.io.stdout === 'string' ? record.io.stdout : ''
  md.stderr = typeof record.io.stderr === 'string' ? record.io.stderr : ''
  md.status = outcome.status
}
