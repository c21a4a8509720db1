import type { Header } from '../protocol/messages.js'
import { realClock, type Clock, type TimerHandle } from '../common/clock.js'
import type { OutputStream } from './worker-protocol.js'

export type PublishStream = (parent: Header, name: OutputStream, text: string) => void

/**
 * Gathers a task's console output into few IOPub `stream` messages, as ipykernel's OutStream does: text of
 * one stream for one task is joined until `delayMs` passes, the stream or task changes, or `maxChars` is
 * reached. Order across stdout and stderr is kept, since a change of stream flushes what came before.
 */
export class OutputBuffer {
  private parent: Header | undefined
  private name: OutputStream = 'stdout'
  private chunks: string[] = []
  private size = 0
  private timer: TimerHandle | undefined
  /** Stream messages published so far per tracked task (msg_id), for the reply's `streams` count. */
  private readonly counts = new Map<string, number>()

  constructor(
    private readonly publish: PublishStream,
    private readonly delayMs = 50,
    private readonly maxChars = 64 * 1024,
    private readonly clock: Clock = realClock,
  ) {}

  write(parent: Header, name: OutputStream, text: string): void {
    if (text.length === 0) return
    if (this.parent && (this.parent !== parent || this.name !== name)) this.flush()
    this.parent = parent
    this.name = name
    this.chunks.push(text)
    this.size += text.length
    if (this.size >= this.maxChars) this.flush()
    else this.timer ??= this.clock.setTimeout(() => {
      this.timer = undefined
      this.flush()
    }, this.delayMs)
  }

  /** Starts counting the stream messages of a task. */
  track(parent: Header): void {
    this.counts.set(parent.msg_id, 0)
  }

  /** Publishes what is pending and says how many stream messages the task had; stops counting it. */
  finish(parent: Header): number {
    this.flush()
    const n = this.counts.get(parent.msg_id) ?? 0
    this.counts.delete(parent.msg_id)
    return n
  }

  /** Publishes what is pending now; called before a task's reply so output precedes it. */
  flush(): void {
    if (this.timer !== undefined) {
      this.clock.clearTimeout(this.timer)
      this.timer = undefined
    }
    const parent = this.parent
    if (!parent || this.chunks.length === 0) return
    const text = this.chunks.join('')
    this.chunks = []
    this.size = 0
    this.parent = undefined
    const counted = this.counts.get(parent.msg_id)
    if (counted !== undefined) this.counts.set(parent.msg_id, counted + 1)
    this.publish(parent, this.name, text)
  }
}
