import { Worker } from 'node:worker_threads'
import type { Logger } from '../common/log.js'
import { asBuffer, packFrames, type FromWorker, type OutputStream, type TaskError, type ToWorker } from './worker-protocol.js'

/** How one run ended: a result, an error, or interrupted by the engine (abort). */
export type RunOutcome =
  /** For an execute: `frames` are the last expression's value (none if it cannot be cloned), `text` its inspection. */
  | { status: 'ok'; frames: Buffer[]; text?: string }
  | { status: 'error'; error: TaskError }
  | { status: 'aborted' }

export type OutputListener = (name: OutputStream, text: string) => void

/** What the task queue needs from an executor; tests give it a fake. */
export interface TaskRunner {
  /** Runs one apply_request's buffers (they are handed over: the caller must not use them afterwards). */
  run(frames: Buffer[], onOutput: OutputListener): Promise<RunOutcome>
  /** Runs JavaScript source in the executor's global scope (an execute_request); top-level await allowed. */
  execute(code: string, onOutput: OutputListener): Promise<RunOutcome>
  /** Ends the running task at once (its run resolves `aborted`); false if none runs. */
  interrupt(): boolean
  /** A fresh executor thread, dropping cached functions and modules; waits for the running task first. */
  reset(): Promise<void>
  close(): Promise<void>
}

export interface ExecutorOptions {
  log: Logger
  /** Output written when no task runs (a timer that fires after its task returned). */
  onStrayOutput: OutputListener
  /** The worker script; default the compiled worker.js beside this file. */
  workerUrl?: URL
  /** Thread starts that fail in a row before the executor gives up (a broken install, not a task). Default 3. */
  maxFailedStarts?: number
}

interface Running {
  seq: number
  onOutput: OutputListener
  resolve: (outcome: RunOutcome) => void
}

/**
 * Runs tasks one at a time in a `worker_threads` Worker. A task that kills its thread (process.exit, out of
 * memory) gets an error and a fresh thread is started; interrupting terminates the thread, which is the only
 * way to stop JavaScript that never yields.
 *
 * The thread's global scope is the engine's namespace: what a task or an execute leaves there (globals, and the
 * `const`/`let`/`class` declarations of executed code) stays for the next ones, until a reset (clear_request), an
 * interrupt (abort of the running task, SIGINT) or the death of the thread replaces the thread.
 */
export class Executor implements TaskRunner {
  private worker!: Worker
  private ready = false
  private failedStarts = 0
  private brokenReason: string | undefined
  private seq = 0
  private running: Running | undefined
  private lastExitError: Error | undefined
  private resetWaiters: (() => void)[] = []
  private closed = false
  private readonly workerUrl: URL
  private readonly maxFailedStarts: number

  constructor(private readonly options: ExecutorOptions) {
    this.workerUrl = options.workerUrl ?? new URL('./worker.js', import.meta.url)
    this.maxFailedStarts = options.maxFailedStarts ?? 3
    this.spawn()
  }

  run(frames: Buffer[], onOutput: OutputListener): Promise<RunOutcome> {
    return this.start('run', onOutput, (seq) => {
      // Frames received from ZeroMQ cannot be transferred: a large one is memory zeromq.js lends to Node (postMessage
      // then falls back to its structured clone, copying on both sides), and the small ones share one buffer
      // (transport compactFrames). One copy into buffers of our own, transferred, is cheaper.
      const { views, transfer } = packFrames(frames, () => false)
      const message: ToWorker = { type: 'run', seq, frames: views }
      this.worker.postMessage(message, transfer)
    })
  }

  execute(code: string, onOutput: OutputListener): Promise<RunOutcome> {
    return this.start('execute', onOutput, (seq) => {
      const message: ToWorker = { type: 'execute', seq, code }
      this.worker.postMessage(message)
    })
  }

  /** What run and execute share: one request at a time, none once closed or broken, `post` hands it to the thread. */
  private start(method: 'run' | 'execute', onOutput: OutputListener, post: (seq: number) => void): Promise<RunOutcome> {
    if (this.running) return Promise.reject(new Error(`Executor.${method}: a task is already running`))
    if (this.closed) return Promise.resolve({ status: 'aborted' })
    if (this.brokenReason) return Promise.resolve(engineError(`the executor thread cannot start: ${this.brokenReason}`))
    const seq = ++this.seq
    return new Promise((resolve) => {
      this.running = { seq, onOutput, resolve }
      try {
        post(seq)
      } catch (e) {
        this.settle(engineError(`could not hand the task to the executor thread: ${(e as Error).message}`))
      }
    })
  }

  interrupt(): boolean {
    if (!this.running) return false
    this.options.log.info('interrupting the running task: terminating its executor thread')
    this.restart()
    return true
  }

  reset(): Promise<void> {
    if (this.closed) return Promise.resolve()
    return new Promise((resolve) => {
      this.resetWaiters.push(resolve)
      if (!this.running) this.restart()
    })
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.settle({ status: 'aborted' })
    await this.worker.terminate()
  }

  private spawn(): void {
    // execArgv is not inherited: loaders and inspector flags of the engine process are not for user code.
    const worker = new Worker(this.workerUrl, { execArgv: [] })
    this.worker = worker
    this.ready = false
    this.lastExitError = undefined
    worker.on('message', (message: FromWorker) => {
      if (worker === this.worker) this.received(message)
    })
    worker.on('error', (error) => {
      if (worker === this.worker) this.lastExitError = error
    })
    worker.on('exit', (code) => {
      if (worker === this.worker && !this.closed) this.died(code)
    })
  }

  /** Replaces the thread; a running task ends `aborted`, and whoever waited for a reset is released. */
  private restart(): void {
    const old = this.worker
    this.settle({ status: 'aborted' })
    this.spawn()
    void old.terminate()
    this.releaseResetWaiters()
  }

  private received(message: FromWorker): void {
    if (message.type === 'ready') {
      this.ready = true
      this.failedStarts = 0
      return
    }
    const running = this.running?.seq === message.seq ? this.running : undefined
    if (message.type === 'output') {
      if (running) running.onOutput(message.name, message.text)
      else this.options.onStrayOutput(message.name, message.text)
    } else if (running && message.type === 'done') {
      const frames = message.frames.map(asBuffer)
      this.settle(message.text === undefined ? { status: 'ok', frames } : { status: 'ok', frames, text: message.text })
    } else if (running && message.type === 'failed') {
      this.settle({ status: 'error', error: message.error })
    }
  }

  /** The thread ended without being asked to: fail the running task, then start a fresh thread. */
  private died(code: number): void {
    const cause = this.lastExitError
    const why = cause ? `${cause.message}${hasCode(cause) ? ` (${cause.code})` : ''}` : `it exited with code ${code}`
    if (!this.ready && !this.running) {
      this.failedStarts++
      this.options.log.error(`the executor thread failed to start: ${why}`)
      if (this.failedStarts >= this.maxFailedStarts) {
        this.brokenReason = why
        return
      }
    } else {
      this.options.log.warn(`the executor thread died: ${why}; starting a fresh one`)
    }
    // The fresh thread also serves as the reset anyone waited for, so settling does not restart again.
    this.spawn()
    this.releaseResetWaiters()
    this.settle(engineError(`the executor thread running this task died: ${why}. The engine started a fresh one; state kept by earlier tasks is gone.`))
  }

  /** Ends the running task with `outcome`; a reset asked for meanwhile happens before the next task. */
  private settle(outcome: RunOutcome): void {
    const running = this.running
    if (!running) return
    this.running = undefined
    if (this.resetWaiters.length > 0 && !this.closed && outcome.status !== 'aborted') this.restart()
    running.resolve(outcome)
  }

  private releaseResetWaiters(): void {
    const waiters = this.resetWaiters
    this.resetWaiters = []
    for (const w of waiters) w()
  }
}

function engineError(evalue: string): RunOutcome {
  return { status: 'error', error: { ename: 'EngineError', evalue, traceback: [] } }
}

function hasCode(error: Error): error is Error & { code: string } {
  return typeof (error as { code?: unknown }).code === 'string'
}
