/**
 * The content of every message type jsparallel sends or reads (ipyparallel 7.1's shapes, plus what we add, which
 * docs/protocol.md describes), and a map from `msg_type` to its content type. Reading content that came from the
 * network goes through `contentOf` (content-readers.ts), which checks the fields before the types below are
 * believed; building content to send is checked by the compiler against the same types.
 */
import type { ErrorContent } from '../common/errors.js'
import type { JsonObject } from './messages.js'

export type { ErrorContent }

/** How a request ended, as a reply's `status` (and its metadata's) says. */
export type ReplyStatus = 'ok' | 'error' | 'aborted'

export interface OkContent {
  status: 'ok'
}

export interface AbortedContent {
  status: 'aborted'
}

/** Any reply may carry error content instead of its own (wrap_exception's shape); replyOutcome decodes it. */
export type ShellReplyContent = OkContent | AbortedContent | ErrorContent

// Shell: mux, task and broadcast channels.

/** Our and ipyparallel's `apply_request`: the call travels in the buffers (function, arguments). */
export type ApplyRequestContent = Record<string, never>

export interface ExecuteRequestContent {
  code: string
  silent?: boolean
  store_history?: boolean
  user_expressions?: JsonObject
  allow_stdin?: boolean
  stop_on_error?: boolean
}

/**
 * ipykernel's `execute_reply`; ours adds `data`, the execute_result's mime bundle (`text/plain`), so a client
 * gets the value's text with the reply. Our engines also send the value itself in the buffers when it can be cloned.
 */
export interface ExecuteReplyContent extends OkContent {
  execution_count?: number
  user_expressions?: JsonObject
  payload?: unknown[]
  data?: JsonObject
}

// Control channel, addressed to one engine.

export interface AbortRequestContent {
  /** The tasks to skip; empty: everything queued. A single id is read as a list of one. */
  msg_ids: string[]
}

export interface ShutdownRequestContent {
  restart?: boolean
}

export interface ShutdownReplyContent extends OkContent {
  restart: boolean
}

export interface SignalRequestContent {
  /** A signal number (2, 15, ...) or name (`SIGINT`). */
  sig: number | string
}

// Registration and query channel (engines and clients to the hub).

export interface ConnectionReplyContent extends OkContent {
  /** Engine uuids by engine id; the ids are strings on the wire. */
  engines: Record<string, string>
  /** Ours: the client connection file without its key (absent from ipyparallel's hub). */
  connection_info?: JsonObject
}

export interface RegistrationRequestContent {
  uuid: string
  /** An id the engine asks for; the hub may give another. */
  id?: number
  /** Ours: the language the engine runs tasks in; absent means `python`. */
  language?: string
}

export interface RegistrationReplyContent extends OkContent {
  id: number
  /** The heartbeat period, ms. Always sent; an engine falls back to 3000 without it (as ipengine's default). */
  hb_period?: number
  connection_info: JsonObject
}

export interface UnregistrationRequestContent {
  /** The engine id; null from an engine that never got one (its registration timed out). */
  id: number | null
}

/** `registration_notification` and `unregistration_notification`. */
export interface EngineNotificationContent {
  id: number
  uuid: string
}

export interface QueueRequestContent {
  /** Engine ids or uuids; null: every engine. Anything else names no engine, and the hub says so. */
  targets: readonly unknown[] | null
  verbose: boolean
}

/** One engine's line of a `queue_reply`: counts, or with `verbose` the msg ids. */
export interface EngineQueueStatus {
  queue: number | string[]
  completed: number | string[]
  tasks: number | string[]
}

/** `{status, unassigned, "<engine id>": EngineQueueStatus, ...}`. */
export interface QueueReplyContent {
  status: 'ok'
  unassigned: number | string[]
  [engineId: string]: EngineQueueStatus | number | string[] | string
}

export interface ResultRequestContent {
  msg_ids: string[]
  status_only: boolean
}

/** What `result_reply` holds for each completed task, keyed by its msg id. */
export interface HubResultRecord {
  header: JsonObject | null
  metadata: JsonObject | null
  result_header: JsonObject | null
  result_metadata: JsonObject | null
  result_content: JsonObject | null
  received: string | null
  io: JsonObject
}

/** `{status, pending, completed, "<msg id>": HubResultRecord, ...}`; the completed tasks' result frames follow in sorted msg id order. */
export interface ResultReplyContent {
  status: 'ok'
  pending: string[]
  completed: string[]
  [msgId: string]: HubResultRecord | string[] | string
}

export interface HistoryReplyContent extends OkContent {
  history: string[]
}

export interface DbRequestContent {
  /** A Mongo-style query; ISO date strings in it are compared as dates. */
  query: JsonObject
  /** The record fields wanted; null: all but the buffers. */
  keys: readonly string[] | null
}

export interface DbReplyContent extends OkContent {
  records: JsonObject[]
  /** With `buffers` in the keys: how many request frames each record has, in order. */
  buffer_lens: number[] | null
  result_buffer_lens: number[] | null
}

export interface PurgeRequestContent {
  msg_ids: 'all' | string[]
  /** Engine ids whose finished records go; anything but a registered id is refused by name. */
  engine_ids: readonly unknown[]
}

export interface ResubmitRequestContent {
  msg_ids: string[]
}

export interface ResubmitReplyContent extends OkContent {
  /** New msg ids by old. */
  resubmitted: Record<string, string>
}

// IOPub, published by engines with the request they belong to as parent.

export interface StatusContent {
  /** `busy`, `idle` or `starting`; read as any string, since only busy and idle mean something here. */
  execution_state: string
}

export interface StreamContent {
  name: 'stdout' | 'stderr'
  text: string
}

export interface ExecuteInputContent {
  code: string
  execution_count?: number
}

/** `execute_result`, `display_data`: a mime bundle. */
export interface MimeBundleContent {
  data: JsonObject
  metadata: JsonObject
  execution_count?: number
  [extra: string]: unknown
}

export interface DataPubContent {
  data: JsonObject
  [extra: string]: unknown
}

// Ours.

/** `jsparallel_task_inventory`: the tasks an engine holds (running or queued) when it sees its controller restart. */
export interface TaskInventoryContent {
  msg_ids: string[]
}

type Empty = Record<string, never>

/** The content of each message type, as a well-formed peer sends it. Replies may carry ErrorContent instead. */
export interface ContentMap {
  apply_request: ApplyRequestContent
  apply_reply: ShellReplyContent
  execute_request: ExecuteRequestContent
  execute_reply: ShellReplyContent | ExecuteReplyContent
  abort_request: AbortRequestContent
  abort_reply: OkContent
  clear_request: Empty
  clear_reply: OkContent
  shutdown_request: ShutdownRequestContent
  shutdown_reply: ShutdownReplyContent | OkContent
  signal_request: SignalRequestContent
  signal_reply: OkContent
  connection_request: Empty
  connection_reply: ConnectionReplyContent
  registration_request: RegistrationRequestContent
  registration_reply: RegistrationReplyContent
  unregistration_request: UnregistrationRequestContent
  registration_notification: EngineNotificationContent
  unregistration_notification: EngineNotificationContent
  shutdown_notification: OkContent
  queue_request: QueueRequestContent
  queue_reply: QueueReplyContent
  result_request: ResultRequestContent
  result_reply: ResultReplyContent
  history_request: Empty
  history_reply: HistoryReplyContent
  db_request: DbRequestContent
  db_reply: DbReplyContent
  purge_request: PurgeRequestContent
  purge_reply: OkContent
  resubmit_request: ResubmitRequestContent
  resubmit_reply: ResubmitReplyContent
  hub_error: ErrorContent
  become_dask_reply: ErrorContent
  stop_distributed_reply: ErrorContent
  status: StatusContent
  stream: StreamContent
  error: ErrorContent
  execute_input: ExecuteInputContent
  execute_result: MimeBundleContent
  display_data: MimeBundleContent
  data_pub: DataPubContent
  jsparallel_task_inventory: TaskInventoryContent
}

export type MsgType = keyof ContentMap
