import type { ErrorContent } from '../common/errors.js'
import type { Logger } from '../common/log.js'
import type { ExecuteInputContent, ExecuteReplyContent, MimeBundleContent } from '../protocol/catalogue.js'
import { contentOf } from '../protocol/content-readers.js'
import { isoNow } from '../protocol/dates.js'
import type { Header, Message, ReplyMetadata } from '../protocol/messages.js'
import { isDescriptorKind } from '../protocol/payload.js'
import type { RunOutcome, TaskRunner } from './executor.js'
import { abortedContent, okContent, replyMetadata, taskErrorContent, type EngineIdentity } from './replies.js'
import type { OutputStream, TaskError } from './worker-protocol.js'

/** A verified shell message and the routing frames to answer it with. */
export interface ShellRequest {
  idents: Buffer[]
  msg: Message
}

/** What the queue needs from the engine: the sockets, seen as four verbs. */
export interface TaskQueueHost {
  /** Answers on the shell socket with the request's routing frames; the reply type follows the request's. */
  reply(request: ShellRequest, content: object, metadata: ReplyMetadata, buffers?: Buffer[]): void
  status(parent: Header, state: 'busy' | 'idle'): void
  /** IOPub `error`, as ipengine publishes beside every failed apply. */
  publishError(parent: Header, content: ErrorContent): void
  output(parent: Header, name: OutputStream, text: string): void
  /** IOPub `execute_input` and `execute_result` of an execute_request (not of a silent one). */
  publishExecute(parent: Header, type: 'execute_input', content: ExecuteInputContent): void
  publishExecute(parent: Header, type: 'execute_result', content: MimeBundleContent): void
  /** Starts counting a task's stream messages. */
  trackOutput(parent: Header): void
  /** Publishes the task's buffered output now, so it precedes the reply, and says how many stream messages it had. */
  finishOutput(parent: Header): number
}

export interface TaskQueueOptions {
  engine: EngineIdentity
  log: Logger
  /** Wire-format timestamps; injectable for tests. */
  now?: () => string
  /** How many aborted-but-not-yet-seen msg_ids to remember. Default 10,000. */
  maxRememberedAborts?: number
}

/** Why the running task was interrupted; decides its reply. */
type Interruption = 'abort' | 'signal'

const notJavaScript: TaskError = {
  ename: 'NotImplementedError',
  evalue:
    'this is a JavaScript engine (jsparallel): the apply_request buffers are not a JavaScript function descriptor ' +
    '(a pickled Python function?). Run Python tasks on ipengine, or send JavaScript functions from the jsparallel client.',
  traceback: [],
}

/**
 * The engine's shell work: apply_requests and execute_requests run one at a time in arrival order (from mux, task
 * or broadcast alike), each bracketed by busy/idle status (unless its metadata declines them), its output published
 * before its reply. Aborts answer queued tasks at once, stop a running one for real, and are remembered for tasks
 * that have not arrived yet.
 */
export class TaskQueue {
  private readonly queue: ShellRequest[] = []
  private readonly aborted = new Set<string>()
  private running: { request: ShellRequest; interruption?: Interruption } | undefined
  private pumping: Promise<void> | undefined
  private closed = false
  /** Execute requests that were not silent, as ipykernel counts them (`execution_count`); a clear keeps it. */
  private executionCount = 0
  private readonly now: () => string
  private readonly maxRememberedAborts: number

  constructor(private readonly host: TaskQueueHost, private readonly runner: TaskRunner, private readonly options: TaskQueueOptions) {
    this.now = options.now ?? (() => isoNow())
    this.maxRememberedAborts = options.maxRememberedAborts ?? 10_000
  }

  get queued(): number {
    return this.queue.length
  }

  /** The msg_ids of the task running now and of those waiting. */
  get held(): string[] {
    return [...(this.running ? [this.running.request] : []), ...this.queue].map((r) => r.msg.header.msg_id)
  }

  submit(request: ShellRequest): void {
    const msgId = request.msg.header.msg_id
    if (this.closed || this.aborted.delete(msgId)) {
      this.replyAborted(request)
      return
    }
    if (request.msg.header.msg_type === 'apply_request' && !isJavaScriptApply(request.msg.buffers)) {
      this.refuse(request, notJavaScript)
      return
    }
    this.queue.push(request)
    this.pumping ??= this.pump().finally(() => (this.pumping = undefined))
  }

  /** Answers a request with an error at once, with the status and IOPub messages a failed task has. */
  refuse(request: ShellRequest, error: TaskError): void {
    const started = this.now()
    this.status(request, 'busy')
    this.answer(request, started, { status: 'error', error })
    this.status(request, 'idle')
  }

  /**
   * `abort_request`: the listed tasks (all queued ones when the list is empty) answer `aborted`; a listed
   * task that is running is interrupted. Ids not seen yet are remembered, as ipyparallel does.
   */
  abort(msgIds: readonly string[]): void {
    const everything = msgIds.length === 0
    const wanted = new Set(msgIds)
    const keep: ShellRequest[] = []
    for (const request of this.queue.splice(0)) {
      const id = request.msg.header.msg_id
      if (everything || wanted.delete(id)) this.replyAborted(request)
      else keep.push(request)
    }
    this.queue.push(...keep)
    const running = this.running
    if (running && wanted.delete(running.request.msg.header.msg_id)) {
      running.interruption = 'abort'
      this.runner.interrupt()
    }
    for (const id of wanted) this.rememberAbort(id)
  }

  /** SIGINT: the running task ends with KeyboardInterrupt, like a Python task. False if none runs. */
  interrupt(): boolean {
    if (!this.running) return false
    this.running.interruption = 'signal'
    return this.runner.interrupt()
  }

  /** A fresh executor after the running task (clear_request). */
  reset(): Promise<void> {
    return this.runner.reset()
  }

  /** Answers everything queued or running with `aborted` and stops the executor. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const request of this.queue.splice(0)) this.replyAborted(request)
    if (this.running) this.running.interruption = 'abort'
    await this.runner.close()
    await this.pumping
  }

  private async pump(): Promise<void> {
    let request: ShellRequest | undefined
    while (!this.closed && (request = this.queue.shift()) !== undefined) {
      const header = request.msg.header
      this.running = { request }
      this.status(request, 'busy')
      this.host.trackOutput(header)
      const started = this.now()
      let outcome: RunOutcome
      let execution: Execution | undefined
      try {
        const onOutput = (name: OutputStream, text: string): void => this.host.output(header, name, text)
        if (header.msg_type === 'execute_request') {
          execution = this.startExecution(request)
          outcome = await this.runner.execute(execution.code, onOutput)
        } else {
          outcome = await this.runner.run(request.msg.buffers, onOutput)
        }
      } catch (e) {
        outcome = { status: 'error', error: { ename: 'EngineError', evalue: `the engine could not run the task: ${(e as Error).message}`, traceback: [] } }
      }
      const interruption = this.running.interruption
      this.running = undefined
      if (outcome.status === 'aborted' && interruption === 'signal') {
        outcome = { status: 'error', error: { ename: 'KeyboardInterrupt', evalue: 'the task was interrupted by a signal_request (SIGINT)', traceback: [] } }
      }
      this.answer(request, started, outcome, execution)
      this.status(request, 'idle')
    }
  }

  /** Reads an execute_request's code, counts it and publishes it as `execute_input`, as ipykernel does. */
  private startExecution(request: ShellRequest): Execution {
    const { code, silent = false } = contentOf(request.msg, 'execute_request')
    if (!silent) this.host.publishExecute(request.msg.header, 'execute_input', { code, execution_count: ++this.executionCount })
    return { code, silent, count: this.executionCount }
  }

  /** Busy/idle on IOPub, unless the request's metadata says `iopub_status: false` (the JS client's tasks). */
  private status(request: ShellRequest, state: 'busy' | 'idle'): void {
    if (request.msg.metadata.iopub_status !== false) this.host.status(request.msg.header, state)
  }

  private answer(request: ShellRequest, started: string, outcome: RunOutcome, execution?: Execution): void {
    const { engine } = this.options
    // The client holds the reply until it has seen this many stream messages: IOPub and the reply travel apart.
    const streams = this.host.finishOutput(request.msg.header)
    if (outcome.status === 'ok' && execution) {
      const data = outcome.text === undefined ? undefined : { 'text/plain': outcome.text }
      if (data && !execution.silent) this.host.publishExecute(request.msg.header, 'execute_result', { execution_count: execution.count, data, metadata: {} })
      const content: ExecuteReplyContent = { status: 'ok', execution_count: execution.count, user_expressions: {}, payload: [], ...(data ? { data } : {}) }
      this.host.reply(request, content, { ...replyMetadata(engine, request.msg, started, 'ok'), streams }, outcome.frames)
    } else if (outcome.status === 'ok') {
      this.host.reply(request, okContent, { ...replyMetadata(engine, request.msg, started, 'ok'), streams }, outcome.frames)
    } else if (outcome.status === 'aborted') {
      this.options.log.info(`aborted ${request.msg.header.msg_id}`)
      this.host.reply(request, abortedContent, { ...replyMetadata(engine, request.msg, started, 'aborted'), streams })
    } else {
      const content = taskErrorContent(engine, outcome.error, request.msg.header.msg_type === 'execute_request' ? 'execute' : 'apply')
      this.options.log.info(`${request.msg.header.msg_type} ${request.msg.header.msg_id} failed: ${outcome.error.ename}: ${outcome.error.evalue}`)
      this.host.publishError(request.msg.header, content)
      this.host.reply(request, content, { ...replyMetadata(engine, request.msg, started, 'error', outcome.error.ename), streams })
    }
  }

  private replyAborted(request: ShellRequest): void {
    this.answer(request, this.now(), { status: 'aborted' })
  }

  private rememberAbort(msgId: string): void {
    this.aborted.add(msgId)
    // Ids that never arrive must not pile up forever; the oldest are forgotten first (Set keeps insertion order).
    for (const old of this.aborted) {
      if (this.aborted.size <= this.maxRememberedAborts) break
      this.aborted.delete(old)
    }
  }
}

/** An execute_request being run: its code, whether it is silent, and its execution_count. */
interface Execution {
  code: string
  silent: boolean
  count: number
}

/** Whether buffer 0 is one of our function descriptors; a Python client's pickled function is not. */
export function isJavaScriptApply(buffers: readonly Buffer[]): boolean {
  const [descriptor, args] = buffers
  if (!descriptor || !args || descriptor[0] !== 0x7b /* '{' */) return false
  try {
    const kind = (JSON.parse(descriptor.toString('utf8')) as { kind?: unknown }).kind
    return isDescriptorKind(kind)
  } catch {
    return false
  }
}
