import { readFileSync } from 'node:fs'
import { errorContent } from '../common/errors.js'
import type { Logger } from '../common/log.js'
import { headerOf } from '../protocol/content-readers.js'
import { replyTypeOf, type Header, type Message } from '../protocol/messages.js'
import type { Session } from '../protocol/session.js'
import type { Frames } from '../transport/sockets.js'
import type { SavedEngines } from './hub.js'
import type { TaskRecord } from './store/index.js'
import type { TaskLedger } from './task-ledger.js'

/** The engine state file a previous controller left (`--restore`), or undefined (logged) if there is none to use. */
export function readEngineState(file: string, log: Logger): SavedEngines | undefined {
  try {
    const state = JSON.parse(readFileSync(file, 'utf8')) as SavedEngines
    if (typeof state !== 'object' || state === null || typeof state.engines !== 'object') throw new Error('no engines table')
    return { engines: state.engines, next_id: Number(state.next_id) || 0, languages: state.languages ?? {} }
  } catch (e) {
    log.warn(`--restore: no engine state to restore from ${file} (${(e as Error).message}); starting with none`)
    return undefined
  }
}

export interface TakeoverHooks {
  /** Gives a task, rebuilt from its record, to the scheduler again under its own msg_id (already recorded). */
  requeue(msg: Message, clientIdents: Buffer[]): void
  /** Sends frames on the client-facing task socket. */
  toClient(frames: Frames): void
  /** How logs name an engine (its id, if registered). */
  engineName(uuid: string): string
  log: Logger
}

/** A task of a restored engine that the previous controller gave it. */
interface Orphan {
  record: Partial<TaskRecord>
  header: Header
  idents: Buffer[]
}

/**
 * Taking over the tasks of a controller that died (`--restore`). A task it accepted and did not finish either
 * waits for the reply of the restored engine it was given to (an orphan), or goes back to the scheduler under
 * its own msg_id. Replies go to the submitting client's session identity (which our client uses as its routing
 * id) and to the records, where any client can fetch them.
 */
export class Takeover {
  /** Orphans by engine uuid, then msg id. */
  private readonly orphans = new Map<string, Map<string, Orphan>>()

  constructor(private readonly ledger: TaskLedger, private readonly session: Session, private readonly hooks: TakeoverHooks) {}

  /** Adopts the unfinished load-balanced tasks of the store; `restored` are the engines registered again. */
  adoptUnfinished(restored: ReadonlySet<string>): void {
    let unfinished: Partial<TaskRecord>[]
    try {
      unfinished = this.ledger.store.findRecords({ completed: null, queue: 'task' })
    } catch {
      return // a store that keeps nothing
    }
    let waiting = 0
    let requeued = 0
    for (const record of unfinished) {
      const header = headerOf(record.header)
      if (!header || !record.msg_id) continue
      const idents = record.client_uuid ? [Buffer.from(record.client_uuid)] : []
      this.ledger.adopted(record.msg_id)
      if (record.engine_uuid && restored.has(record.engine_uuid)) {
        let set = this.orphans.get(record.engine_uuid)
        if (!set) this.orphans.set(record.engine_uuid, (set = new Map<string, Orphan>()))
        set.set(record.msg_id, { record, header, idents })
        waiting++
        continue
      }
      this.requeue({ record, header, idents })
      requeued++
    }
    if (unfinished.length > 0) this.hooks.log.info(`--restore: ${waiting} unfinished task(s) wait for their engines, ${requeued} went back to the scheduler`)
  }

  /**
   * An engine answered a task the scheduler does not hold: if it is an orphan of that engine, its result is
   * recorded and forwarded, and this returns true.
   */
  replied(engineUuid: string, msgId: string, reply: Message, replyWire: Buffer[]): boolean {
    const orphan = this.orphans.get(engineUuid)?.get(msgId)
    if (!orphan) return false
    this.orphans.get(engineUuid)?.delete(msgId)
    this.ledger.finished(reply, engineUuid, true)
    if (orphan.idents.length > 0) this.hooks.toClient([...orphan.idents, Buffer.from(engineUuid), ...replyWire])
    return true
  }

  /**
   * A JavaScript engine that saw its controller restart says which tasks it holds (after sending its last replies
   * again, on the same channel, so those have been taken by now). An orphan it neither finished nor holds never
   * reached it (the request was lost with the previous controller): it goes back to the scheduler. Safe to run,
   * since that engine never had it.
   */
  inventory(engineUuid: string, held: ReadonlySet<string>): void {
    const orphans = this.orphans.get(engineUuid)
    if (!orphans) return
    for (const [msgId, orphan] of orphans) {
      if (held.has(msgId)) continue
      orphans.delete(msgId)
      this.hooks.log.info(`--restore: task ${msgId} never reached engine ${this.hooks.engineName(engineUuid)} (lost with the previous controller); it goes back to the scheduler`)
      this.requeue(orphan)
    }
  }

  /** An engine left: the orphans it held can no longer finish, and end with EngineError. */
  engineLeft(engineUuid: string): void {
    const held = this.orphans.get(engineUuid)
    if (!held) return
    this.orphans.delete(engineUuid)
    for (const [, { header, idents }] of held) {
      const metadata = { status: 'error', engine: engineUuid, dependencies_met: true }
      const reply = this.session.msg(replyTypeOf(header.msg_type), errorContent('EngineError', `Engine ${engineUuid} died while running task '${header.msg_id}'`), { parent: header, metadata })
      if (idents.length > 0) this.hooks.toClient(this.session.serialize(reply, idents))
      this.ledger.finished(reply, engineUuid, false)
    }
  }

  private requeue({ record, header, idents }: Orphan): void {
    const msg: Message = { header, parent_header: {}, metadata: record.metadata ?? {}, content: record.content ?? {}, buffers: record.buffers ?? [] }
    this.hooks.requeue(msg, idents)
  }
}
