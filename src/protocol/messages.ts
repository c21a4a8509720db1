/** The Jupyter message envelope as ipyparallel 7.1 uses it (docs/wire-protocol.md, 'The envelope and signing'). */

export const DELIMITER = Buffer.from('<IDS|MSG>')
export const PROTOCOL_VERSION = '5.3'

export interface Header {
  msg_id: string
  msg_type: string
  username: string
  session: string
  /** ISO 8601 UTC with microseconds, as Python writes it (`…T07:08:45.811574Z`). */
  date: string
  version: string
  [extra: string]: unknown
}

export type JsonObject = Record<string, unknown>

export interface Message<C = JsonObject, M = JsonObject> {
  header: Header
  /** The full header of the request this answers, or `{}`. */
  parent_header: Header | Record<string, never>
  metadata: M
  content: C
  buffers: Buffer[]
}

/** A verified message as received: routing frames, the parsed message and the raw frames from the delimiter on. */
export interface Received<C = JsonObject, M = JsonObject> {
  idents: Buffer[]
  msg: Message<C, M>
  /** `[<IDS|MSG>, signature, header, parent, metadata, content, ...buffers]`, exactly as received. */
  wire: Buffer[]
}

/** Task metadata our client sends on the task channel (ipyparallel's keys plus ours). */
export interface TaskMetadata {
  after?: unknown
  follow?: unknown
  timeout?: number | null
  targets?: string[]
  retries?: number
  /** Ours: the language the task needs; absent means `python`. */
  language?: string
  /** Ours: higher runs first among waiting tasks; absent means 0. */
  priority?: number
  /**
   * Ours: `false` asks the engine for no busy/idle status on IOPub around this request. The JS client sets it: it
   * learns from the reply's `streams` how much output to wait for, and the two messages per task cost the engine,
   * the controller and every client more than the task itself.
   */
  iopub_status?: boolean
  [extra: string]: unknown
}

/** Engine metadata on every reply (docs/wire-protocol.md, 'Reply metadata'). */
export interface ReplyMetadata {
  started?: string
  dependencies_met?: boolean
  engine?: string
  is_broadcast?: boolean
  is_coalescing?: boolean
  original_msg_id?: string
  status?: string
  engine_info?: { engine_uuid: string; engine_id: number; method?: string }
  [extra: string]: unknown
}

/** `apply_request` → `apply_reply`; a type without the `_request` suffix gets `_reply` appended. */
export function replyTypeOf(requestType: string): string {
  return `${requestType.replace(/_request$/, '')}_reply`
}

/** The routing identity of the controller's engine-facing task socket, as ipyparallel names it. */
export const TASK_ROUTER = 'task_out'

/**
 * jsparallel's one message beyond ipyparallel's: a JavaScript engine that sees its controller restart sends the
 * msg_ids of the tasks it holds (running or queued) on the task channel, so that a controller restored with
 * `--restore` can tell a task that is still running there from one whose request was lost with its predecessor.
 */
export const TASK_INVENTORY = 'jsparallel_task_inventory'
