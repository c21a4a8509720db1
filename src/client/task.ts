/**
 * One submitted request as the client tracks it: its metadata (filled from the wire as replies and output
 * arrive) and its outcome. Settlement is reported to callbacks, never through a promise that nobody awaits,
 * so a failed task nobody asked about cannot become an unhandled rejection.
 */

/** What is known about one task; dates come from the wire except `received` (this client's clock). */
export interface ResultMetadata {
  /** The task's message id. */
  readonly msgId: string
  /** When the request was made (its header date). */
  readonly submitted: Date
  /** When the engine started it (reply metadata `started`). */
  readonly started: Date | undefined
  /** When the engine finished it (reply header date). */
  readonly completed: Date | undefined
  /** When the reply reached this client. */
  readonly received: Date | undefined
  /** Id of the engine that ran it (undefined until known). */
  readonly engineId: number | undefined
  /** Uuid of the engine that ran it. */
  readonly engineUuid: string | undefined
  /** What the task wrote to stdout (`console.log`), as received on IOPub so far. */
  readonly stdout: string
  /** What the task wrote to stderr (`console.error`), as received on IOPub so far. */
  readonly stderr: string
  /** `pending` until the reply arrives, then the reply's status. */
  readonly status: 'pending' | 'ok' | 'error' | 'aborted'
}

export type MutableMetadata = { -readonly [K in keyof ResultMetadata]: ResultMetadata[K] }

type Outcome = { ok: true; value: unknown } | { ok: false; error: Error }

export class Task {
  readonly metadata: MutableMetadata
  private outcome: Outcome | undefined
  private listeners: ((task: Task) => void)[] = []

  constructor(msgId: string, submitted: Date) {
    this.metadata = {
      msgId, submitted, started: undefined, completed: undefined, received: undefined,
      engineId: undefined, engineUuid: undefined, stdout: '', stderr: '', status: 'pending',
    }
  }

  get msgId(): string {
    return this.metadata.msgId
  }

  get settled(): boolean {
    return this.outcome !== undefined
  }

  /** The value of a task that succeeded; undefined otherwise. */
  get value(): unknown {
    return this.outcome?.ok ? this.outcome.value : undefined
  }

  /** The error of a task that failed; undefined otherwise. */
  get error(): Error | undefined {
    return this.outcome && !this.outcome.ok ? this.outcome.error : undefined
  }

  /** Calls `callback` once when the task settles (at once if it has). */
  onSettled(callback: (task: Task) => void): void {
    if (this.outcome) callback(this)
    else this.listeners.push(callback)
  }

  /** Resolves when the task settles, whatever the outcome; never rejects. */
  whenSettled(): Promise<void> {
    return new Promise((resolve) => this.onSettled(() => resolve()))
  }

  resolve(value: unknown): void {
    this.settle({ ok: true, value })
  }

  reject(error: Error): void {
    this.settle({ ok: false, error })
  }

  private settle(outcome: Outcome): void {
    if (this.outcome) return
    this.outcome = outcome
    const listeners = this.listeners
    this.listeners = []
    for (const listener of listeners) listener(this)
  }
}
