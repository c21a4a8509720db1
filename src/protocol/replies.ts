/**
 * What every reader of replies asks of a message: which request it answers, how that request ended, when it
 * started and finished, and which engine sent it. Controller, engine and client read replies through these, so a
 * reply from any peer (ours, ipengine, a controller's own error) is read the same way everywhere.
 */
import type { ErrorContent } from '../common/errors.js'
import { wireDate } from './dates.js'
import type { JsonObject, Message } from './messages.js'

type Received = Pick<Message, 'header' | 'parent_header' | 'metadata' | 'content'>

/** The msg id of the request a message answers; undefined for a message with no parent (`{}`) or an odd one. */
export function parentIdOf(msg: Pick<Message, 'parent_header'>): string | undefined {
  const id: unknown = msg.parent_header.msg_id
  return typeof id === 'string' ? id : undefined
}

/** A failed request's error, every field present whatever the peer sent. */
export type RemoteErrorFields = Omit<ErrorContent, 'status' | 'engine_info'>

/** How a request ended, decoded from a reply's content. */
export type ReplyOutcome =
  | { status: 'ok' }
  | { status: 'aborted' }
  /** `engineUuid`: the engine the error content names (`engine_info.engine_uuid`), if any. */
  | { status: 'error'; error: RemoteErrorFields; engineUuid: string | undefined }

/**
 * Decodes a reply's `status` (and for an error its `ename`, `evalue`, `traceback`, `engine_info`). A status other
 * than `ok` or `aborted`, or none, is an error, as ipyparallel's client reads it; missing error fields get
 * `Error`, `''` and `[]`.
 */
export function replyOutcome(content: JsonObject): ReplyOutcome {
  if (content.status === 'ok') return { status: 'ok' }
  if (content.status === 'aborted') return { status: 'aborted' }
  const { ename, evalue, traceback, engine_info: info } = content
  const engineUuid = typeof info === 'object' && info !== null && 'engine_uuid' in info ? info.engine_uuid : undefined
  return {
    status: 'error',
    error: {
      ename: typeof ename === 'string' ? ename : 'Error',
      evalue: typeof evalue === 'string' ? evalue : '',
      traceback: Array.isArray(traceback) ? traceback.map(String) : [],
    },
    engineUuid: typeof engineUuid === 'string' ? engineUuid : undefined,
  }
}

/**
 * The status a scheduler goes by: the reply metadata's (engines set it; it says `error` for a refused dependency
 * too), else the content's.
 */
export function replyStatusOf(reply: Pick<Message, 'metadata' | 'content'>): string {
  const status = reply.metadata.status
  return typeof status === 'string' ? status : String(reply.content.status)
}

/**
 * When the request a reply answers started (metadata `started`, set by the engine) and completed (the reply's
 * header date); undefined where the reply has no readable date.
 */
export function replyDates(reply: Pick<Received, 'header' | 'metadata'>): { started: Date | undefined; completed: Date | undefined } {
  return { started: wireDate(reply.metadata.started), completed: wireDate(reply.header.date) }
}

/** The engine that sent a message, as our engines and ipengine name it in `metadata.engine`; undefined if none. */
export function engineUuidOf(msg: Pick<Message, 'metadata'>): string | undefined {
  const engine = msg.metadata.engine
  return typeof engine === 'string' && engine !== '' ? engine : undefined
}
