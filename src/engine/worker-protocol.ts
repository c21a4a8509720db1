/**
 * Messages between the engine's main thread and its executor thread (worker.ts). Frames travel as
 * Uint8Arrays; whenever the sender owns a frame's memory alone, its ArrayBuffer is transferred, not copied.
 */

/** What a failed task reports: the protocol's error fields. */
export interface TaskError {
  ename: string
  evalue: string
  traceback: string[]
}

export type OutputStream = 'stdout' | 'stderr'

/** Main thread to executor: run one apply_request's buffers. `seq` tells the answers apart. */
export interface RunMessage {
  type: 'run'
  seq: number
  frames: Uint8Array[]
}

/** Main thread to executor: run JavaScript source in the thread's global scope (an execute_request). */
export interface ExecuteMessage {
  type: 'execute'
  seq: number
  code: string
}

export type ToWorker = RunMessage | ExecuteMessage

export type FromWorker =
  /** The executor finished setting up; a worker that dies before this is broken, not killed by a task. */
  | { type: 'ready' }
  /** Text the task wrote; `seq` is the running task, or the last one when output comes after it ended. */
  | { type: 'output'; seq: number; name: OutputStream; text: string }
  /**
   * A result. For an execute, `frames` are the last expression's value (none when it cannot be cloned) and
   * `text` is that value as `util.inspect` shows it (absent when the code gave no value).
   */
  | { type: 'done'; seq: number; frames: Uint8Array[]; text?: string }
  | { type: 'failed'; seq: number; error: TaskError }

/**
 * Views of `frames` ready for postMessage, and the ArrayBuffers to transfer. A frame is transferred only
 * when `owned(index)` says nobody else holds it and it spans its whole ArrayBuffer (a slice of a shared
 * pool must never be detached); other frames are copied once into a buffer of their own and that is
 * transferred, which is cheaper than postMessage's clone (a copy on each side).
 */
export function packFrames(frames: readonly Uint8Array[], owned: (index: number) => boolean): { views: Uint8Array[]; transfer: ArrayBuffer[] } {
  const views: Uint8Array[] = []
  const transfer = new Set<ArrayBuffer>()
  frames.forEach((frame, index) => {
    const whole = frame.byteOffset === 0 && frame.byteLength === frame.buffer.byteLength
    const movable = owned(index) && whole && frame.buffer instanceof ArrayBuffer && !transfer.has(frame.buffer)
    const view = movable ? frame : new Uint8Array(frame)
    views.push(view)
    transfer.add(view.buffer as ArrayBuffer)
  })
  return { views, transfer: [...transfer] }
}

/** A Buffer over a received view's memory, without copying. */
export function asBuffer(view: Uint8Array): Buffer {
  return Buffer.from(view.buffer, view.byteOffset, view.byteLength)
}
