/** The shapes of an engine's replies (docs/wire-protocol.md, 'Reply metadata'), as ipyparallel's kernel builds them. */
import type { ErrorContent } from '../common/errors.js'
import type { AbortedContent, OkContent, ReplyStatus } from '../protocol/catalogue.js'
import type { Message, ReplyMetadata } from '../protocol/messages.js'
import type { TaskError } from './worker-protocol.js'

export interface EngineIdentity {
  uuid: string
  id: number
}


/**
 * Metadata of a reply to a shell request: ipyparallel's `init_metadata` + `finish_metadata`. The broadcast
 * keys echo the request's, so a reply to a broadcast is recognised as one.
 */
export function replyMetadata(engine: EngineIdentity, request: Message, started: string, status: ReplyStatus, ename?: string): ReplyMetadata {
  const asked = request.metadata
  const metadata: ReplyMetadata = {
    started,
    dependencies_met: !(status === 'error' && ename === 'UnmetDependency'),
    engine: engine.uuid,
    is_broadcast: asked.is_broadcast === true,
    is_coalescing: asked.is_coalescing === true,
    original_msg_id: typeof asked.original_msg_id === 'string' ? asked.original_msg_id : '',
    status,
  }
  if (status === 'error') metadata.engine_info = { engine_uuid: engine.uuid, engine_id: engine.id }
  return metadata
}

/** Error content naming this engine, so clients attribute the failure to it. */
export function taskErrorContent(engine: EngineIdentity, error: TaskError, method: 'apply' | 'execute' = 'apply'): ErrorContent {
  return {
    status: 'error',
    ename: error.ename,
    evalue: error.evalue,
    traceback: error.traceback.length > 0 ? error.traceback : [`${error.ename}: ${error.evalue}`],
    engine_info: { engine_uuid: engine.uuid, engine_id: engine.id, method },
  }
}

/** Content of an `apply_reply` whose buffers are the result. */
export const okContent: OkContent = { status: 'ok' }
export const abortedContent: AbortedContent = { status: 'aborted' }
