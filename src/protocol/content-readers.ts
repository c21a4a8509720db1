/**
 * Reading a received message's content as its catalogue type (catalogue.ts). Content comes from any peer, so each
 * reader checks the fields its callers rely on and throws a ProtocolError that names the message type, the field
 * and the rule; a field that ipyparallel's own readers default when it is absent or odd is defaulted the same way
 * here, so a peer that ipyparallel accepts is accepted.
 */
import { ProtocolError } from '../common/errors.js'
import type {
  AbortRequestContent, ConnectionReplyContent, ContentMap, DbReplyContent, DbRequestContent, EngineNotificationContent, ExecuteInputContent, ExecuteRequestContent,
  HistoryReplyContent, HubResultRecord, PurgeRequestContent, QueueReplyContent, QueueRequestContent, RegistrationReplyContent,
  RegistrationRequestContent, ResubmitReplyContent, ResubmitRequestContent, ResultReplyContent, ResultRequestContent, SignalRequestContent,
  StatusContent, StreamContent, TaskInventoryContent, UnregistrationRequestContent,
} from './catalogue.js'
import type { Header, JsonObject } from './messages.js'

/** Reads the fields of one content object; every failure names the message type and the field. */
class Fields {
  constructor(private readonly type: string, readonly content: JsonObject) {}

  fail(field: string, rule: string): never {
    throw new ProtocolError(`${this.type}: ${field} must be ${rule}, not ${describe(this.content[field])}`)
  }

  string(field: string, rule = 'a string'): string {
    const value = this.content[field]
    if (typeof value !== 'string') this.fail(field, rule)
    return value
  }

  nonEmptyString(field: string): string {
    const value = this.string(field, 'a non-empty string')
    if (value === '') this.fail(field, 'a non-empty string')
    return value
  }

  integer(field: string): number {
    const value = this.content[field]
    if (typeof value !== 'number' || !Number.isInteger(value)) this.fail(field, 'a whole number')
    return value
  }

  /** Absent or of another type: undefined (what ipyparallel's readers do with an optional field). */
  optional<T>(field: string, is: (value: unknown) => value is T): T | undefined {
    const value = this.content[field]
    return is(value) ? value : undefined
  }

  /** A list of strings; one string is read as a list of one (as ipyparallel's hub does with msg ids). */
  strings(field: string, rule = 'a list of message id strings'): string[] {
    const value = this.content[field]
    const list = typeof value === 'string' ? [value] : value
    if (!Array.isArray(list) || !list.every((x) => typeof x === 'string')) this.fail(field, rule)
    return list
  }

  /** A list of strings, absent read as empty. */
  stringList(field: string): string[] {
    const value = this.content[field] ?? []
    if (!Array.isArray(value) || !value.every((x) => typeof x === 'string')) this.fail(field, 'a list of strings')
    return value
  }

  /** A list, null or absent as null, one value as a list of one. */
  looseList(field: string): readonly unknown[] | null {
    const value = this.content[field]
    if (value === null || value === undefined) return null
    return Array.isArray(value) ? (value as unknown[]) : [value]
  }

  /** An object, or null (absent read as null). */
  objectOrNull(field: string): JsonObject | null {
    const value = this.content[field] ?? null
    if (value !== null && !isObject(value)) this.fail(field, 'an object or null')
    return value
  }

  /** A count, or (verbose) the msg ids counted. */
  countOrIds(field: string): number | string[] {
    const value = this.content[field]
    if (typeof value !== 'number' && !(Array.isArray(value) && value.every(isString))) this.fail(field, 'a count or a list of msg ids')
    return value
  }

  numberListOrNull(field: string): number[] | null {
    const value = this.content[field] ?? null
    if (value !== null && !(Array.isArray(value) && value.every((x) => typeof x === 'number'))) this.fail(field, 'a list of numbers or null')
    return value
  }
}

const isString = (v: unknown): v is string => typeof v === 'string'
const isNumber = (v: unknown): v is number => typeof v === 'number'
const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v)

function describe(value: unknown): string {
  if (value === undefined) return 'absent'
  // Content is parsed JSON, so it stringifies (a caller's own object may not: then its type is said).
  let text: string
  try {
    text = JSON.stringify(value) ?? typeof value
  } catch {
    text = typeof value
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text
}

const readers = {
  abort_request: (f: Fields): AbortRequestContent => {
    const ids = f.content.msg_ids
    // ipyparallel's engine takes a missing list as "abort everything queued", as an empty one.
    return { msg_ids: typeof ids === 'string' ? [ids] : Array.isArray(ids) ? ids.map(String) : [] }
  },
  signal_request: (f: Fields): SignalRequestContent => {
    const sig = f.content.sig
    if (typeof sig !== 'number' && typeof sig !== 'string') f.fail('sig', 'a signal number or name')
    return { sig }
  },
  connection_reply: (f: Fields): ConnectionReplyContent => {
    const engines: Record<string, string> = {}
    const table = f.content.engines ?? {}
    if (!isObject(table)) f.fail('engines', 'an object of engine uuids by id')
    for (const [id, uuid] of Object.entries(table)) {
      if (typeof uuid !== 'string' || !Number.isInteger(Number(id))) f.fail('engines', 'an object of engine uuids by id')
      engines[id] = uuid
    }
    const info = f.content.connection_info
    return isObject(info) ? { status: 'ok', engines, connection_info: info } : { status: 'ok', engines }
  },
  registration_request: (f: Fields): RegistrationRequestContent => {
    const uuid = f.nonEmptyString('uuid')
    const id = f.optional('id', isNumber)
    const language = f.optional('language', isString)
    return { uuid, ...(id !== undefined ? { id } : {}), ...(language !== undefined ? { language } : {}) }
  },
  registration_reply: (f: Fields): RegistrationReplyContent => {
    const id = f.integer('id')
    const hb = f.content.hb_period
    const connectionInfo = f.content.connection_info
    return {
      status: 'ok', id, connection_info: isObject(connectionInfo) ? connectionInfo : {},
      ...(typeof hb === 'number' && hb > 0 ? { hb_period: hb } : {}),
    }
  },
  unregistration_request: (f: Fields): UnregistrationRequestContent => ({ id: f.optional('id', isNumber) ?? null }),
  registration_notification: (f: Fields): EngineNotificationContent => ({ id: f.integer('id'), uuid: f.string('uuid') }),
  unregistration_notification: (f: Fields): EngineNotificationContent => ({ id: f.integer('id'), uuid: f.string('uuid') }),
  queue_request: (f: Fields): QueueRequestContent => ({ targets: f.looseList('targets'), verbose: f.content.verbose === true }),
  queue_reply: (f: Fields): QueueReplyContent => {
    const content: QueueReplyContent = { status: 'ok', unassigned: 0 }
    for (const [key, value] of Object.entries(f.content)) {
      if (key === 'status') continue
      if (key === 'unassigned') {
        content.unassigned = f.countOrIds(key)
      } else if (/^\d+$/.test(key)) {
        if (!isObject(value)) f.fail(key, 'an object of queue, completed and tasks')
        const line = new Fields(`queue_reply engine ${key}`, value)
        content[key] = { queue: line.countOrIds('queue'), completed: line.countOrIds('completed'), tasks: line.countOrIds('tasks') }
      }
    }
    return content
  },
  result_request: (f: Fields): ResultRequestContent => ({ msg_ids: f.strings('msg_ids'), status_only: f.content.status_only === true }),
  result_reply: (f: Fields): ResultReplyContent => {
    const content: ResultReplyContent = { status: 'ok', pending: f.stringList('pending'), completed: f.stringList('completed') }
    for (const msgId of content.completed) {
      const value = f.content[msgId]
      if (value === undefined) continue
      if (!isObject(value)) f.fail(msgId, 'a task record')
      const record = new Fields(`result_reply record ${msgId}`, value)
      content[msgId] = {
        header: record.objectOrNull('header'), metadata: record.objectOrNull('metadata'),
        result_header: record.objectOrNull('result_header'), result_metadata: record.objectOrNull('result_metadata'),
        result_content: record.objectOrNull('result_content'),
        received: record.optional('received', isString) ?? null,
        io: isObject(value.io) ? value.io : {},
      }
    }
    return content
  },
  history_reply: (f: Fields): HistoryReplyContent => ({ status: 'ok', history: f.stringList('history') }),
  db_request: (f: Fields): DbRequestContent => {
    const keys = f.content.keys
    return { query: f.objectOrNull('query') ?? {}, keys: keys === null || keys === undefined ? null : f.strings('keys', 'a list of record field names') }
  },
  db_reply: (f: Fields): DbReplyContent => {
    const records = f.content.records ?? []
    if (!Array.isArray(records) || !records.every(isObject)) f.fail('records', 'a list of task records')
    return { status: 'ok', records, buffer_lens: f.numberListOrNull('buffer_lens'), result_buffer_lens: f.numberListOrNull('result_buffer_lens') }
  },
  purge_request: (f: Fields): PurgeRequestContent => {
    const ids = f.content.msg_ids
    return { msg_ids: ids === 'all' ? 'all' : ids === null || ids === undefined ? [] : f.strings('msg_ids'), engine_ids: f.looseList('engine_ids') ?? [] }
  },
  resubmit_request: (f: Fields): ResubmitRequestContent => ({ msg_ids: f.strings('msg_ids') }),
  resubmit_reply: (f: Fields): ResubmitReplyContent => {
    const resubmitted: Record<string, string> = {}
    for (const [old, renewed] of Object.entries(f.objectOrNull('resubmitted') ?? {})) {
      if (typeof renewed !== 'string') f.fail('resubmitted', 'an object of new msg ids by old')
      resubmitted[old] = renewed
    }
    return { status: 'ok', resubmitted }
  },
  execute_request: (f: Fields): ExecuteRequestContent => ({ code: f.string('code'), silent: f.content.silent === true }),
  status: (f: Fields): StatusContent => ({ execution_state: f.string('execution_state') }),
  stream: (f: Fields): StreamContent => ({ name: f.content.name === 'stderr' ? 'stderr' : 'stdout', text: f.string('text') }),
  execute_input: (f: Fields): ExecuteInputContent => ({ code: f.string('code') }),
  jsparallel_task_inventory: (f: Fields): TaskInventoryContent => {
    const ids = f.content.msg_ids
    if (!Array.isArray(ids)) f.fail('msg_ids', 'a list of msg ids')
    return { msg_ids: ids.map(String) }
  },
} satisfies { [T in keyof ContentMap]?: (f: Fields) => ContentMap[T] }

/** The message types whose content can be read from the network with `contentOf`. */
export type ReadableType = keyof typeof readers

/**
 * A received message's content as `type` says it is. The header's msg_type is not compared: peers answer under
 * other names (7.1's engine calls its signal reply `_request`), and callers match replies by parent id. Throws a
 * ProtocolError naming the field that is missing or malformed.
 */
export function contentOf<T extends ReadableType>(msg: { content: JsonObject }, type: T): ContentMap[T] {
  const read = readers[type] as (f: Fields) => ContentMap[T]
  return read(new Fields(type, msg.content))
}

/** As `contentOf`, but undefined for content it would refuse: for messages that are only watched, never answered. */
export function contentIfValid<T extends ReadableType>(msg: { content: JsonObject }, type: T): ContentMap[T] | undefined {
  try {
    return contentOf(msg, type)
  } catch (e) {
    if (e instanceof ProtocolError) return undefined
    throw e
  }
}

/** A completed task's record in a `result_reply` read by `contentOf`; undefined if the reply has none for it. */
export function hubRecordOf(content: ResultReplyContent, msgId: string): HubResultRecord | undefined {
  const value = content[msgId]
  return typeof value === 'object' && !Array.isArray(value) ? value : undefined
}

/**
 * A header kept as JSON (a task record's `header`, say) read back as a Header; undefined unless it has the msg_id
 * and msg_type every header has. The other fields are taken as they are, as Session.deserialize takes them.
 */
export function headerOf(value: unknown): Header | undefined {
  if (!isObject(value) || typeof value.msg_id !== 'string' || typeof value.msg_type !== 'string') return undefined
  return value as Header
}
