/**
 * The error tree. Two families: "you called it wrong" (ConfigError, ProtocolError) and "the remote side
 * failed" (RemoteError and the ipyparallel names). Across processes errors are recognised by `name`
 * (the protocol's `ename`), never by `instanceof`.
 */

export class JsParallelError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = new.target.name
  }
}

/** Local misuse: a bad option, a function that cannot travel, an unknown scheme. */
export class ConfigError extends JsParallelError {}

/** A message that does not follow the wire protocol (bad frames, bad signature, bad JSON). */
export class ProtocolError extends JsParallelError {}

/**
 * The controller refused ZeroMQ's security handshake: one side uses CurveZMQ and the other does not, or the
 * connection file's `curve_serverkey` is not the controller's key.
 */
export class HandshakeRefused extends JsParallelError {}

/** Waiting for something took longer than the caller allowed. */
export class TimeoutError extends JsParallelError {}

/** No engine is registered, so a task cannot run. */
export class NoEnginesRegistered extends JsParallelError {}

/** A task record that does not exist (never did, or was culled or purged); the hub answers it as Python's KeyError. */
export class StoreKeyError extends JsParallelError {}

/** A task-store query that cannot be evaluated: an unknown operator or a malformed operand. */
export class QueryError extends JsParallelError {}

/**
 * The wire's error content: what a failed task or a refused request sends back. A type rather than an interface,
 * so that it is also a JSON object (a message's content) without a cast.
 */
export type ErrorContent = {
  status: 'error'
  ename: string
  evalue: string
  traceback: string[]
  engine_info?: Record<string, unknown>
}

/**
 * A task failed on an engine (or the controller refused it). `remoteName` is the remote exception's
 * name (`ename`), `stack` its traceback, `engineId` the engine that ran it when known.
 */
export class RemoteError extends JsParallelError {
  readonly remoteName: string
  readonly remoteMessage: string
  readonly traceback: string[]
  readonly engineId: number | undefined
  readonly engineUuid: string | undefined

  constructor(content: Omit<ErrorContent, 'status'>, options?: { engineId?: number | undefined; engineUuid?: string; cause?: unknown }) {
    const where = options?.engineId !== undefined ? `[engine ${options.engineId}] ` : ''
    super(`${where}${content.ename}: ${content.evalue}`, options)
    this.remoteName = content.ename
    this.remoteMessage = content.evalue
    this.traceback = content.traceback
    this.engineId = options?.engineId
    this.engineUuid = options?.engineUuid
    this.stack = `${this.message}\n${content.traceback.join('\n')}`
  }
}

/** Several remote errors from one multi-task result (a map), in task order. */
export class CompositeError extends JsParallelError {
  readonly errors: RemoteError[]
  constructor(errors: RemoteError[]) {
    const first = errors[0]
    super(`${errors.length} of the tasks raised an error${first ? `; first: ${first.message}` : ''}`, { cause: first })
    this.errors = errors
  }
}

/** Names of the errors ipyparallel's scheduler and engines report; kept identical for compatibility. */
export class TaskAborted extends RemoteError {}
export class TaskTimeout extends RemoteError {}
export class EngineError extends RemoteError {}
/** Ours, not ipyparallel's: a task given up because engines kept dying while they ran it (`maxEngineDeaths`). */
export class PoisonTask extends EngineError {}
/**
 * A task's condition does not hold on an engine. Inside a task, `throw new UnmetDependency('why')` refuses the
 * engine it runs on (the scheduler then tries another); on the client it is the remote error of that name.
 */
export class UnmetDependency extends RemoteError {
  constructor(content: Omit<ErrorContent, 'status'> | string, options?: { engineId?: number | undefined; engineUuid?: string; cause?: unknown }) {
    super(typeof content === 'string' ? { ename: 'UnmetDependency', evalue: content, traceback: [] } : content, options)
  }
}
export class ImpossibleDependency extends UnmetDependency {}
export class InvalidDependency extends ImpossibleDependency {}

const remoteErrorClasses: Record<string, typeof RemoteError> = {
  TaskAborted,
  TaskTimeout,
  EngineError,
  PoisonTask,
  UnmetDependency,
  ImpossibleDependency,
  InvalidDependency,
}

/** Rebuilds the most specific RemoteError subclass for an error reply, chosen by its `ename`. */
export function remoteErrorFromContent(
  content: Omit<ErrorContent, 'status'>,
  options?: { engineId?: number | undefined; engineUuid?: string },
): RemoteError {
  const Class = remoteErrorClasses[content.ename] ?? RemoteError
  return new Class(content, options)
}

/** Builds wire error content for an error raised here (the controller's own refusals). */
export function errorContent(ename: string, evalue: string, traceback?: string[]): ErrorContent {
  return { status: 'error', ename, evalue, traceback: traceback ?? [`${ename}: ${evalue}`], engine_info: {} }
}
