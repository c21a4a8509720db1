import { existsSync } from 'node:fs'
import { ConfigError, JsParallelError } from '../common/errors.js'
import { createLogger, type Logger } from '../common/log.js'
import { waitForFiles } from '../common/wait-for-files.js'
import {
  CLIENT_KEYS, checkConnectionInfo, connectionFilePath, readConnectionFile, resolveProfileDir,
  type ClientConnectionInfo, type ProfileOptions,
} from '../protocol/connection-file.js'
import { contentOf } from '../protocol/content-readers.js'
import { Session } from '../protocol/session.js'
import { clientEnvironment } from './environment.js'
import { connectionInfoFromUrl, parseRegistrationUrl } from './discover.js'
import { ClientClosedError, Connection } from './connection.js'
import { DirectView, type DirectTargets } from './direct-view.js'
import { BroadcastView, type BroadcastOptions } from './broadcast-view.js'
import { checkTargets, type LoadBalancedFlags } from './flags.js'
import { LoadBalancedView } from './view.js'
import type { AsyncResult } from './async-result.js'
import { fetchFromHub, type AsyncHubResult } from './hub-result.js'
import { messageIds, recordsOf, type TaskRecordView } from './records.js'
import { engineUuid } from './submit.js'
import type { ResultMetadata } from './task.js'

/**
 * How to find the controller. The first of `connectionInfo`, `connectionFile`, the profile wins. With no profile
 * option at all (`profile`, `profileDir`, `ipythonDir`), `$JSPARALLEL_PROFILE_DIR` and `$JSPARALLEL_CLUSTER_ID`
 * (set by `npx cluster run` for its script) are used if set, else the default profile under `$IPYTHONDIR` or
 * `~/.jsparallel`.
 */
export interface ClientOptions extends ProfileOptions {
  /** Path of an `ipcontroller-client.json` file. Default: `<profile dir>/security/ipcontroller[-<clusterId>]-client.json`. */
  connectionFile?: string
  /** The connection file's contents, already read. */
  connectionInfo?: ClientConnectionInfo
  /**
   * The controller's registration address, `tcp://<host>:<port>`, for when no connection file is at hand (with
   * `key`): the client asks the controller for the other channels' ports (ours lists them in its
   * connection_reply; ipyparallel's `ipcontroller` does not, so it needs the file). The channels are reached at
   * the URL's host. Excludes `connectionFile`, `connectionInfo` and the profile options.
   */
  url?: string
  /** With `url`: the controller's HMAC key (the `key` of its connection file; `''` if it signs nothing). */
  key?: string
  /** With `url`, for a controller started with `--curve`: its CurveZMQ public key (`curve_serverkey`, Z85). */
  curveServerKey?: string
  /**
   * How long to wait, in ms, for the connection file to appear and for the controller's connection_reply; it also
   * bounds each later request to the controller or to an engine's control channel. Default 10000.
   */
  timeoutMs?: number
  /** Where to log. Default: warnings and errors to stderr. */
  log?: Logger
}

/** One engine's line of `queueStatus()`. */
export interface EngineQueueStatus {
  /** Direct (mux) requests waiting on or running on the engine. */
  queue: number
  /** Requests the engine has finished. */
  completed: number
  /** Load-balanced tasks assigned to the engine and not finished. */
  tasks: number
}

/** `queueStatus()`: per engine id, plus `unassigned` load-balanced tasks not yet given to any engine. */
export type QueueStatus = { unassigned: number } & { [engineId: number]: EngineQueueStatus }

const DEFAULT_TIMEOUT_MS = 10_000
const OPTION_NAMES = ['profile', 'profileDir', 'ipythonDir', 'clusterId', 'connectionFile', 'connectionInfo', 'url', 'key', 'curveServerKey', 'timeoutMs', 'log']

/**
 * A connection to a jsparallel (or ipyparallel) controller: knows the engines and makes views that run tasks.
 * Construct it and `await client.ready`, or `await Client.connect(options)`. Close it when done (`await
 * client.close()`, or `await using client = await Client.connect()`); pending results then reject.
 * With no options it reads the default profile's client connection file under `$IPYTHONDIR`, else `~/.jsparallel`,
 * where `npx cluster start` puts it; inside `cluster run`, the cluster that command started. The variables it reads
 * (`IPYTHONDIR`, `JSPARALLEL_PROFILE_DIR`, `JSPARALLEL_CLUSTER_ID`) are listed in `environment.ts`.
 */
export class Client implements AsyncDisposable {
  /** Resolves once connected (connection_reply received, engine table filled); rejects if that fails. */
  readonly ready: Promise<void>
  private readonly timeoutMs: number
  private readonly log: Logger
  private connection: Connection | undefined
  private failure: Error | undefined
  private closing: Promise<void> | undefined

  /** Connects and resolves with a ready client. */
  static async connect(options: ClientOptions = {}): Promise<Client> {
    const client = new Client(options)
    await client.ready
    return client
  }

  constructor(options: ClientOptions = {}) {
    for (const key of Object.keys(options)) {
      if (!OPTION_NAMES.includes(key)) throw new ConfigError(`Client: unknown option '${key}' (options are ${OPTION_NAMES.join(', ')})`)
    }
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
    if (!(typeof timeoutMs === 'number' && timeoutMs > 0)) throw new ConfigError(`Client: timeoutMs must be a positive number of ms, not ${String(timeoutMs)}`)
    this.timeoutMs = timeoutMs
    checkUrlOptions(options)
    this.log = options.log ?? createLogger('client', 'warn')
    this.ready = this.start(options).catch((e: unknown) => {
      const error = e instanceof Error ? e : new Error(String(e))
      this.failure = error
      throw error
    })
    // Marked handled here: a client nobody awaits must not crash the process; awaiting `ready` still rejects.
    this.ready.catch(() => {})
  }

  /** Registered engine ids, ascending (empty until ready). */
  get ids(): number[] {
    return this.connection?.engines.ids ?? []
  }

  /** Whether the client is connected and not closed. */
  get connected(): boolean {
    return this.connection?.isConnected ?? false
  }

  /**
   * Resolves when at least `n` engines are registered. Rejects with TimeoutError after `timeoutMs` (default: no
   * limit), or when the client closes.
   */
  async waitForEngines(n: number, options: { timeoutMs?: number } = {}): Promise<void> {
    if (!(Number.isInteger(n) && n >= 0)) throw new ConfigError(`waitForEngines: n must be an integer ≥ 0, not ${String(n)}`)
    const start = Date.now()
    await this.ready
    const timeoutMs = options.timeoutMs === undefined ? undefined : Math.max(0, options.timeoutMs - (Date.now() - start))
    await this.usable().engines.waitFor(n, timeoutMs)
  }

  /**
   * The controller's queue counts (ipyparallel's `queue_status`): for each engine id, `{queue, completed, tasks}`,
   * and `unassigned`. `targets` limits it to some engines (default: all).
   */
  async queueStatus(options: { targets?: number | readonly number[] } = {}): Promise<QueueStatus> {
    await this.ready
    const targets = options.targets === undefined ? null : checkTargets(options.targets, 'queueStatus')
    const reply = await this.usable().request('queue_request', { targets, verbose: false }, this.timeoutMs)
    const content = contentOf(reply, 'queue_reply')
    const status: Record<string, unknown> = { unassigned: content.unassigned }
    for (const [key, value] of Object.entries(content)) {
      if (/^\d+$/.test(key)) status[Number(key)] = value
    }
    return status as QueueStatus
  }

  /**
   * The result of tasks by message id, fetched from the controller's task records: tasks of this client, of
   * another client, or of an earlier session (ipyparallel's `get_result`). One id gives its value; a list gives
   * an array in that order. It polls the controller until every task has finished; an id the controller does
   * not know rejects with a `RemoteError` named `KeyError`.
   */
  getResult<T = unknown>(msgId: string): AsyncHubResult<T>
  getResult<T extends unknown[] = unknown[]>(msgIds: readonly string[] | AsyncResult<unknown, ResultMetadata | readonly ResultMetadata[]>): AsyncHubResult<T, ResultMetadata[]>
  getResult(ids: string | readonly string[] | AsyncResult<unknown, ResultMetadata | readonly ResultMetadata[]>): AsyncHubResult<unknown, ResultMetadata | ResultMetadata[]> {
    const msgIds = messageIds(ids, 'getResult')
    const connection = this.usable()
    return fetchFromHub(connection, msgIds, typeof ids === 'string', this.timeoutMs, (pending) => this.abort(pending)) as AsyncHubResult<unknown, ResultMetadata | ResultMetadata[]>
  }

  /**
   * Runs finished or running tasks again, as new tasks with the same function and arguments (ipyparallel's
   * `resubmit`; their after/follow/targets/retries/timeout are not kept). Returns their result at once, in the
   * order given; once the controller has answered (`await result.renamed`), `msgIds` are the new tasks' ids.
   */
  resubmit<T extends unknown[] = unknown[]>(ids: readonly string[] | AsyncResult<unknown, ResultMetadata | readonly ResultMetadata[]>): AsyncHubResult<T, ResultMetadata[]> {
    const msgIds = messageIds(ids, 'resubmit')
    const connection = this.usable()
    const renamed = this.ready
      .then(() => connection.request('resubmit_request', { msg_ids: msgIds }, this.timeoutMs))
      .then((reply) => contentOf(reply, 'resubmit_reply').resubmitted)
    const result = fetchFromHub<T>(connection, msgIds, false, this.timeoutMs, (pending) => this.abort(pending), renamed) as AsyncHubResult<T, ResultMetadata[]>
    result.renamed = renamed.then(() => undefined)
    result.renamed.catch(() => {})
    return result
  }

  /** Which of the tasks are still pending and which have finished, by message id, as the controller knows them. */
  async resultStatus(ids: string | readonly string[] | AsyncResult<unknown, ResultMetadata | readonly ResultMetadata[]>): Promise<{ pending: string[]; completed: string[] }> {
    const msgIds = messageIds(ids, 'resultStatus')
    await this.ready
    const reply = await this.usable().request('result_request', { msg_ids: msgIds, status_only: true }, this.timeoutMs)
    const { pending, completed } = contentOf(reply, 'result_reply')
    return { pending, completed }
  }

  /**
   * Task records matching a Mongo-style query (`{ completed: { $gt: since } }`; operators `$lt $gt $lte $gte
   * $eq $ne $in $nin $all $mod $exists`), with only `keys` if given (`msg_id` is always there). Dates come back
   * as `Date`s; `buffers` and `result_buffers` are included only when named in `keys`.
   */
  async dbQuery(query: Record<string, unknown>, keys?: readonly (keyof TaskRecordView)[]): Promise<TaskRecordView[]> {
    if (typeof query !== 'object' || query === null || Array.isArray(query)) throw new ConfigError('dbQuery: query must be an object such as { msg_id: { $in: ids } }')
    await this.ready
    const reply = await this.usable().request('db_request', { query, keys: keys ?? null }, this.timeoutMs)
    return recordsOf(reply)
  }

  /**
   * Forgets finished tasks' records in the controller: `msgIds` (or `'all'` finished ones), and every finished
   * task of the engines `targets`. A task still running is refused with an `IndexError`.
   */
  async purgeResults(options: { msgIds?: 'all' | readonly string[] | AsyncResult<unknown, ResultMetadata | readonly ResultMetadata[]>; targets?: number | readonly number[] } = {}): Promise<void> {
    const msgIds = options.msgIds === undefined ? [] : options.msgIds === 'all' ? 'all' : messageIds(options.msgIds, 'purgeResults')
    const targets = options.targets === undefined ? [] : (checkTargets(options.targets, 'purgeResults') ?? [])
    await this.ready
    await this.usable().request('purge_request', { msg_ids: msgIds, engine_ids: targets }, this.timeoutMs)
  }

  /**
   * Stops tasks: every engine (or `targets`) is told to skip them, so a queued task fails with `TaskAborted`
   * without running and a running one is interrupted. Resolves when the engines have acknowledged.
   */
  async abort(ids: string | readonly string[] | AsyncResult<unknown, ResultMetadata | readonly ResultMetadata[]>, options: { targets?: number | readonly number[] } = {}): Promise<void> {
    const msgIds = messageIds(ids, 'abort')
    await this.ready
    const connection = this.usable()
    const targets = options.targets === undefined ? connection.engines.ids : (checkTargets(options.targets, 'abort') ?? connection.engines.ids)
    await Promise.all(targets.map((id) => connection.controlRequest(engineUuid(connection, id, 'abort'), 'abort_request', { msg_ids: msgIds }, this.timeoutMs)))
  }

  /**
   * Resets the namespace of every engine (or `targets`): ipyparallel's `Client.clear`, as `directView(targets).clear()`.
   */
  async clear(options: { targets?: number | readonly number[] } = {}): Promise<void> {
    await this.ready
    await this.directView(this.targetList(options.targets, 'clear')).clear()
  }

  /**
   * Sends a signal to every engine (or `targets`): `SIGINT` interrupts the running task, `SIGTERM` stops the engine
   * (ipyparallel's `Client.send_signal`, as `directView(targets).sendSignal(signal)`).
   */
  async sendSignal(signal: 'SIGINT' | 'SIGTERM' | number, options: { targets?: number | readonly number[] } = {}): Promise<void> {
    await this.ready
    await this.directView(this.targetList(options.targets, 'sendSignal')).sendSignal(signal)
  }

  /** Message ids of every task the controller has recorded, oldest first (ipyparallel's `hub_history`). */
  async hubHistory(): Promise<string[]> {
    await this.ready
    const reply = await this.usable().request('history_request', {}, this.timeoutMs)
    return contentOf(reply, 'history_reply').history
  }

  /**
   * A view that lets the scheduler choose the engine for each task.
   * @param targets engine id(s) the tasks may run on; default: any engine.
   * @param flags further flags (`after`, `follow`, `timeoutMs`, `retries`, `chunksize`, `ordered`).
   */
  loadBalancedView(targets?: number | readonly number[] | null, flags: LoadBalancedFlags = {}): LoadBalancedView {
    return new LoadBalancedView(() => this.usable(), this.settings(), { ...flags, ...(targets !== undefined ? { targets } : {}) })
  }

  /**
   * A view that sends tasks to chosen engines through the mux channel. One id gives single values; a list or
   * `'all'` (default: every engine registered when a task is submitted) gives arrays.
   */
  directView(target: number): DirectView<'one'>
  directView(targets?: readonly number[] | 'all'): DirectView<'many'>
  directView(targets: DirectTargets = 'all'): DirectView<'one'> | DirectView<'many'> {
    return new DirectView(() => this.usable(), this.settings(), targets)
  }

  /**
   * A view whose requests go on the controller's broadcast channel (ipyparallel's `broadcast_view`): one message
   * for all target engines, copied to each by the controller. One id gives single values; a list or `'all'`
   * (default: every engine registered when a task is submitted) gives arrays, in target order. With
   * `{ coalescing: true }` the controller sends the replies back as one message.
   */
  broadcastView(target: number, options?: BroadcastOptions): BroadcastView<'one'>
  broadcastView(targets?: readonly number[] | 'all', options?: BroadcastOptions): BroadcastView<'many'>
  broadcastView(targets: DirectTargets = 'all', options: BroadcastOptions = {}): BroadcastView<'one'> | BroadcastView<'many'> {
    return new BroadcastView(() => this.usable(), this.settings(), targets, options)
  }

  /**
   * Stops engines (control `shutdown_request`; default: all), and with `hub: true` the controller too, which
   * then closes this client.
   */
  async shutdown(options: { targets?: number | readonly number[] | 'all'; hub?: boolean } = {}): Promise<void> {
    await this.ready
    const connection = this.usable()
    const targets = options.targets === undefined || options.targets === 'all' ? connection.engines.ids : (checkTargets(options.targets, 'shutdown') ?? [])
    const uuids = targets.flatMap((id) => connection.engines.uuidOf(id) ?? [])
    await Promise.all(uuids.map((uuid) => connection.controlRequest(uuid, 'shutdown_request', { restart: false }, this.timeoutMs)))
    if (options.hub) await connection.request('shutdown_request', {}, this.timeoutMs)
  }

  /** Closes the sockets; pending results and requests reject with ClientClosedError. Idempotent. */
  close(): Promise<void> {
    return this.closeWith(new ClientClosedError('the client was closed'))
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  private closeWith(error: Error): Promise<void> {
    this.closing ??= this.connection?.close(error) ?? Promise.resolve()
    return this.closing
  }

  private targetList(targets: number | readonly number[] | undefined, where: string): number[] | 'all' {
    return targets === undefined ? 'all' : (checkTargets(targets, where) ?? 'all')
  }

  private settings() {
    return { requestTimeoutMs: this.timeoutMs }
  }

  /** The connection, or the error that says why there is none to use. */
  private usable(): Connection {
    const connection = this.connection
    if (this.failure) throw new JsParallelError(`the client could not connect: ${this.failure.message}`, { cause: this.failure })
    if (this.closing || connection?.closedBecause) throw new ClientClosedError(connection?.closedBecause?.message ?? 'the client was closed')
    // Before the controller's connection_reply, tasks still go out: the sockets queue them.
    if (connection) return connection
    throw new ConfigError('the client has not found its connection file yet: await client.ready (or use Client.connect()) before submitting tasks')
  }

  private async start(options: ClientOptions): Promise<void> {
    // When the connection info is at hand now, the connection is made synchronously, so that tasks submitted
    // right after `new Client()` are queued on their sockets instead of refused; the reply to connection_request
    // only fills the engine table.
    const now = options.url !== undefined ? undefined
      : options.connectionInfo ? checkConnectionInfo<ClientConnectionInfo>(options.connectionInfo, CLIENT_KEYS, 'connectionInfo') : this.readFileNow(options)
    const info = now ?? (options.url !== undefined
      ? await connectionInfoFromUrl(options.url, options.key ?? '', options.curveServerKey ?? null, this.timeoutMs, this.log)
      : await this.readFile(options))
    if (this.closing) throw new ClientClosedError('the client was closed before it connected')
    const connection = new Connection(info, new Session({ key: info.key, signatureScheme: info.signature_scheme }), this.log)
    connection.onShutdown = () => {
      this.closeWith(new ClientClosedError('the controller shut down')).catch((e: unknown) => this.log.error(`close: ${String(e)}`))
    }
    this.connection = connection
    try {
      await connection.connect(this.timeoutMs)
    } catch (e) {
      await connection.close(e instanceof Error ? e : new Error(String(e)))
      throw e
    }
  }

  private connectionFile(options: ClientOptions): string {
    // The library follows $IPYTHONDIR like the CLIs and ipyparallel's client, so both find the same profile
    // (src/client/environment.ts lists what the client reads).
    if (options.connectionFile !== undefined) return options.connectionFile
    const env = clientEnvironment()
    const named = options.profile !== undefined || options.profileDir !== undefined || options.ipythonDir !== undefined
    if (!named && env.JSPARALLEL_PROFILE_DIR !== undefined) {
      return connectionFilePath(resolveProfileDir({ profileDir: env.JSPARALLEL_PROFILE_DIR }), 'client', options.clusterId ?? env.JSPARALLEL_CLUSTER_ID)
    }
    return connectionFilePath(resolveProfileDir(options, env), 'client', options.clusterId)
  }

  /** The connection file's contents if it exists already (read synchronously), else undefined. */
  private readFileNow(options: ClientOptions): ClientConnectionInfo | undefined {
    const path = this.connectionFile(options)
    return existsSync(path) ? readConnectionFile<ClientConnectionInfo>(path, CLIENT_KEYS) : undefined
  }

  /** Waits up to timeoutMs for the connection file (a controller writes it once it has bound its sockets). */
  private async readFile(options: ClientOptions): Promise<ClientConnectionInfo> {
    const path = this.connectionFile(options)
    await waitForFiles([path], { timeoutMs: this.timeoutMs, giveUp: () => this.closing !== undefined })
    return readConnectionFile<ClientConnectionInfo>(path, CLIENT_KEYS)
  }
}

/** `url` needs `key` and excludes the other ways of finding the controller; `key` and `curveServerKey` need `url`. */
function checkUrlOptions(options: ClientOptions): void {
  if (options.url === undefined) {
    for (const name of ['key', 'curveServerKey'] as const) {
      if (options[name] !== undefined) throw new ConfigError(`Client: ${name} goes with url (a connection file carries its own)`)
    }
    return
  }
  parseRegistrationUrl(options.url)
  if (typeof options.key !== 'string') throw new ConfigError("Client: url needs key, the controller's HMAC key as text (the 'key' of its connection file; '' if it signs nothing)")
  if (options.curveServerKey !== undefined && !(typeof options.curveServerKey === 'string' && options.curveServerKey.length === 40)) {
    throw new ConfigError('Client: curveServerKey must be the controller\'s CurveZMQ public key, 40 characters of Z85')
  }
  const other = (['connectionFile', 'connectionInfo', 'profile', 'profileDir', 'ipythonDir', 'clusterId'] as const).find((name) => options[name] !== undefined)
  if (other) throw new ConfigError(`Client: give url or ${other}, not both`)
}
